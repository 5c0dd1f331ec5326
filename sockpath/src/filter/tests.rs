use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sockpath_ebpf::{
    config::{
        FILTER_ACTIVE, FILTER_ADDR_V4, FILTER_ANY_ADDR, FILTER_ANY_IFACE, FILTER_ANY_PORT,
        FILTER_ANY_PROTO, FILTER_COMMS, FILTER_LEARN_PORTS, FILTER_OWNERS, PROTO_TCP, PROTO_UDP,
    },
    net::{AF_INET, AF_INET6, IPPROTO_TCP},
};

use super::*;
use crate::packet::fixture::{tcp4, udp4};

fn sock(family: u16, l: u16, r: u16, laddr: IpAddr, raddr: IpAddr) -> Socket {
    Socket {
        sk: 1,
        ino: 0,
        netns: 0,
        family,
        protocol: IPPROTO_TCP as u16,
        lport: l,
        rport: r,
        state: 1,
        reuseport: false,
        laddr,
        raddr,
    }
}

fn v4sock(l: u16, r: u16, laddr: IpAddr) -> Socket {
    sock(AF_INET, l, r, laddr, IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[test]
fn wildcard_bound_socket_matches_address_filter() {
    let f = WatchFilter {
        ports: PortSet::single(4000),
        addr: Some("127.0.0.2".parse().unwrap()),
        ..Default::default()
    };
    assert!(f.socket_matches(&v4sock(4000, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
    assert!(!f.socket_matches(&v4sock(4000, 0, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))));
    assert!(!f.socket_matches(&v4sock(5000, 0, IpAddr::V4(Ipv4Addr::UNSPECIFIED))));
}

/// The dual-stack case as user space sees it: a `[::]` listener and the AF_INET6 socket it
/// accepted for an IPv4 client, decoded with v4-mapped addresses.
#[test]
fn dual_stack_sockets_match_an_ipv4_address() {
    let f = WatchFilter {
        addr: Some("127.0.0.1".parse().unwrap()),
        ..Default::default()
    };
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(f.socket_matches(&sock(AF_INET6, 4000, 0, any6, any6)));
    assert!(f.socket_matches(&sock(AF_INET6, 4000, 51000, mapped, mapped)));
    let other = WatchFilter {
        addr: Some("127.0.0.9".parse().unwrap()),
        ..Default::default()
    };
    assert!(!other.socket_matches(&sock(AF_INET6, 4000, 51000, mapped, mapped)));
    // Given in v4-mapped form, the filter's address is the same IPv4 address.
    let f6 = WatchFilter {
        addr: Some(mapped),
        ..Default::default()
    };
    assert!(f6.socket_matches(&v4sock(4000, 51000, IpAddr::V4(Ipv4Addr::LOCALHOST))));
}

#[test]
fn packets_by_port_set_protocol_and_interface() {
    let f = WatchFilter {
        ports: PortSet::new([
            PortRange::single(4000),
            parse_port_range("8000-8010").unwrap(),
        ]),
        proto: Some(Proto::Udp),
        iface: Some("lo".into()),
        ..Default::default()
    };
    let h = |frame: Vec<u8>| Headers::parse(0x0800, 14, &frame).unwrap();
    assert!(f.packet_matches("lo", Some(&h(udp4(5000, 4000, b"x")))));
    assert!(f.packet_matches("lo", Some(&h(udp4(8005, 5000, b"x")))));
    assert!(!f.packet_matches("lo", Some(&h(udp4(5000, 8011, b"x")))));
    assert!(!f.packet_matches("eth0", Some(&h(udp4(5000, 4000, b"x")))));
    assert!(!f.packet_matches("lo", Some(&h(tcp4(5000, 4000, 1, None, "S", &[])))));
    // Headers the kernel could read and user space could not: the kernel's word stands.
    assert!(f.packet_matches("lo", None));
}

fn owners(pids: &[u32], comms: &[&str]) -> OwnerFilter {
    OwnerFilter {
        pids: pids.iter().copied().collect(),
        comms: comms.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn owner_filter_by_pid_or_comm() {
    let none = OwnerFilter::default();
    assert!(none.matches(1, "init"));
    let o = owners(&[100, 200], &["nginx"]);
    assert!(o.matches(100, "server"));
    assert!(o.matches(300, "nginx"));
    assert!(!o.matches(300, "nginx2"));
    assert!(!o.matches(300, "server"));
    assert_eq!(o.describe(), "owned by pid 100, 200 or comm nginx");
    assert_eq!(owners(&[7], &[]).describe(), "owned by pid 7");
}

#[test]
fn the_kernel_set_of_one_filter() {
    let f = WatchFilter {
        ports: PortSet::new([
            PortRange::single(4000),
            parse_port_range("8000-8002").unwrap(),
        ]),
        addr: Some("10.0.0.1".parse().unwrap()),
        proto: Some(Proto::Udp),
        iface: Some("veth0".into()),
        snaplen: 100_000,
        ..Default::default()
    };
    let k = KernelSet::of([&f]);
    for p in [4000, 8000, 8001, 8002] {
        assert!(k.has_port(p), "{p}");
    }
    for p in [0, 3999, 4001, 7999, 8003] {
        assert!(!k.has_port(p), "{p}");
    }
    let c = k.config();
    assert_eq!(c.flags, FILTER_ACTIVE | FILTER_ADDR_V4);
    assert_eq!(c.protos, PROTO_UDP);
    assert_eq!(
        k.addrs.iter().next().unwrap(),
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]
    );
    assert_eq!(&k.ifaces.iter().next().unwrap()[..6], b"veth0\0");
}

#[test]
fn the_kernel_set_is_the_union_of_the_filters() {
    let a = WatchFilter {
        ports: PortSet::single(4000),
        proto: Some(Proto::Tcp),
        ..Default::default()
    };
    let b = WatchFilter {
        owners: owners(&[42], &["nginx"]),
        proto: Some(Proto::Udp),
        iface: Some("lo".into()),
        ..Default::default()
    };
    let k = KernelSet::of([&a, &b]);
    let c = k.config();
    // a's port; b's owners, whose ports the kernel learns.
    assert!(k.has_port(4000));
    assert_eq!(
        c.flags,
        FILTER_ACTIVE
            | FILTER_ANY_ADDR
            | FILTER_ANY_IFACE
            | FILTER_OWNERS
            | FILTER_COMMS
            | FILTER_LEARN_PORTS
    );
    assert_eq!(c.protos, PROTO_TCP | PROTO_UDP);
    assert!(k.tgids.contains(&42));
    assert!(k.comms.contains(&super::kernel_set::name_key("nginx")));
    // Any filter without ports or owners opens every port.
    let all = KernelSet::of([&a, &WatchFilter::default()]);
    assert_eq!(
        all.config().flags,
        FILTER_ACTIVE | FILTER_ANY_PORT | FILTER_ANY_PROTO | FILTER_ANY_ADDR | FILTER_ANY_IFACE
    );
    // No client: nothing, not even device receive's first read.
    assert_eq!(KernelSet::nothing().config().flags, 0);
    assert_eq!(KernelSet::of([]).config().flags & FILTER_ACTIVE, 0);
}

#[test]
fn today_descriptions_are_unchanged_and_new_options_are_described() {
    assert_eq!(
        WatchFilter::port(4000).describe(),
        "port 4000, on any interface"
    );
    let f = WatchFilter {
        ports: PortSet::single(4000),
        addr: Some("::1".parse().unwrap()),
        proto: Some(Proto::Tcp),
        iface: Some("lo".into()),
        ..Default::default()
    };
    assert_eq!(f.describe(), "port 4000, address ::1, tcp, on lo");
    assert_eq!(
        WatchFilter::default().describe(),
        "all ports, on any interface"
    );
    let g = WatchFilter {
        ports: PortSet::new([
            PortRange::single(4000),
            parse_port_range("8000-8010").unwrap(),
        ]),
        owners: owners(&[12], &["nginx"]),
        ..Default::default()
    };
    assert_eq!(
        g.describe(),
        "ports 4000, 8000-8010, on any interface, owned by pid 12 or comm nginx"
    );
}
