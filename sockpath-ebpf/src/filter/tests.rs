//! The predicates on sockets and packets as the kernel writes them (byte for byte: a `SockInfo`
//! is read from the 64 bytes the eBPF programs put in an event).

extern crate std;

use std::vec::Vec;

use super::*;
use crate::net::{AF_INET, IPPROTO_TCP, IPPROTO_UDP};

/// A filter as a test writes it: ports, protocol, addresses (empty = any).
#[derive(Default)]
struct Set {
    ports: Vec<u16>,
    proto: Option<u8>,
    addrs: Vec<AddrKey>,
}

impl FilterSet for Set {
    fn any_port(&self) -> bool {
        self.ports.is_empty()
    }
    fn has_port(&self, port: u16) -> bool {
        port != 0 && self.ports.contains(&port)
    }
    fn has_proto(&self, proto: u8) -> bool {
        self.proto.is_none_or(|p| p == proto)
    }
    fn any_addr(&self) -> bool {
        self.addrs.is_empty()
    }
    fn has_v4_addr(&self) -> bool {
        self.addrs.iter().any(is_v4_mapped)
    }
    fn has_v6_addr(&self) -> bool {
        self.addrs.iter().any(|a| !is_v4_mapped(a))
    }
    fn has_addr(&self, addr: &AddrKey) -> bool {
        self.addrs.contains(addr)
    }
}

fn v4(a: [u8; 4]) -> AddrKey {
    v4_mapped(&a)
}

const LO6: AddrKey = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn addr_filter(addrs: &[AddrKey]) -> Set {
    Set {
        addrs: addrs.to_vec(),
        ..Set::default()
    }
}

/// The 64 bytes of a `SockInfo` as `info_into` writes them: sk, ino, netns, family, protocol,
/// lport, rport, state, flags, padding, laddr, raddr.
fn sock_bytes(
    family: u16,
    protocol: u16,
    lport: u16,
    rport: u16,
    state: u8,
    laddr: &[u8],
    raddr: &[u8],
) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&0xffff_8881_0000_1000u64.to_ne_bytes());
    b[8..16].copy_from_slice(&4242u64.to_ne_bytes());
    b[16..20].copy_from_slice(&4026531840u32.to_ne_bytes());
    b[20..22].copy_from_slice(&family.to_ne_bytes());
    b[22..24].copy_from_slice(&protocol.to_ne_bytes());
    b[24..26].copy_from_slice(&lport.to_ne_bytes());
    b[26..28].copy_from_slice(&rport.to_ne_bytes());
    b[28] = state;
    b[32..32 + laddr.len()].copy_from_slice(laddr);
    b[48..48 + raddr.len()].copy_from_slice(raddr);
    b
}

fn sock(bytes: [u8; 64]) -> SockInfo {
    // SAFETY: SockInfo is repr(C), 64 bytes of integers and byte arrays: any bytes are valid.
    unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) }
}

fn mapped(a: [u8; 4]) -> [u8; 16] {
    v4_mapped(&a)
}

#[test]
fn sock_bytes_are_the_kernel_layout() {
    let s = sock(sock_bytes(
        AF_INET,
        6,
        4000,
        4444,
        1,
        &[127, 0, 0, 1],
        &[127, 0, 0, 2],
    ));
    assert_eq!(
        (s.family, s.protocol, s.lport, s.rport, s.state),
        (2, 6, 4000, 4444, 1)
    );
    assert_eq!(&s.laddr[..4], &[127, 0, 0, 1]);
    assert_eq!(&s.raddr[..4], &[127, 0, 0, 2]);
}

#[test]
fn ports_at_either_end_and_none_for_port_zero() {
    let f = Set {
        ports: [4000, 8000].to_vec(),
        ..Set::default()
    };
    let lo = [127, 0, 0, 1];
    assert!(sock_matches(
        &f,
        &sock(sock_bytes(AF_INET, 6, 4000, 0, 10, &lo, &[]))
    ));
    assert!(sock_matches(
        &f,
        &sock(sock_bytes(AF_INET, 6, 51000, 8000, 1, &lo, &lo))
    ));
    assert!(!sock_matches(
        &f,
        &sock(sock_bytes(AF_INET, 6, 51000, 4001, 1, &lo, &lo))
    ));
    // An unbound socket has no port: only a filter without ports takes it.
    assert!(!sock_matches(
        &f,
        &sock(sock_bytes(AF_INET, 6, 0, 0, 7, &[], &[]))
    ));
    assert!(sock_matches(
        &Set::default(),
        &sock(sock_bytes(AF_INET, 6, 0, 0, 7, &[], &[]))
    ));
    assert!(sock_undecided(&sock(sock_bytes(
        AF_INET,
        6,
        0,
        0,
        7,
        &[],
        &[]
    ))));
}

#[test]
fn request_and_timewait_sockets_have_protocol_zero_and_pass_a_protocol_filter() {
    let udp_only = Set {
        proto: Some(IPPROTO_UDP),
        ..Set::default()
    };
    let tcp_only = Set {
        proto: Some(IPPROTO_TCP),
        ..Set::default()
    };
    let lo = [127, 0, 0, 1];
    // TCP_NEW_SYN_RECV (12) and TIME_WAIT (6): only sock_common is read, protocol stays 0.
    for state in [12, 6] {
        let s = sock(sock_bytes(AF_INET, 0, 4000, 4444, state, &lo, &lo));
        assert!(sock_matches(&tcp_only, &s));
        assert!(sock_matches(&udp_only, &s));
    }
    let full = sock(sock_bytes(AF_INET, 6, 4000, 4444, 1, &lo, &lo));
    assert!(sock_matches(&tcp_only, &full));
    assert!(!sock_matches(&udp_only, &full));
}

