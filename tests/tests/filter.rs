//! The filter: one predicate shared by the kernel and user space (an IPv4 address filter follows
//! IPv4 connections into a dual-stack `[::]` listener), port sets with ranges, and the owner
//! filters (`--pid`, `--comm`), each against tcpdump's count of the packets on the wire.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsRawFd, FromRawFd},
    path::PathBuf,
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{free_port, ports, Capture, Netns, Peer, Report, Watch};

fn peer_bin() -> PathBuf {
    std::env::var_os("SOCKPATH_TEST_PEER")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sockpath-test-peer").into())
}

fn one<'a>(v: Vec<&'a Value>, what: &str, dump: &str) -> &'a Value {
    assert_eq!(v.len(), 1, "expected exactly one {what}\n{dump}");
    v[0]
}

/// A TCP listener on `[::]:port` that also takes IPv4 connections (IPV6_V6ONLY off, set
/// explicitly rather than left to the net.ipv6.bindv6only default).
fn dual_stack_listener(port: u16) -> TcpListener {
    // SAFETY: plain socket calls on an fd owned here, with valid pointers and lengths.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let l = TcpListener::from_raw_fd(fd);
        let off: libc::c_int = 0;
        let rc = libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "IPV6_V6ONLY: {}", std::io::Error::last_os_error());
        let sin6 = libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: port.to_be(),
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
            sin6_scope_id: 0,
        };
        let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let rc = libc::bind(fd, (&sin6 as *const libc::sockaddr_in6).cast(), len);
        assert_eq!(
            rc,
            0,
            "bind [::]:{port}: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::listen(fd, 16), 0);
        l
    }
}

/// `--addr 127.0.0.1` and a `[::]` listener taking an IPv4 connection: the listener and the
/// AF_INET6 socket it accepts (v4-mapped addresses) are watched sockets, so the SYN reaches the
/// listener, the accept and the read are seen, each with the test's pid.
#[test]
fn ipv4_address_filter_follows_a_connection_into_a_dual_stack_listener() {
    let ns = Netns::new("dual");
    let port = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--addr", "127.0.0.1", "--port", &port.to_string()]);

    let (listener_fd, accepted_fd, client_port) = ns.run(move || {
        let listener = dual_stack_listener(port);
        let listener_fd = listener.as_raw_fd();
        let server = std::thread::spawn(move || {
            let (s, peer) = listener.accept().unwrap();
            assert!(
                peer.is_ipv6(),
                "a dual-stack listener gives v4-mapped peers: {peer}"
            );
            let fd = s.as_raw_fd();
            let mut buf = [0u8; 64];
            // SAFETY: reading into a buffer of the size given, on an fd this thread owns.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            assert_eq!(n, 6, "read: {}", std::io::Error::last_os_error());
            assert_eq!(&buf[..6], b"salam\n");
            drop(s);
            fd
        });
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut c = TcpStream::connect(to).unwrap();
        let client_port = c.local_addr().unwrap().port();
        c.write_all(b"salam\n").unwrap();
        let accepted_fd = server.join().unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(100));
        (listener_fd, accepted_fd, client_port)
    });

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    let me = std::process::id();
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.start["filter"],
        format!("port {port}, address 127.0.0.1, on any interface"),
        "{dump}"
    );
    // Every packet tcpdump saw on the port is a journey, no more.
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{}",
        captured.join("\n")
    );

    // The SYN reached the dual-stack listener, which answered.
    let syn = one(r.with_flags(&["SYN"]), "SYN", &dump);
    assert_eq!(syn["sport"], client_port);
    assert_eq!(syn["outcome"]["kind"], "syn_ack_sent", "{dump}");
    assert_eq!(syn["socket"]["local"], format!("[::]:{port}"), "{dump}");
    assert_eq!(syn["socket"]["state"], "LISTEN");
    assert_eq!(syn["socket"]["owner"]["pid"], me, "{dump}");
    assert_eq!(syn["socket"]["owner"]["fd"], listener_fd, "{dump}");

    // The third packet made the connection the test accepted.
    let third = r
        .journeys
        .iter()
        .find(|j| j["outcome"]["kind"] == "accepted")
        .unwrap_or_else(|| panic!("no accepted ACK\n{dump}"));
    assert_eq!(third["dport"], port);
    assert_eq!(third["outcome"]["pid"], me, "{dump}");
    assert_eq!(third["outcome"]["fd"], accepted_fd, "{dump}");
    let accept = one(r.syscalls_named("accept4"), "accept4", &dump);
    assert_eq!(accept["pid"], me);
    assert_eq!(accept["fd"], listener_fd);
    assert_eq!(accept["ret"], accepted_fd);

    // The 6-byte data segment went to the accepted AF_INET6 socket and was read by the test's
    // read(2), all 6 bytes.
    let data = one(
        r.journeys
            .iter()
            .filter(|j| j["payload_len"] == 6)
            .collect(),
        "data segment",
        &dump,
    );
    assert_eq!(data["sport"], client_port);
    assert_eq!(
        data["socket"]["local"],
        format!("127.0.0.1:{port}"),
        "{dump}"
    );
    assert_eq!(data["outcome"]["kind"], "read", "{dump}");
    assert_eq!(data["outcome"]["pid"], me, "{dump}");
    assert_eq!(data["outcome"]["syscall"], "read", "{dump}");
    assert_eq!(data["outcome"]["fd"], accepted_fd, "{dump}");
    assert_eq!(data["outcome"]["bytes"], 6, "{dump}");
    // And every journey reached its end, with nothing missing.
    for j in &r.journeys {
        assert_eq!(j["ip_version"], 4, "{dump}");
        assert_eq!(j["complete"], true, "incomplete journey\n{dump}");
    }
}

