//! A listener's SYN queue fills with handshakes that never complete: clients in one namespace
//! send SYNs from an address that namespace does not own (IP_TRANSPARENT), so the server's
//! SYN-ACKs reach it and are dropped there, unanswered. With `listen(fd, 2)` the SYN queue is
//! full after two (three on kernels that count it full only past the limit); the next SYNs are
//! dropped (net.ipv4.tcp_syncookies=0) or answered with a SYN cookie (=1). Each journey must say
//! which, name the listener (the test's pid and fd) and, where the lookup is hooked, the SYN
//! queue's length and limit; tcpdump's SYN-ACKs and the server namespace's ListenDrops and
//! SyncookiesSent counters are the witnesses.

use std::{
    net::{SocketAddr, TcpListener},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{free_port, stage_hook, Capture, Netns, VethPair, Watch};

/// SYNs sent: enough to fill a SYN queue of 2 on either kind of kernel and go past it.
const CLIENTS: usize = 5;

/// The server namespace's TcpExt counter `name` (/proc/net/netstat).
fn tcp_ext(ns: &Netns, name: &str) -> u64 {
    let text = ns.exec(&["cat", "/proc/net/netstat"]);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (names, values) = (lines[0], lines[1]);
    let i = names
        .split_whitespace()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no {name} in /proc/net/netstat"));
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

/// `a` as the kernel takes it: a sockaddr_in or sockaddr_in6 in a sockaddr_storage, and its
/// length.
fn raw(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: a zeroed sockaddr_storage is valid; it is larger than either form written in.
    unsafe {
        let mut st: libc::sockaddr_storage = std::mem::zeroed();
        let len = match a {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin);
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: 0,
                };
                std::ptr::write((&mut st as *mut libc::sockaddr_storage).cast(), sin6);
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (st, len as libc::socklen_t)
    }
}

/// A non-blocking connect() from `local`, an address this namespace does not own
/// (IP_TRANSPARENT or IPV6_TRANSPARENT lets a socket send from it): its SYN leaves, the
/// SYN-ACK is dropped here.
fn connect_from_elsewhere(local: SocketAddr, remote: SocketAddr) -> OwnedFd {
    let (family, level, transparent) = if local.is_ipv4() {
        (libc::AF_INET, libc::SOL_IP, libc::IP_TRANSPARENT)
    } else {
        (libc::AF_INET6, libc::SOL_IPV6, libc::IPV6_TRANSPARENT)
    };
    // SAFETY: plain socket calls on an fd owned here, with valid pointers and lengths.
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let rc = libc::setsockopt(
            fd,
            level,
            transparent,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "IP_TRANSPARENT: {}", std::io::Error::last_os_error());
        let (l, len) = raw(local);
        let rc = libc::bind(fd, (&l as *const libc::sockaddr_storage).cast(), len);
        assert_eq!(rc, 0, "bind {local}: {}", std::io::Error::last_os_error());
        let (r, len) = raw(remote);
        let rc = libc::connect(fd, (&r as *const libc::sockaddr_storage).cast(), len);
        assert_eq!(rc, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINPROGRESS)
        );
        owned
    }
}

/// The clients' address: in namespace a's subnet, owned by no one. Namespace b sends its
/// SYN-ACKs to namespace a's device (a static neighbour), where they are not for a local
/// address and, forwarding being off, are dropped.
fn address_elsewhere(pair: &VethPair) -> String {
    let elsewhere = match pair.a_addr.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.3"),
        None => format!("{}::3", pair.a_addr.rsplit_once("::").unwrap().0),
    };
    let a_mac = pair
        .a
        .exec(&["cat", &format!("/sys/class/net/{}/address", pair.a_if)]);
    pair.b.exec(&[
        "ip",
        "neigh",
        "add",
        &elsewhere,
        "lladdr",
        a_mac.trim(),
        "dev",
        &pair.b_if,
        "nud",
        "permanent",
    ]);
    elsewhere
}

