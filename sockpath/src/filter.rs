//! What the user asked to watch, checked the same way in user space as in the kernel.

use std::net::IpAddr;

use sockpath_ebpf::{config::Filter, event::SNAP_MAX};

use crate::decode::Socket;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// Default bytes kept per packet: every header (Ethernet 14 + IPv6 40 + TCP with options 60)
/// and the start of the payload.
pub const DEFAULT_SNAPLEN: u32 = 256;
/// Fewest bytes kept: the largest header stack sockpath parses.
pub const MIN_SNAPLEN: u32 = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchFilter {
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
    pub proto: Option<Proto>,
    pub iface: Option<String>,
    pub snaplen: u32,
}

impl Default for WatchFilter {
    fn default() -> Self {
        Self {
            port: None,
            addr: None,
            proto: None,
            iface: None,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

impl WatchFilter {
    pub fn to_kernel(&self) -> Filter {
        let mut f = Filter {
            port: self.port.unwrap_or(0),
            proto: self.proto.map(Proto::number).unwrap_or(0),
            snaplen: self.snaplen.min(SNAP_MAX as u32),
            ..Filter::default()
        };
        match self.addr {
            Some(IpAddr::V4(a)) => {
                f.addr_version = 4;
                f.addr[..4].copy_from_slice(&a.octets());
            }
            Some(IpAddr::V6(a)) => {
                f.addr_version = 6;
                f.addr = a.octets();
            }
            None => {}
        }
        if let Some(name) = &self.iface {
            let b = name.as_bytes();
            f.ifname[..b.len().min(15)].copy_from_slice(&b[..b.len().min(15)]);
        }
        f
    }

    pub fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// The kernel's sock_matches(), in user space.
    pub fn socket_matches(&self, s: &Socket) -> bool {
        if s.sk == 0 {
            return false;
        }
        if let Some(p) = self.port {
            if s.lport != p && s.rport != p {
                return false;
            }
        }
        if let Some(proto) = self.proto {
            if s.protocol != 0 && s.protocol != proto.number() as u16 {
                return false;
            }
        }
        if let Some(a) = self.addr {
            let a = a.to_canonical();
            if s.laddr.to_canonical() != a
                && s.raddr.to_canonical() != a
                && !s.laddr.is_unspecified()
            {
                return false;
            }
        }
        true
    }

    /// A short description for the start-up line: "port 4000, tcp, on lo".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.port {
            Some(p) => parts.push(format!("port {p}")),
            None => parts.push("all ports".into()),
        }
        if let Some(a) = self.addr {
            parts.push(format!("address {a}"));
        }
        if let Some(p) = self.proto {
            parts.push(format!("{p:?}").to_lowercase());
        }
        match &self.iface {
            Some(i) => parts.push(format!("on {i}")),
            None => parts.push("on any interface".into()),
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn sock(l: u16, r: u16, laddr: IpAddr) -> Socket {
        Socket {
            sk: 1,
            ino: 0,
            netns: 0,
            family: 2,
            protocol: 6,
            lport: l,
            rport: r,
            state: 1,
            reuseport: false,
            laddr,
            raddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    #[test]
    fn kernel_filter_encodes_fields() {
        let f = WatchFilter {
            port: Some(4000),
            addr: Some("10.0.0.1".parse().unwrap()),
            proto: Some(Proto::Udp),
            iface: Some("veth0".into()),
            snaplen: 100_000,
        }
        .to_kernel();
        assert_eq!(f.port, 4000);
        assert_eq!(f.proto, 17);
        assert_eq!(f.addr_version, 4);
        assert_eq!(&f.addr[..4], &[10, 0, 0, 1]);
        assert_eq!(&f.ifname[..6], b"veth0\0");
        assert_eq!(f.snaplen as usize, SNAP_MAX);
    }

    #[test]
    fn wildcard_bound_socket_matches_address_filter() {
        let f = WatchFilter {
            port: Some(4000),
            addr: Some("127.0.0.2".parse().unwrap()),
            ..Default::default()
        };
        assert!(f.socket_matches(&sock(4000, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
        assert!(!f.socket_matches(&sock(4000, 0, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))));
        assert!(!f.socket_matches(&sock(5000, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
    }
}
