//! What the user asked to watch, checked in user space with the same predicates the kernel runs
//! (`sockpath_ebpf::filter`), against the exact filter: the kernel holds a wider set (the union
//! of every client's filter, and the ports of owner processes), so user space decides what is
//! printed.

mod args;
mod kernel_set;
mod ports;

use std::{collections::BTreeSet, net::IpAddr};

use sockpath_ebpf::{
    event::SockInfo,
    filter::{packet_addrs_match, packet_matches, sock_matches, FilterSet, Flow},
    net::{v4_mapped, AddrKey, IPPROTO_TCP, IPPROTO_UDP},
};

pub use self::{
    args::FilterArgs,
    kernel_set::KernelSet,
    ports::{parse_port_range, PortRange, PortSet},
};
use crate::{decode::Socket, packet::Headers};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        }
    }
}

/// Default bytes kept per packet: every header (Ethernet 14 + IPv6 40 + TCP with options 60)
/// and the start of the payload.
pub const DEFAULT_SNAPLEN: u32 = 256;
/// Fewest bytes kept: the largest header stack sockpath parses.
pub const MIN_SNAPLEN: u32 = 128;
/// Bytes of a process name the kernel keeps (TASK_COMM_LEN less the NUL).
pub const COMM_MAX: usize = 15;

/// The processes whose sockets are watched (`--pid`, `--comm`); empty: every process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerFilter {
    pub pids: BTreeSet<u32>,
    /// Process names as /proc/PID/comm shows them (at most 15 bytes).
    pub comms: BTreeSet<String>,
}

impl OwnerFilter {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.comms.is_empty()
    }

    /// Process `pid` named `comm` is one of the watched owners (any is, without owners).
    pub fn matches(&self, pid: u32, comm: &str) -> bool {
        self.is_empty() || self.pids.contains(&pid) || self.comms.contains(comm)
    }

    /// "owned by pid 12, 34 or comm nginx"; empty without owners.
    pub fn describe(&self) -> String {
        let mut who = Vec::new();
        if !self.pids.is_empty() {
            let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            who.push(format!("pid {}", pids.join(", ")));
        }
        if !self.comms.is_empty() {
            let comms: Vec<&str> = self.comms.iter().map(String::as_str).collect();
            who.push(format!("comm {}", comms.join(", ")));
        }
        if who.is_empty() {
            String::new()
        } else {
            format!("owned by {}", who.join(" or "))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchFilter {
    /// Source or destination port in one of these (empty: any).
    pub ports: PortSet,
    pub addr: Option<IpAddr>,
    pub proto: Option<Proto>,
    pub iface: Option<String>,
    /// Packets whose socket, and system calls whose caller, is one of these processes.
    pub owners: OwnerFilter,
    pub snaplen: u32,
}

impl Default for WatchFilter {
    fn default() -> Self {
        Self {
            ports: PortSet::default(),
            addr: None,
            proto: None,
            iface: None,
            owners: OwnerFilter::default(),
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

/// The filter's address in the form the predicates compare (IPv4 and v4-mapped IPv6 alike).
fn addr_key(a: IpAddr) -> AddrKey {
    match a.to_canonical() {
        IpAddr::V4(v4) => v4_mapped(&v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// An address as the kernel's structures hold it: IPv4 in the first 4 bytes, or IPv6.
fn raw_addr(a: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

/// A decoded socket back in the kernel's layout, for the shared predicate.
fn sock_info(s: &Socket) -> SockInfo {
    SockInfo {
        sk: s.sk,
        ino: s.ino,
        netns: s.netns,
        family: s.family,
        protocol: s.protocol,
        lport: s.lport,
        rport: s.rport,
        state: s.state,
        flags: 0,
        _pad: [0; 2],
        laddr: raw_addr(s.laddr),
        raddr: raw_addr(s.raddr),
    }
}

impl FilterSet for WatchFilter {
    fn any_port(&self) -> bool {
        self.ports.is_empty()
    }
    fn has_port(&self, port: u16) -> bool {
        self.ports.contains(port)
    }
    fn has_proto(&self, proto: u8) -> bool {
        self.proto.is_none_or(|p| p.number() == proto)
    }
    fn any_addr(&self) -> bool {
        self.addr.is_none()
    }
    fn has_v4_addr(&self) -> bool {
        self.addr.is_some_and(|a| a.to_canonical().is_ipv4())
    }
    fn has_v6_addr(&self) -> bool {
        self.addr.is_some_and(|a| a.to_canonical().is_ipv6())
    }
    fn has_addr(&self, addr: &AddrKey) -> bool {
        self.addr.is_some_and(|a| addr_key(a) == *addr)
    }
}

impl WatchFilter {
    /// Every packet on one port (the demo's filter).
    pub fn port(port: u16) -> Self {
        Self {
            ports: PortSet::single(port),
            ..Self::default()
        }
    }

    /// `port` is one of the ports named (false when none was: then every port is watched).
    pub fn port_named(&self, port: u16) -> bool {
        self.ports.contains(port)
    }

    /// The kernel's socket filter, in user space (owners apart: see `owner_matches`).
    pub fn socket_matches(&self, s: &Socket) -> bool {
        s.sk != 0 && sock_matches(self, &sock_info(s))
    }

    /// A received packet on interface `iface`, by its headers; one whose headers did not
    /// parse passed the kernel's filter, which read them, and passes.
    pub fn packet_matches(&self, iface: &str, h: Option<&Headers>) -> bool {
        if self.iface.as_ref().is_some_and(|i| i != iface) {
            return false;
        }
        let Some(h) = h else {
            return true;
        };
        let flow = Flow {
            version: h.ip_version,
            l4_proto: h.proto,
            sport: h.sport.unwrap_or(0),
            dport: h.dport.unwrap_or(0),
            ..Flow::default()
        };
        packet_matches(self, &flow)
            && packet_addrs_match(self, h.ip_version, &raw_addr(h.src), &raw_addr(h.dst))
    }

    /// Process `pid` named `comm` is a watched owner (every process is, without `--pid`/`--comm`).
    pub fn owner_matches(&self, pid: u32, comm: &str) -> bool {
        self.owners.matches(pid, comm)
    }

    /// One of `owners` (pid, comm), the processes a finished journey concerns, is a watched
    /// owner; every journey is watched without `--pid`/`--comm`, and none that concerns no
    /// process is with them.
    pub fn any_owner_matches<'a>(&self, owners: impl IntoIterator<Item = (u32, &'a str)>) -> bool {
        self.owners.is_empty()
            || owners
                .into_iter()
                .any(|(pid, comm)| self.owners.matches(pid, comm))
    }

    /// A short description for the start-up line: "port 4000, tcp, on lo".
    pub fn describe(&self) -> String {
        let mut parts = vec![self.ports.describe()];
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
        if !self.owners.is_empty() {
            parts.push(self.owners.describe());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests;