/// `ip`:`port` as a socket address (IPv6 in brackets).
fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn syns_past_a_full_syn_queue(cookies: bool, v6: bool) {
    let pair = if v6 {
        VethPair::new_v6()
    } else {
        VethPair::new()
    };
    let port = free_port();
    pair.b.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.tcp_syncookies={}", u8::from(cookies)),
    ]);
    let elsewhere = address_elsewhere(&pair);
    let cports: Vec<u16> = (0..CLIENTS).map(|_| free_port()).collect();
    let drops_before = tcp_ext(&pair.b, "ListenDrops");
    let cookies_before = tcp_ext(&pair.b, "SyncookiesSent");
    let cap = Capture::start(&pair.b, &pair.b_if, &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let server = at(&pair.b_addr, port);
    let listener = pair.b.run(move || {
        let l = TcpListener::bind(server).unwrap();
        // SAFETY: a valid listening socket fd.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 2) }, 0);
        l
    });
    let listener_fd = listener.as_raw_fd();
    let from: Vec<SocketAddr> = cports.iter().map(|p| at(&elsewhere, *p)).collect();
    pair.a.run(move || {
        let mut v = Vec::new();
        for local in from {
            v.push(connect_from_elsewhere(local, server));
            std::thread::sleep(Duration::from_millis(50));
        }
        // Done before the first retransmission timers (1 s) fire on either side: closing a
        // socket in SYN_SENT sends nothing, and stops its retransmissions.
        std::thread::sleep(Duration::from_millis(200));
        drop(v);
    });
    // Its request sockets go with it, silently.
    drop(listener);

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    let wire = captured.join("\n");
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{wire}"
    );

    // tcpdump's witness: each client's SYN, and which got a SYN-ACK.
    let synack_to = |cport: u16| {
        captured
            .iter()
            .any(|l| l.contains(&format!(".{port} > {elsewhere}.{cport}: Flags [S.]")))
    };
    for cport in &cports {
        let syns = captured
            .iter()
            .filter(|l| l.contains(&format!("{elsewhere}.{cport} > ")) && l.contains("[S]"))
            .count();
        assert_eq!(syns, 1, "one SYN from port {cport}:\n{wire}");
    }
    let drops = tcp_ext(&pair.b, "ListenDrops") - drops_before;
    let cookies_sent = tcp_ext(&pair.b, "SyncookiesSent") - cookies_before;

    let me = std::process::id();
    let hooked = stage_hook(&r.start, "socket lookup").is_some();
    let syn_of = |cport: u16| -> &Value {
        r.journeys
            .iter()
            .find(|j| j["sport"] == cport && j["src"] == *elsewhere)
            .unwrap_or_else(|| panic!("no journey for the SYN from port {cport}\n{dump}"))
    };
    // The SYNs the listener took into its SYN queue: a plain SYN-ACK each, from a request
    // socket.
    let queued = cports
        .iter()
        .take_while(|p| synack_to(**p) && syn_of(**p)["outcome"]["kind"] == "syn_ack_sent")
        .take_while(|p| {
            !syn_of(**p)["outcome"]["text"]
                .as_str()
                .unwrap()
                .contains("SYN cookie")
        })
        .count();
    assert!(
        (2..=3).contains(&queued),
        "the SYN queue of 2 takes 2 or 3 handshakes, took {queued}\n{dump}\n{wire}"
    );
    let past: Vec<u16> = cports[queued..].to_vec();
    for cport in &past {
        let j = syn_of(*cport);
        assert_eq!(j["complete"], true, "{dump}");
        let out = &j["outcome"];
        let text = out["text"].as_str().unwrap();
        let who = format!("listener {server} (");
        assert!(text.contains(&who), "{text}\n{dump}");
        assert!(
            text.contains(&format!("[{me}] fd {listener_fd})")),
            "{text}\n{dump}"
        );
        if cookies {
            assert!(
                synack_to(*cport),
                "a SYN-ACK answered port {cport}:\n{wire}"
            );
            assert_eq!(out["kind"], "syn_ack_sent", "{dump}");
            assert!(text.contains(" answered with a SYN cookie"), "{text}");
            let sent = j["stages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "SYN-ACK sent")
                .unwrap_or_else(|| panic!("no SYN-ACK stage\n{dump}"));
            assert_eq!(
                sent["detail"],
                "SYN-ACK with a SYN cookie sent, from no socket: the listener kept no request socket"
            );
            if hooked {
                assert!(
                    text.contains(&format!(
                        ": its SYN queue was full ({queued} of 2 handshakes in progress)"
                    )),
                    "{text}"
                );
            }
        } else {
            assert!(!synack_to(*cport), "no SYN-ACK for port {cport}:\n{wire}");
            assert_eq!(out["kind"], "dropped", "{dump}");
            if hooked {
                assert!(
                    text.contains(&format!(
                        ": SYN queue full ({queued} of 2 handshakes in progress) and no SYN \
                         cookies"
                    )),
                    "{text}"
                );
            } else {
                assert!(
                    text.contains(": its accept queue or SYN queue was full"),
                    "{text}"
                );
            }
        }
    }
    // The kernel's own count agrees.
    if cookies {
        assert_eq!(cookies_sent, past.len() as u64, "SyncookiesSent\n{dump}");
    } else {
        assert_eq!(drops, past.len() as u64, "ListenDrops\n{dump}");
        assert_eq!(cookies_sent, 0);
    }
}

#[test]
fn syns_past_a_full_syn_queue_are_dropped_without_cookies() {
    syns_past_a_full_syn_queue(false, false);
}

#[test]
fn syns_past_a_full_ipv6_syn_queue_are_dropped_without_cookies() {
    syns_past_a_full_syn_queue(false, true);
}

#[test]
fn syns_past_a_full_syn_queue_are_answered_with_cookies() {
    syns_past_a_full_syn_queue(true, false);
}

/// net.ipv4.tcp_max_syn_backlog of the server's namespace, small.
const MAX_SYN_BACKLOG: usize = 8;
/// The SYNs a listener takes in before that rule drops the next: while
/// `backlog - qlen >= backlog / 4`, i.e. qlen up to 6 of 8.
const UNDER_THREE_QUARTERS: usize = MAX_SYN_BACKLOG - MAX_SYN_BACKLOG / 4 + 1;

