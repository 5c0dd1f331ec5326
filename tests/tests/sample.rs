//! `sockpath watch --sample N`: one in N matched packets followed in full, every drop still
//! told in full, and the kernel's exact counts of all of them in the summary; checked against
//! what the test sent and tcpdump's capture, on loopback in a namespace of the test's own. Bad
//! values of N are refused with exit code 2.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    process::Command,
};

use serde_json::Value;
use sockpath_tests::{bin, drop_reason, free_port, ports, Capture, Netns, Watch};

const N: u64 = 10;

/// Keeps the calling thread on CPU 0. Loopback hands a sent datagram to the sending CPU's
/// backlog, so every packet of the test is received on CPU 0, and the kernel's per-CPU
/// countdown follows exactly the first of every N.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity get
    // valid pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A receive buffer as small as the kernel allows (SO_RCVBUF 1 is raised to its minimum).
fn tiny_buffer(s: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a valid pointer to an int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

fn to_port(j: &Value, port: u16) -> bool {
    j["dport"] == port
}

#[test]
fn sample_follows_one_in_n_and_tells_every_drop_with_exact_counts() {
    const READ: u64 = 200;
    const CLOSED: u64 = 7;
    const FLOOD: u64 = 40;
    let ns = Netns::new("sample");
    let (open, closed, small) = (free_port(), free_port(), free_port());
    let cap = Capture::start(
        &ns,
        "lo",
        &format!("udp and (dst port {open} or dst port {closed} or dst port {small})"),
    );
    let watch = Watch::start(&[
        "--port",
        &open.to_string(),
        "--port",
        &closed.to_string(),
        "--port",
        &small.to_string(),
        "--proto",
        "udp",
        "--sample",
        &N.to_string(),
    ]);

    // Datagrams read one by one, then some to a closed port, then a flood of a socket whose
    // receive buffer holds a few: how many it kept is read back, the others were dropped.
    let kept = ns.run(move || {
        pin_to_cpu0();
        let to: SocketAddr = format!("127.0.0.1:{open}").parse().unwrap();
        let rx = UdpSocket::bind(to).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..READ {
            tx.send_to(format!("datagram {i}").as_bytes(), to).unwrap();
            rx.recv_from(&mut buf).unwrap();
        }
        let nobody: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
        for _ in 0..CLOSED {
            tx.send_to(b"anyone?", nobody).unwrap();
        }
        let full: SocketAddr = format!("127.0.0.1:{small}").parse().unwrap();
        let srx = UdpSocket::bind(full).unwrap();
        tiny_buffer(&srx);
        for _ in 0..FLOOD {
            tx.send_to(&[7u8; 1000], full).unwrap();
        }
        srx.set_nonblocking(true).unwrap();
        let mut kept = 0u64;
        while srx.recv_from(&mut buf).is_ok() {
            kept += 1;
        }
        kept
    });
    assert!(
        0 < kept && kept < FLOOD,
        "the small buffer kept {kept} of {FLOOD}: nothing overflowed"
    );
    let overflowed = FLOOD - kept;
    // tcpdump (TPACKET_V3) hands packets over a block at a time, a block at the latest
    // when its timer (up to a second) retires it: the traffic here lasts less than that.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let wire = cap.stop();
    let r = watch.stop();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);

    // tcpdump saw what the test sent.
    let on_wire = |p: u16| {
        wire.iter()
            .filter(|l| ports(l).map(|x| x.1) == Some(p))
            .count() as u64
    };
    assert_eq!(
        (on_wire(open), on_wire(closed), on_wire(small)),
        (READ, CLOSED, FLOOD),
        "{wire:#?}"
    );
    let total = READ + CLOSED + FLOOD;

    // One in N followed, exactly: every packet came in on CPU 0, whose countdown follows the
    // 1st, the (N+1)th, ... of them.
    for j in &r.journeys {
        assert_eq!(j["sampled_one_in"], N, "{j}");
    }
    let followed: Vec<&Value> = r
        .journeys
        .iter()
        .filter(|j| j.get("sampled_out").is_none())
        .collect();
    let told: Vec<&Value> = r
        .journeys
        .iter()
        .filter(|j| j["sampled_out"] == true)
        .collect();
    assert_eq!(followed.len() as u64, total.div_ceil(N), "{}", r.dump());
    // The followed datagrams of the open port are whole journeys, each read by this test.
    let read: Vec<&&Value> = followed.iter().filter(|j| to_port(j, open)).collect();
    assert_eq!(read.len() as u64, READ.div_ceil(N), "{}", r.dump());
    for j in &read {
        assert_eq!(j["outcome"]["kind"], "read", "{j}");
        assert_eq!(j["complete"], true, "{j}");
        assert_eq!(j["outcome"]["pid"], std::process::id(), "{j}");
    }

    // Every drop is told, followed or not: each datagram to the closed port, each one the
    // small buffer had no room for.
    let dropped = |port: u16| -> Vec<&Value> {
        r.journeys
            .iter()
            .filter(|j| to_port(j, port) && j["outcome"]["kind"] == "dropped")
            .collect()
    };
    let no_socket = dropped(closed);
    assert_eq!(no_socket.len() as u64, CLOSED, "{}", r.dump());
    for j in &no_socket {
        // Before 5.17 kfree_skb gives no reason: sockpath says so.
        assert_eq!(j["outcome"]["reason"], drop_reason("NO_SOCKET"), "{j}");
        assert_eq!(j["outcome"]["icmp_sent"], "ICMP port unreachable", "{j}");
    }
    let rcvbuf = dropped(small);
    assert_eq!(rcvbuf.len() as u64, overflowed, "{}", r.dump());
    for j in &rcvbuf {
        assert_eq!(j["outcome"]["reason"], drop_reason("SOCKET_RCVBUFF"), "{j}");
    }
    // Told from the drop on: device receive, read again then, and the end; nothing
    // inferred in between, and not incomplete for it.
    assert!(!told.is_empty(), "{}", r.dump());
    for j in &told {
        assert_eq!(j["outcome"]["kind"], "dropped", "{j}");
        assert_eq!(j["complete"], true, "{j}");
        let stages = j["stages"].as_array().unwrap();
        assert_eq!(stages[0]["name"], "netif_receive_skb", "{j}");
        assert!(stages.iter().all(|s| s["hook"] != "inferred"), "{j}");
        assert!(
            [open, closed, small].iter().any(|p| to_port(j, *p)) && !to_port(j, open),
            "{j}"
        );
    }
    assert_eq!(
        told.len()
            + followed
                .iter()
                .filter(|j| j["outcome"]["kind"] == "dropped")
                .count(),
        (CLOSED + overflowed) as usize,
        "{}",
        r.dump()
    );

    // The counts of everything, followed or not, exact.
    let s = &r.summary;
    assert_eq!(s["sampled_one_in"], N, "{s}");
    assert_eq!(s["packets_matched"], total, "{s}");
    assert_eq!(s["events_lost"], 0, "{s}");
    let sampled = &s["sampled"];
    assert_eq!(sampled["followed"], followed.len(), "{s}");
    assert_eq!(sampled["told_at_end"], told.len(), "{s}");
    let c = &sampled["counted"];
    // UDP's full queue has a tracepoint naming the packet from 6.10 on (the hook table's
    // note); before, only its drop (SOCKET_RCVBUFF) is counted: 6.1 attaches the tracepoint,
    // whose arguments there are (rc, sk), and counted no full queue in two runs.
    let release = r.start["kernel"].as_str().unwrap_or("");
    let mut v = release
        .split(['.', '-'])
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let udp_queue_full = (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 10);
    let full = if udp_queue_full { overflowed } else { 0 };
    for (field, want) in [
        ("matched", total),
        ("queued", READ + kept),
        ("read", READ + kept),
        ("dropped", CLOSED + overflowed),
        ("icmp_sent", CLOSED),
        ("queue_full", full),
        ("uncounted", 0),
    ] {
        assert_eq!(c[field], want, "{field} of {s}");
    }
    // By count, most first, then by name; before 5.17 both under the one reason sockpath gives
    // for a kernel that names none.
    let mut drops: Vec<(&str, u64)> = Vec::new();
    for (reason, n) in [("SOCKET_RCVBUFF", overflowed), ("NO_SOCKET", CLOSED)] {
        let reason = drop_reason(reason);
        match drops.iter_mut().find(|d| d.0 == reason) {
            Some(d) => d.1 += n,
            None => drops.push((reason, n)),
        }
    }
    drops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    assert_eq!(c["drops"], serde_json::json!(drops), "{s}");
}