#[test]
fn wildcard_local_address_receives_for_the_watched_address() {
    let v4_filter = addr_filter(&[v4([127, 0, 0, 2])]);
    let v6_filter = addr_filter(&[LO6]);
    let any4 = sock(sock_bytes(AF_INET, 6, 4000, 0, 10, &[0, 0, 0, 0], &[]));
    assert!(sock_matches(&v4_filter, &any4));
    // An AF_INET socket on 0.0.0.0 never receives IPv6.
    assert!(!sock_matches(&v6_filter, &any4));
    let other = sock(sock_bytes(AF_INET, 6, 4000, 0, 10, &[10, 0, 0, 1], &[]));
    assert!(!sock_matches(&v4_filter, &other));
    let bound = sock(sock_bytes(AF_INET, 6, 4000, 0, 10, &[127, 0, 0, 2], &[]));
    assert!(sock_matches(&v4_filter, &bound));
}

/// The dual-stack bug: a `[::]` listener (IPV6_V6ONLY off) takes IPv4 connections; it, and the
/// AF_INET6 sockets it accepts for them (v4-mapped addresses), must match an IPv4 address.
#[test]
fn dual_stack_listener_and_its_v4_mapped_children_match_an_ipv4_address() {
    let f = addr_filter(&[v4([127, 0, 0, 1])]);
    let listener = sock(sock_bytes(AF_INET6, 6, 4000, 0, 10, &[0; 16], &[0; 16]));
    assert!(sock_matches(&f, &listener));
    assert!(sock_matches(&addr_filter(&[LO6]), &listener));
    let m = mapped([127, 0, 0, 1]);
    let child = sock(sock_bytes(AF_INET6, 6, 4000, 51000, 1, &m, &m));
    assert!(sock_matches(&f, &child));
    // A request socket for the same connection (protocol 0, state NEW_SYN_RECV).
    let req = sock(sock_bytes(AF_INET6, 0, 4000, 51000, 12, &m, &m));
    assert!(sock_matches(&f, &req));
    // The same child does not match another IPv4 address, nor ::1.
    assert!(!sock_matches(&addr_filter(&[v4([127, 0, 0, 2])]), &child));
    assert!(!sock_matches(&addr_filter(&[LO6]), &child));
    // Bound to ::ffff:0.0.0.0: an IPv4-only wildcard.
    let v4_any = sock(sock_bytes(
        AF_INET6,
        6,
        4000,
        0,
        10,
        &mapped([0; 4]),
        &[0; 16],
    ));
    assert!(sock_matches(&f, &v4_any));
    assert!(!sock_matches(&addr_filter(&[LO6]), &v4_any));
}

#[test]
fn remote_address_matches_too() {
    let f = addr_filter(&[v4([10, 0, 0, 9])]);
    let s = sock(sock_bytes(
        AF_INET,
        17,
        5353,
        53,
        1,
        &[10, 0, 0, 1],
        &[10, 0, 0, 9],
    ));
    assert!(sock_matches(&f, &s));
    let m = mapped([10, 0, 0, 9]);
    let s6 = sock(sock_bytes(
        AF_INET6,
        17,
        5353,
        53,
        1,
        &mapped([10, 0, 0, 1]),
        &m,
    ));
    assert!(sock_matches(&f, &s6));
}

fn flow(version: u8, proto: u8, sport: u16, dport: u16) -> Flow {
    Flow {
        version,
        l4_proto: proto,
        sport,
        dport,
        ..Flow::default()
    }
}

/// Both checks, as device receive makes them.
fn packet(f: &Set, version: u8, proto: u8, ports: (u16, u16), src: &[u8], dst: &[u8]) -> bool {
    let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
    s[..src.len()].copy_from_slice(src);
    d[..dst.len()].copy_from_slice(dst);
    packet_matches(f, &flow(version, proto, ports.0, ports.1))
        && packet_addrs_match(f, version, &s, &d)
}

#[test]
fn packets_by_port_protocol_and_address() {
    let f = Set {
        ports: [4000].to_vec(),
        proto: Some(IPPROTO_TCP),
        addrs: [v4([127, 0, 0, 1])].to_vec(),
    };
    let lo = [127, 0, 0, 1];
    assert!(packet(&f, 4, 6, (51000, 4000), &lo, &lo));
    assert!(packet(&f, 4, 6, (4000, 51000), &lo, &[127, 0, 0, 9]));
    assert!(packet(&f, 4, 6, (4000, 51000), &[127, 0, 0, 9], &lo));
    assert!(!packet(&f, 4, 17, (51000, 4000), &lo, &lo));
    assert!(!packet(&f, 4, 6, (51000, 4001), &lo, &lo));
    assert!(!packet(
        &f,
        4,
        6,
        (51000, 4000),
        &[10, 0, 0, 1],
        &[10, 0, 0, 2]
    ));
    // ICMP has no ports: only a filter without ports takes it.
    assert!(!packet(&f, 4, 1, (0, 0), &lo, &lo));
    assert!(packet(&Set::default(), 4, 1, (0, 0), &lo, &lo));
    // An IPv6 packet from ::1 is not 127.0.0.1; its own address matches its own filter.
    assert!(!packet(&f, 6, 6, (51000, 4000), &LO6, &LO6));
    assert!(packet(
        &addr_filter(&[LO6]),
        6,
        6,
        (51000, 4000),
        &LO6,
        &LO6
    ));
    // Without addresses in the set, addresses are not looked at.
    assert!(packet_addrs_match(&Set::default(), 4, &[0; 16], &[0; 16]));
}
