//! Sockets and socket addresses as events carry them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sockpath_ebpf::event::{SockAddrRaw, SockInfo, TcpState, SOCK_REUSEPORT};

/// A socket as an event saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub sk: u64,
    pub ino: u64,
    pub netns: u32,
    pub family: u16,
    pub protocol: u16,
    pub lport: u16,
    pub rport: u16,
    /// The kernel's state number: [`Socket::tcp_state`] names it.
    pub state: u8,
    /// Member of a SO_REUSEPORT group.
    pub reuseport: bool,
    pub laddr: IpAddr,
    pub raddr: IpAddr,
}

impl Socket {
    /// The socket's state (UDP sockets too: CLOSE unconnected, ESTABLISHED connected); None
    /// for a number no socket takes, as in a socket event without a socket.
    pub fn tcp_state(&self) -> Option<TcpState> {
        TcpState::from_u8(self.state)
    }

    pub fn in_state(&self, state: TcpState) -> bool {
        self.state == state as u8
    }

    /// The socket as the kernel described it.
    pub fn of(si: &SockInfo) -> Self {
        Self {
            sk: si.sk,
            ino: si.ino,
            netns: si.netns,
            family: si.family,
            protocol: si.protocol,
            lport: si.lport,
            rport: si.rport,
            state: si.state,
            reuseport: si.flags & SOCK_REUSEPORT != 0,
            laddr: ip(si.family, &si.laddr),
            raddr: ip(si.family, &si.raddr),
        }
    }
}

/// An address as the kernel's events carry it: IPv6, or IPv4 in the first four bytes.
pub fn ip(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == libc::AF_INET6 as u16 {
        IpAddr::V6(Ipv6Addr::from(*raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    }
}

/// A bind()/connect() address argument, if it was an IP one.
pub fn sockaddr(a: &SockAddrRaw) -> Option<(IpAddr, u16)> {
    (a.family == libc::AF_INET as u16 || a.family == libc::AF_INET6 as u16)
        .then(|| (ip(a.family, &a.addr), a.port))
}
