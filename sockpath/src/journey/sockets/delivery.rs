//! Which sockets a packet could have reached: what ties a socket event that names no packet
//! to one.

use std::net::IpAddr;

use sockpath_ebpf::event::TcpState;

use crate::{decode::Socket, packet::Headers};

fn same_addr(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Whether packet `h` could have reached socket `s`: the addresses fit (see [`delivers`]), and a
/// connection request (SYN without ACK) only reaches a listener or its request socket.
pub fn fits(h: &Headers, s: &Socket) -> bool {
    if h.has_flag("SYN")
        && !h.has_flag("ACK")
        && !s.in_state(TcpState::Listen)
        && !s.in_state(TcpState::NewSynRecv)
    {
        return false;
    }
    delivers(h, s)
}

/// Whether `s` is a socket the kernel could have delivered packet `h` to: the packet's
/// destination is the socket's local end (or the socket is bound to the wildcard address), and
/// the packet's source is the socket's remote end (or the socket is not connected: a listener, an
/// unconnected UDP socket).
pub fn delivers(h: &Headers, s: &Socket) -> bool {
    let (Some(sport), Some(dport)) = (h.sport, h.dport) else {
        return false;
    };
    if s.lport != dport {
        return false;
    }
    if !s.laddr.is_unspecified() && !same_addr(s.laddr, h.dst) {
        return false;
    }
    s.rport == 0 || (s.rport == sport && same_addr(s.raddr, h.src))
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::event::TcpState::*;

    use super::{super::tests::sock, *};
    use crate::packet::fixture::tcp4;

    #[test]
    fn delivery_matches_listener_and_established() {
        let h = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 1, None, "S", &[])).unwrap();
        assert!(delivers(&h, &sock(1, 4000, 0, Listen)));
        assert!(delivers(&h, &sock(2, 4000, 4444, Established)));
        assert!(!delivers(&h, &sock(3, 4000, 5555, Established)));
        assert!(!delivers(&h, &sock(4, 4444, 4000, Established)));
        let mut wild = sock(5, 4000, 0, Listen);
        wild.laddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        assert!(delivers(&h, &wild));
        let mut mapped = sock(6, 4000, 4444, Established);
        mapped.laddr = "::ffff:127.0.0.1".parse().unwrap();
        mapped.raddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(delivers(&h, &mapped));
    }

    #[test]
    fn a_syn_fits_only_listeners_and_request_sockets() {
        let syn = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 1, None, "S", &[])).unwrap();
        assert!(fits(&syn, &sock(1, 4000, 0, Listen)));
        assert!(fits(&syn, &sock(2, 4000, 4444, NewSynRecv)));
        assert!(!fits(&syn, &sock(3, 4000, 4444, Established)));
        let ack = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 1, Some(1), "A", &[])).unwrap();
        assert!(fits(&ack, &sock(3, 4000, 4444, Established)));
    }
}