/// Three ports free on this machine: `p`, `p+1`, `p+2`.
fn free_range() -> u16 {
    loop {
        let p = free_port();
        if p > 65000 {
            continue;
        }
        let free = (1..3u16).all(|i| {
            TcpListener::bind(("127.0.0.1", p + i)).is_ok()
                && UdpSocket::bind(("127.0.0.1", p + i)).is_ok()
        });
        if free {
            return p;
        }
    }
}

/// The journeys with a port in `watched` at either end, by that port.
fn count_by_port(watched: &[u16], pairs: impl Iterator<Item = (u16, u16)>) -> Vec<usize> {
    let pairs: Vec<(u16, u16)> = pairs.collect();
    watched
        .iter()
        .map(|w| pairs.iter().filter(|(s, d)| s == w || d == w).count())
        .collect()
}

fn journey_ports(r: &Report) -> impl Iterator<Item = (u16, u16)> + '_ {
    r.journeys.iter().map(|j| {
        (
            j["sport"].as_u64().unwrap_or(0) as u16,
            j["dport"].as_u64().unwrap_or(0) as u16,
        )
    })
}

/// `--port P --port R-R+2`: datagrams to P, R and R+2, a TCP connection to R+1, and datagrams
/// to a port outside: exactly the watched ports' packets are journeys, as many per port as
/// tcpdump saw.
#[test]
fn several_ports_and_a_range_watch_exactly_their_packets() {
    let ns = Netns::new("ports");
    let single = free_port();
    let r0 = free_range();
    let outside = free_port();
    let client = free_port();
    let watched = [single, r0, r0 + 1, r0 + 2];
    assert!(!watched.contains(&outside) && !watched.contains(&client));
    let cap = Capture::start(&ns, "lo", "tcp or udp");
    let range = format!("{r0}-{}", r0 + 2);
    let watch = Watch::start(&["--port", &single.to_string(), "--port", &range]);

    ns.run(move || {
        let lo = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
        let tx = UdpSocket::bind(lo(client)).unwrap();
        for p in [single, r0, r0 + 2, outside] {
            let rx = UdpSocket::bind(lo(p)).unwrap();
            tx.send_to(b"hello", lo(p)).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(rx.recv(&mut buf).unwrap(), 5);
        }
        // Also over TCP to the middle of the range: packets from the watched port count too.
        let l = TcpListener::bind(lo(r0 + 1)).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let mut c = TcpStream::connect(lo(r0 + 1)).unwrap();
        c.write_all(b"abc").unwrap();
        drop(c);
        assert_eq!(server.join().unwrap(), b"abc");
        // And TCP outside: a refused connection, SYN and RST.
        assert!(TcpStream::connect(lo(outside)).is_err());
        std::thread::sleep(Duration::from_millis(100));
    });

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.start["filter"],
        format!("ports {single}, {range}, on any interface")
    );
    let wire: Vec<(u16, u16)> = captured.iter().filter_map(|l| ports(l)).collect();
    let on_wire = count_by_port(&watched, wire.iter().copied());
    let seen = count_by_port(&watched, journey_ports(&r));
    assert_eq!(
        seen,
        on_wire,
        "journeys per watched port {watched:?}\n{dump}\ncaptured:\n{}",
        captured.join("\n")
    );
    // One datagram for each UDP port, a connection's worth for the TCP one.
    assert_eq!(&on_wire[..2], [1, 1]);
    assert_eq!(on_wire[3], 1);
    assert!(on_wire[2] >= 7, "{on_wire:?}");
    // Nothing else: every journey has a watched port, and the outside port's packets (which
    // tcpdump saw) are none of them.
    let wanted = wire
        .iter()
        .filter(|(s, d)| watched.contains(s) || watched.contains(d))
        .count();
    assert_eq!(r.journeys.len(), wanted, "{dump}");
    assert!(
        wire.iter().filter(|(_, d)| *d == outside).count() >= 2,
        "the traffic outside was on the wire"
    );
    assert!(
        journey_ports(&r).all(|(s, d)| watched.contains(&s) || watched.contains(&d)),
        "{dump}"
    );
    for j in &r.journeys {
        assert_eq!(j["complete"], true, "incomplete journey\n{dump}");
    }
}

