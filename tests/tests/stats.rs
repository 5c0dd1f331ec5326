//! `sockpath stats`: counts kept in the kernel equal the traffic the test made, exactly, on
//! loopback in a namespace of the test's own; bad input is refused with exit code 2.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{bin, drop_reason, free_port, require_root, Netns, Report, Watch};

/// `sockpath stats --json --standalone ARGS`, running until it printed its start line.
fn stats(args: &[&str]) -> Watch {
    require_root();
    let mut c = Command::new(bin());
    c.args(["stats", "--json", "--standalone", "--interval", "0.2"])
        .args(args);
    Watch::spawn(c)
}

/// The port's object (to the port) in the "total" line.
fn port<'a>(total: &'a Value, port: u16, proto: &str) -> &'a Value {
    total["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == port && p["proto"] == proto && p["direction"] == "to")
        .unwrap_or_else(|| panic!("no entry for {port}/{proto} in {total}"))
}

fn lines<'a>(r: &'a Report, kind: &str) -> Vec<&'a Value> {
    r.other.iter().filter(|v| v["type"] == kind).collect()
}

fn stage<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
}

/// The total, and a check that the intervals add up to it.
fn total(r: &Report) -> Value {
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    let totals = lines(r, "total");
    assert_eq!(totals.len(), 1, "{:?}", r.other);
    let total = totals[0].clone();
    let intervals = lines(r, "interval");
    assert!(intervals.len() >= 2, "{:?}", r.other);
    let summed: u64 = intervals
        .iter()
        .map(|i| i["packets_matched"].as_u64().unwrap())
        .sum();
    assert_eq!(
        summed,
        total["packets_matched"].as_u64().unwrap(),
        "{total}"
    );
    total
}

#[test]
fn stats_udp_datagrams_read_and_to_a_closed_port_are_counted_exactly() {
    const READ: usize = 50;
    const CLOSED: usize = 7;
    let ns = Netns::new("stats-udp");
    let (open, closed) = (free_port(), free_port());
    let s = stats(&[
        "--port",
        &open.to_string(),
        "--port",
        &closed.to_string(),
        "--proto",
        "udp",
    ]);
    assert_eq!(s.start["type"], "start");
    ns.run(move || {
        let to: SocketAddr = format!("127.0.0.1:{open}").parse().unwrap();
        let rx = UdpSocket::bind(to).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 64];
        for i in 0..READ {
            tx.send_to(format!("datagram {i}").as_bytes(), to).unwrap();
            rx.recv_from(&mut buf).unwrap();
        }
        let nobody: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
        for _ in 0..CLOSED {
            tx.send_to(b"anyone?", nobody).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    // At least two intervals pass before the end.
    std::thread::sleep(Duration::from_millis(300));
    let r = s.stop();
    let total = total(&r);

    let p = port(&total, open, "udp");
    let n = READ as u64;
    for (field, want) in [
        ("matched", n),
        ("queued", n),
        ("read", n),
        ("dropped", 0),
        ("icmp_sent", 0),
        ("accepted", 0),
    ] {
        assert_eq!(p[field], want, "{field} of {p}");
    }
    for name in ["device -> queue", "queue -> read", "device -> read"] {
        let st = stage(p, name).unwrap_or_else(|| panic!("{name} missing: {p}"));
        assert_eq!(st["count"], n, "{st}");
        let (p50, p99, max) = (
            st["p50_ns"].as_u64().unwrap(),
            st["p99_ns"].as_u64().unwrap(),
            st["max_ns"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{st}");
        // Loopback in this process: well under a second, even under emulation.
        assert!(max < 1_000_000_000, "{st}");
    }
    assert!(stage(p, "device -> drop").is_none(), "{p}");

    let c = port(&total, closed, "udp");
    let m = CLOSED as u64;
    for (field, want) in [
        ("matched", m),
        ("queued", 0),
        ("read", 0),
        ("dropped", m),
        ("icmp_sent", m),
    ] {
        assert_eq!(c[field], want, "{field} of {c}");
    }
    assert_eq!(
        c["drops"],
        serde_json::json!([[drop_reason("NO_SOCKET"), m]]),
        "{c}"
    );
    assert_eq!(stage(c, "device -> drop").unwrap()["count"], m, "{c}");
    // The ICMP errors went to the sender's port: nothing else was counted.
    assert_eq!(total["packets_matched"], n + m, "{total}");
    assert_eq!(total["events_lost"], 0, "{total}");
}

#[test]
fn stats_tcp_connections_accepted_and_read_and_one_refused() {
    const CONNECTIONS: usize = 5;
    let ns = Netns::new("stats-tcp");
    let (open, closed) = (free_port(), free_port());
    let s = stats(&["--port", &open.to_string(), "--port", &closed.to_string()]);
    ns.run(move || {
        let addr: SocketAddr = format!("127.0.0.1:{open}").parse().unwrap();
        let l = TcpListener::bind(addr).unwrap();
        for _ in 0..CONNECTIONS {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"hello").unwrap();
            let (mut a, _) = l.accept().unwrap();
            let mut buf = [0u8; 5];
            a.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            drop(a);
            drop(c);
        }
        let nobody: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
        let e = TcpStream::connect(nobody).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = s.stop();
    let total = total(&r);

    let k = CONNECTIONS as u64;
    let p = port(&total, open, "tcp");
    assert_eq!(p["accept_queued"], k, "{p}");
    assert_eq!(p["accepted"], k, "{p}");
    // One data segment per connection, each read once (the FINs carry nothing to read).
    assert_eq!(p["read"], k, "{p}");
    assert_eq!(p["reset_sent"], 0, "{p}");
    assert!(p["queued"].as_u64().unwrap() >= k, "{p}");
    assert_eq!(stage(p, "device -> read").unwrap()["count"], k, "{p}");
    // The server's side of each connection: its SYN-ACK, FIN and ACKs, to the client.
    let replies = total["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["port"] == open && e["direction"] == "from")
        .unwrap_or_else(|| panic!("no replies from {open}: {total}"));
    assert!(replies["matched"].as_u64().unwrap() >= 2 * k, "{replies}");
    assert_eq!(replies["read"], 0, "{replies}");

    let c = port(&total, closed, "tcp");
    assert_eq!(c["matched"], 1, "{c}");
    assert_eq!(c["reset_sent"], 1, "{c}");
    assert_eq!(c["dropped"], 1, "{c}");
    assert_eq!(
        c["drops"],
        serde_json::json!([[drop_reason("NO_SOCKET"), 1]]),
        "{c}"
    );
}

#[test]
fn stats_table_is_printed_every_interval_until_the_duration_ends() {
    require_root();
    let port = free_port();
    let out = Command::new(bin())
        .args([
            "stats",
            "--standalone",
            "--port",
            &port.to_string(),
            "--interval",
            "0.3",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("sockpath stats: port "), "{stdout}");
    let intervals = stdout.lines().filter(|l| l.contains(" interval ")).count();
    // Three of 0.3 s and what is left of the second (fewer on a starved machine, never more).
    assert!((2..=4).contains(&intervals), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" total ")).count(),
        1,
        "{stdout}"
    );
}

#[test]
fn stats_bad_input_is_exit_code_2_with_a_message() {
    for (args, needle) in [
        (&["stats", "--interval", "0"][..], "--interval must be"),
        (&["stats", "--interval", "soon"], "invalid float"),
        (&["stats", "--duration=-1"], "--duration must be a positive"),
        (&["stats", "--port", "0"], "0 is not in 1..=65535"),
        (&["stats", "--port", "9-8"], "reversed"),
        (&["stats", "--bogus"], "unexpected argument '--bogus'"),
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