#[test]
fn sample_refuses_a_count_that_is_not_a_positive_number() {
    for (bad, says) in [
        ("0", "at least 1"),
        ("ten", "not a number"),
        ("-1", "not a number"),
        ("", "not a number"),
    ] {
        let out = Command::new(bin())
            .args(["watch", "--port", "4000", &format!("--sample={bad}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--sample {bad:?}: {err}");
        assert!(err.contains(says), "--sample {bad:?}: {err}");
    }
    // Through a daemon it cannot be: refused before any connection is tried.
    let out = Command::new(bin())
        .args([
            "watch",
            "--port",
            "4000",
            "--sample",
            "10",
            "--daemon",
            "/nonexistent/sockpath.sock",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--sample does not go through a daemon"),
        "{err}"
    );
}

/// Refused TCP connections with one in 100 followed: the SYN of every refusal is told, its
/// RST sent and its drop, though at most the first is followed.
#[test]
fn sample_tells_every_reset_sent() {
    const REFUSED: u64 = 12;
    let ns = Netns::new("sample-rst");
    let closed = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp dst port {closed}"));
    let watch = Watch::start(&["--port", &closed.to_string(), "--sample", "100"]);
    ns.run(move || {
        pin_to_cpu0();
        let nobody: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
        for _ in 0..REFUSED {
            let e = std::net::TcpStream::connect(nobody).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        }
    });
    // See the UDP test: tcpdump hands packets over a block at a time.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let wire = cap.stop();
    let r = watch.stop();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert_eq!(wire.len() as u64, REFUSED, "{wire:#?}");
    let syns: Vec<&Value> = r
        .with_flags(&["SYN"])
        .into_iter()
        .filter(|j| to_port(j, closed))
        .collect();
    assert_eq!(syns.len() as u64, REFUSED, "{}", r.dump());
    for j in &syns {
        assert_eq!(j["outcome"]["kind"], "dropped", "{j}");
        assert_eq!(j["outcome"]["reset_sent"], true, "{j}");
        assert_eq!(j["outcome"]["reason"], drop_reason("NO_SOCKET"), "{j}");
        assert_eq!(j["complete"], true, "{j}");
    }
    // The first SYN was followed (the first matched packet on CPU 0); the other SYNs were not.
    let told = syns.iter().filter(|j| j["sampled_out"] == true).count() as u64;
    assert_eq!(told, REFUSED - 1, "{}", r.dump());
    let c = &r.summary["sampled"]["counted"];
    assert_eq!(c["reset_sent"], REFUSED, "{}", r.summary);
}
