//! Endpoints as text: what the output prints for an address and port.

use std::net::{IpAddr, SocketAddr};

use crate::text::uint;

/// `127.0.0.1:4000`, `[::1]:4000` (IPv4-mapped IPv6 as IPv4). IPv4 by hand: it runs several
/// times for every packet.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            let mut s = String::with_capacity(21);
            for (i, o) in a.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(uint(*o).as_str());
            }
            s.push(':');
            s.push_str(uint(port).as_str());
            s
        }
        v6 => SocketAddr::new(v6, port).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_print_like_socket_addresses() {
        assert_eq!(
            endpoint("127.0.0.1".parse().unwrap(), 4000),
            "127.0.0.1:4000"
        );
        assert_eq!(endpoint("::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(
            endpoint("::ffff:10.0.0.1".parse().unwrap(), 80),
            "10.0.0.1:80"
        );
    }
}