/// Without SYN cookies, tcp_conn_request() drops a SYN from a peer it has not seen alive before
/// once the SYN queue has reached 3/4 of net.ipv4.tcp_max_syn_backlog, though neither queue is
/// full (the listen() backlog here is 64). The journeys must say so with the numbers; tcpdump's
/// SYN-ACKs and the namespace's counters (ListenDrops up, TCPReqQFullDrop and ListenOverflows,
/// the full queues' counters, not) are the witnesses.
#[test]
fn syns_past_three_quarters_of_tcp_max_syn_backlog_in_the_syn_queue_are_dropped() {
    const SYNS: usize = UNDER_THREE_QUARTERS + 3;
    let pair = VethPair::new();
    let port = free_port();
    pair.b.exec(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=0"]);
    pair.b.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.tcp_max_syn_backlog={MAX_SYN_BACKLOG}"),
    ]);
    let elsewhere = address_elsewhere(&pair);
    let cports: Vec<u16> = (0..SYNS).map(|_| free_port()).collect();
    let before = |name| tcp_ext(&pair.b, name);
    let (drops_before, qfull_before, overflows_before) = (
        before("ListenDrops"),
        before("TCPReqQFullDrop"),
        before("ListenOverflows"),
    );
    let cap = Capture::start(&pair.b, &pair.b_if, &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let server = at(&pair.b_addr, port);
    let listener = pair.b.run(move || {
        let l = TcpListener::bind(server).unwrap();
        // SAFETY: a valid listening socket fd.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 64) }, 0);
        l
    });
    let listener_fd = listener.as_raw_fd();
    let from: Vec<SocketAddr> = cports.iter().map(|p| at(&elsewhere, *p)).collect();
    pair.a.run(move || {
        let mut v = Vec::new();
        for local in from {
            v.push(connect_from_elsewhere(local, server));
            std::thread::sleep(Duration::from_millis(30));
        }
        // Before the first retransmission timers (1 s) fire on either side.
        std::thread::sleep(Duration::from_millis(200));
        drop(v);
    });
    drop(listener);

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    let wire = captured.join("\n");
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{wire}"
    );
    let synack_to = |cport: u16| {
        captured
            .iter()
            .any(|l| l.contains(&format!(".{port} > {elsewhere}.{cport}: Flags [S.]")))
    };
    // tcpdump: the first SYNs answered, the rest not.
    let answered: Vec<bool> = cports.iter().map(|p| synack_to(*p)).collect();
    let mut expected = vec![true; UNDER_THREE_QUARTERS];
    expected.resize(SYNS, false);
    assert_eq!(answered, expected, "SYN-ACKs on the wire:\n{wire}");
    let after = |name| tcp_ext(&pair.b, name);
    assert_eq!(
        after("ListenDrops") - drops_before,
        (SYNS - UNDER_THREE_QUARTERS) as u64,
        "ListenDrops\n{dump}"
    );
    assert_eq!(after("TCPReqQFullDrop") - qfull_before, 0, "{dump}");
    assert_eq!(after("ListenOverflows") - overflows_before, 0, "{dump}");

    let me = std::process::id();
    let hooked = stage_hook(&r.start, "socket lookup").is_some();
    for (i, cport) in cports.iter().enumerate() {
        let j = r
            .journeys
            .iter()
            .find(|j| j["sport"] == *cport && j["src"] == *elsewhere)
            .unwrap_or_else(|| panic!("no journey for the SYN from port {cport}\n{dump}"));
        assert_eq!(j["complete"], true, "{dump}");
        let out = &j["outcome"];
        let text = out["text"].as_str().unwrap();
        if i < UNDER_THREE_QUARTERS {
            assert_eq!(out["kind"], "syn_ack_sent", "{dump}");
            continue;
        }
        assert_eq!(out["kind"], "dropped", "{dump}");
        assert!(
            text.starts_with(&format!("SYN not answered by listener {server} (")),
            "{text}"
        );
        assert!(
            text.contains(&format!("[{me}] fd {listener_fd})")),
            "{text}\n{dump}"
        );
        if hooked {
            // Each dropped SYN found the queue holding the ones answered.
            let q = UNDER_THREE_QUARTERS;
            let b = MAX_SYN_BACKLOG;
            assert!(
                text.contains(&format!(
                    ": its SYN queue ({q} handshakes in progress) had reached 3/4 of \
                     net.ipv4.tcp_max_syn_backlog ({b}; {b} - {q} < {b} / 4) with no SYN cookies \
                     (net.ipv4.tcp_syncookies=0)"
                )),
                "{text}\n{dump}"
            );
        } else {
            assert!(
                text.contains(
                    "or without SYN cookies its SYN queue had reached 3/4 of \
                     net.ipv4.tcp_max_syn_backlog"
                ),
                "{text}"
            );
        }
        assert!(
            text.contains(": SYN dropped, the client sends it again"),
            "{text}"
        );
    }
}