/// Connects to `to`, sends `data`, and leaves the connection open (returned).
fn send_and_hold(to: SocketAddr, data: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(to).unwrap();
    c.write_all(data).unwrap();
    c
}

fn wait_accepted(p: &Peer, n: usize) {
    for _ in 0..100 {
        if p.accepted().len() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("peer {} accepted {:?}", p.pid, p.accepted());
}

/// `--pid` of one of two servers: only the packets that reach its sockets are journeys (as
/// many as tcpdump saw to its port, the end of a connection it closed included), and only its
/// system calls are shown.
#[test]
fn pid_filter_shows_only_that_servers_journeys_and_syscalls() {
    let ns = Netns::new("pid");
    let (pa, pb) = (free_port(), free_port());
    let a = Peer::listen(&peer_bin(), &ns, &format!("127.0.0.1:{pa}"), false);
    let b = Peer::listen(&peer_bin(), &ns, &format!("127.0.0.1:{pb}"), false);
    let cap = Capture::start(&ns, "lo", &format!("tcp dst port {pa}"));
    let watch = Watch::start(&["--pid", &a.pid.to_string()]);

    let lo = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
    // A's accept() of the first connection began before sockpath: that one is only known
    // from the listener. The connection ends, and A closes it and accepts the second one
    // under sockpath's eyes.
    let first = ns.run(move || send_and_hold(lo(pa), b"to a"));
    let to_b = ns.run(move || send_and_hold(lo(pb), b"to b"));
    wait_accepted(&a, 1);
    wait_accepted(&b, 1);
    drop(first);
    let second = ns.run(move || send_and_hold(lo(pa), b"again!"));
    wait_accepted(&a, 2);
    // Let the servers read before sockpath stops; the connections still open stay so until
    // the capture ends.
    std::thread::sleep(Duration::from_millis(300));
    let r = watch.stop();
    let captured = cap.stop();
    drop((second, to_b));
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.start["filter"],
        format!("all ports, on any interface, owned by pid {}", a.pid)
    );

    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured to {pa}:\n{}",
        captured.join("\n")
    );
    for j in &r.journeys {
        assert_eq!(j["dport"], pa, "{dump}");
        assert_eq!(j["complete"], true, "incomplete journey\n{dump}");
    }
    let syns = r.with_flags(&["SYN"]);
    assert_eq!(syns.len(), 2, "{dump}");
    for syn in syns {
        assert_eq!(syn["socket"]["owner"]["pid"], a.pid, "{dump}");
        assert_eq!(syn["socket"]["owner"]["fd"], a.fd, "{dump}");
    }
    let accepted = a.accepted();
    for (len, fd) in [(4, accepted[0].0), (6, accepted[1].0)] {
        let data = one(
            r.journeys
                .iter()
                .filter(|j| j["payload_len"] == len)
                .collect(),
            "data segment to A",
            &dump,
        );
        assert_eq!(data["outcome"]["kind"], "read", "{dump}");
        assert_eq!(data["outcome"]["pid"], a.pid);
        assert_eq!(data["outcome"]["fd"], fd);
    }

    assert!(!r.syscalls.is_empty(), "{dump}");
    for s in &r.syscalls {
        assert_eq!(s["pid"], a.pid, "a syscall not A's\n{dump}");
    }
    let accept = one(r.syscalls_named("accept4"), "accept4", &dump);
    assert_eq!(accept["ret"], accepted[1].0);
    assert_eq!(accept["fd"], a.fd);
    assert!(
        r.syscalls_named("close")
            .iter()
            .any(|c| c["fd"] == accepted[0].0),
        "A's close of the first connection\n{dump}"
    );
}

