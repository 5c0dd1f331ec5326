//! The filter's predicates: whether a packet or a socket is one the user asked about. One
//! definition, run by the eBPF programs against the set in their maps and by user space against
//! the filter it parsed from the command line, so both sides agree on every packet and socket.
//!
//! Pure functions over plain data, without allocation or unbounded loops: everything here is
//! `#[inline(always)]` for the verifier.

use crate::{
    event::SockInfo,
    net::{is_v4_mapped, is_zero, v4_mapped, AddrKey, AF_INET6},
};

/// A set of ports, protocols and addresses to watch, as one side holds it: the kernel in its
/// maps (the union of what every client asked for), user space as one client's parsed filter.
pub trait FilterSet {
    /// Every port is watched (no port check).
    fn any_port(&self) -> bool;
    /// `port` is one of the watched ports. Never true for port 0 (no port: ICMP, fragments).
    fn has_port(&self, port: u16) -> bool;
    /// Packets and sockets of IP protocol `proto` are watched (true for all when any is).
    fn has_proto(&self, proto: u8) -> bool;
    /// Every address is watched (no address check).
    fn any_addr(&self) -> bool;
    /// At least one watched address is IPv4 / IPv6.
    fn has_v4_addr(&self) -> bool;
    fn has_v6_addr(&self) -> bool;
    /// `addr` (see [`AddrKey`]) is one of the watched addresses.
    fn has_addr(&self, addr: &AddrKey) -> bool;
}

/// The fields of a received packet the filter and the journey need, its addresses apart (see
/// [`packet_addrs_match`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Host byte order; 0 for a packet without ports (ICMP, a later fragment).
    pub sport: u16,
    pub dport: u16,
    /// Offset of the transport header from the network header (the kernel's fingerprint of the
    /// packet; user space leaves it 0).
    pub l4_off: u16,
    /// 4 or 6.
    pub version: u8,
    pub l4_proto: u8,
    /// Raw port bytes as on the wire (the kernel's fingerprint; user space leaves it 0).
    pub ports: u32,
}

/// Either port is watched. A port of 0 (none) never is.
#[inline(always)]
pub fn ports_match<F: FilterSet>(f: &F, a: u16, b: u16) -> bool {
    f.any_port() || f.has_port(a) || f.has_port(b)
}

/// The [`AddrKey`] of an address as a packet or socket of `version`/family holds it.
#[inline(always)]
fn key(v6: bool, a: &[u8; 16]) -> AddrKey {
    if v6 {
        *a
    } else {
        v4_mapped(a)
    }
}

/// Whether a received packet's ports and protocol are watched: a watched port at either end
/// and a watched protocol. Its addresses are checked apart ([`packet_addrs_match`]), and only
/// when the set has addresses: the kernel reads them from the packet then, and not for every
/// packet the machine gets. (The interface too is checked apart: it costs the kernel a read of
/// the device.)
#[inline(always)]
pub fn packet_matches<F: FilterSet>(f: &F, flow: &Flow) -> bool {
    ports_match(f, flow.sport, flow.dport) && f.has_proto(flow.l4_proto)
}

/// Whether a received packet's addresses are watched (either end), `version` 4 or 6; IPv4
/// addresses in the first 4 bytes.
#[inline(always)]
pub fn packet_addrs_match<F: FilterSet>(
    f: &F,
    version: u8,
    saddr: &[u8; 16],
    daddr: &[u8; 16],
) -> bool {
    if f.any_addr() {
        return true;
    }
    let v6 = version == 6;
    f.has_addr(&key(v6, saddr)) || f.has_addr(&key(v6, daddr))
}

/// Whether a socket is watched: a watched port at either end; a watched protocol (request and
/// time-wait sockets have no protocol field, 0, and pass); a watched address at either end, or
/// a local address that is a wildcard receiving for a watched address.
///
/// Addresses compare in v4-mapped form, so an AF_INET6 socket carrying an IPv4 connection
/// (::ffff:127.0.0.1) matches `127.0.0.1`. A socket bound to `::` receives IPv6, and IPv4 too
/// unless IPV6_V6ONLY is set (not read here: such a socket matches an IPv4 address as well);
/// one bound to 0.0.0.0 (or ::ffff:0.0.0.0) receives IPv4 only.
#[inline(always)]
pub fn sock_matches<F: FilterSet>(f: &F, si: &SockInfo) -> bool {
    if !ports_match(f, si.lport, si.rport) {
        return false;
    }
    if si.protocol != 0 && !f.has_proto(si.protocol as u8) {
        return false;
    }
    if f.any_addr() {
        return true;
    }
    let v6 = si.family == AF_INET6;
    let local = key(v6, &si.laddr);
    if is_zero(&local) {
        // `::`: dual-stack wildcard.
        if f.has_v6_addr() || f.has_v4_addr() {
            return true;
        }
    } else if is_v4_mapped(&local)
        && local[12] == 0
        && local[13] == 0
        && local[14] == 0
        && local[15] == 0
    {
        // 0.0.0.0, or ::ffff:0.0.0.0 on an AF_INET6 socket: IPv4 wildcard.
        if f.has_v4_addr() {
            return true;
        }
    } else if f.has_addr(&local) {
        return true;
    }
    f.has_addr(&key(v6, &si.raddr))
}

/// A socket neither bound nor connected yet: its first calls (socket, setsockopt) are reported
/// so user space can show them once a later call decides whether the socket is watched.
#[inline(always)]
pub fn sock_undecided(si: &SockInfo) -> bool {
    si.lport == 0 && si.rport == 0
}

#[cfg(test)]
mod tests;