/// `--comm` names a server that starts after sockpath: the kernel learns its port from its
/// bind() and listen(), so the first packet to it is already a journey; a listener of the test
/// process on another port stays out.
#[test]
fn comm_filter_follows_a_server_started_later() {
    let ns = Netns::new("comm");
    let (pc, other) = (free_port(), free_port());
    let cap = Capture::start(&ns, "lo", &format!("tcp dst port {pc}"));
    // The kernel keeps 15 bytes of the name: "sockpath-test-peer" is "sockpath-test-p".
    let watch = Watch::start(&["--comm", "sockpath-test-p"]);
    let peer = Peer::listen(&peer_bin(), &ns, &format!("127.0.0.1:{pc}"), false);

    let held = ns.run(move || {
        let lo = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
        let l = TcpListener::bind(lo(other)).unwrap();
        let mine = send_and_hold(lo(other), b"not it");
        let (accepted, _) = l.accept().unwrap();
        vec![send_and_hold(lo(pc), b"to the peer"), mine, accepted]
    });
    wait_accepted(&peer, 1);
    std::thread::sleep(Duration::from_millis(300));
    let r = watch.stop();
    let captured = cap.stop();
    drop(held);
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{dump}");

    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured to {pc}:\n{}",
        captured.join("\n")
    );
    for j in &r.journeys {
        assert_eq!(j["dport"], pc, "{dump}");
    }
    let syn = one(r.with_flags(&["SYN"]), "SYN", &dump);
    assert_eq!(syn["outcome"]["kind"], "syn_ack_sent", "{dump}");
    assert_eq!(syn["socket"]["owner"]["pid"], peer.pid, "{dump}");
    let data = one(
        r.journeys
            .iter()
            .filter(|j| j["payload_len"] == 11)
            .collect(),
        "data segment to the peer",
        &dump,
    );
    assert_eq!(data["outcome"]["kind"], "read", "{dump}");
    assert_eq!(data["outcome"]["pid"], peer.pid);
    // The peer's own calls, from its socket() on, and no one else's.
    for name in ["socket", "bind", "listen", "accept4"] {
        let calls = r.syscalls_named(name);
        assert!(
            calls.iter().any(|c| c["pid"] == peer.pid),
            "no {name} of the peer\n{dump}"
        );
    }
    for s in &r.syscalls {
        assert_eq!(s["pid"], peer.pid, "a syscall not the peer's\n{dump}");
    }
}
