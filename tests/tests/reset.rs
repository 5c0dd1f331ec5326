//! An abortive close: one end sets SO_LINGER {on, 0} and closes, which sends a RST instead of a
//! FIN. The RST's journey must name the socket it reset and that socket's owner (process, fd),
//! show ESTABLISHED -> CLOSE, and tell the owner's read that failed with ECONNRESET, whether the
//! read was blocked when the RST came or made later; tcpdump sees exactly one RST.

use std::{
    io::{ErrorKind, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{connect_from, free_port, Capture, Netns, VethPair, Watch};

/// Sets SO_LINGER {on, 0}: close() then aborts the connection with a RST.
fn linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// When the reader reads: blocked in read() when the RST comes, or in a read() made after it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reader {
    Blocked,
    Later,
    /// Never: the owner closes the socket without a read after the RST.
    Never,
}

/// What the reading side did: its fd, the system call it read with and what that returned
/// (None: it closed without a read), and the reading thread's name (the comm the kernel
/// reports for it).
struct Side {
    fd: i32,
    read: Option<(&'static str, std::io::Error)>,
    comm: String,
}

/// The reader's end `c` (connected, its peer `s`): read as `when` says while `s` aborts. The
/// blocked reader calls read(2); the later one reads as std does, with recv(), which glibc
/// makes a recvfrom system call.
fn abort_and_read(mut c: TcpStream, s: TcpStream, when: Reader) -> Side {
    let fd = c.as_raw_fd();
    linger_zero(&s);
    let reader = std::thread::spawn(move || {
        let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        let mut buf = [0u8; 64];
        let read = match when {
            Reader::Blocked => {
                // SAFETY: a valid fd and a buffer of the length passed.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                assert_eq!(n, -1, "the read fails");
                Some(("read", std::io::Error::last_os_error()))
            }
            Reader::Later => {
                // Long after the RST came and reset the socket.
                std::thread::sleep(Duration::from_millis(300));
                Some(("recvfrom", c.read(&mut buf).expect_err("the read fails")))
            }
            Reader::Never => {
                std::thread::sleep(Duration::from_millis(300));
                None
            }
        };
        // Keep the socket open until the read's result is known.
        drop(c);
        (read, comm.trim().to_string())
    });
    // A blocked reader is in read() by now.
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    let (read, comm) = reader.join().unwrap();
    Side { fd, read, comm }
}

fn stage<'a>(j: &'a Value, name: &str) -> Option<&'a Value> {
    j["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
}

/// The journey of the RST `from` -> `to` (addr:port each), checked against what the reader did.
fn check_rst(
    r: &sockpath_tests::Report,
    captured: &[String],
    from: SocketAddr,
    to: SocketAddr,
    side: &Side,
) {
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{dump}");
    if let Some((_, err)) = &side.read {
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    }
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{}",
        captured.join("\n")
    );
    // tcpdump's witness: exactly one RST, from the aborting end.
    let rsts: Vec<&String> = captured.iter().filter(|l| l.contains("Flags [R")).collect();
    assert_eq!(rsts.len(), 1, "{}", captured.join("\n"));
    let tcpdump_addr = |a: SocketAddr| format!("{}.{}", a.ip(), a.port());
    assert!(
        rsts[0].contains(&format!("{} > {}:", tcpdump_addr(from), tcpdump_addr(to))),
        "{}",
        rsts[0]
    );

    let rst: Vec<&Value> = r
        .journeys
        .iter()
        .filter(|j| {
            j["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "RST"))
        })
        .collect();
    assert_eq!(rst.len(), 1, "{dump}");
    let j = rst[0];
    assert_eq!(j["src"], from.ip().to_string(), "{dump}");
    assert_eq!(j["sport"], from.port(), "{dump}");
    assert_eq!(j["dport"], to.port(), "{dump}");
    assert_eq!(j["complete"], true, "{dump}");

    // The socket it reset, and who holds it: this test process, through the reader's fd.
    let me = std::process::id();
    assert_eq!(j["socket"]["local"], to.to_string(), "{dump}");
    assert_eq!(j["socket"]["remote"], from.to_string(), "{dump}");
    assert_eq!(j["socket"]["owner"]["pid"], me, "{dump}");
    assert_eq!(j["socket"]["owner"]["fd"], side.fd, "{dump}");

    // ESTABLISHED -> CLOSE on that socket.
    let changes = j["state_changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["from"] == "ESTABLISHED" && c["to"] == "CLOSE"),
        "{dump}"
    );
    assert!(stage(j, "tcp_receive_reset").is_some(), "{dump}");

    // The outcome: the reset, the error, and the owner's read that returned it (or its close).
    let out = &j["outcome"];
    assert_eq!(out["kind"], "reset_received", "{dump}");
    assert_eq!(out["reason"], "ECONNRESET", "{dump}");
    let text = out["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("connection reset on {to} <- {from} ESTABLISHED (")),
        "{text}\n{dump}"
    );
    let Some((syscall, _)) = &side.read else {
        let closed = format!(
            "closed by {}[{me}] without a read after the reset",
            side.comm
        );
        assert!(text.ends_with(&format!("; {closed}")), "{text}\n{dump}");
        let stage = stage(j, "tcp_destroy_sock")
            .unwrap_or_else(|| panic!("no close in the journey\n{dump}"));
        assert_eq!(
            stage["detail"],
            format!("{closed}: the error went unread"),
            "{dump}"
        );
        assert_eq!(out["pid"], Value::Null, "{dump}");
        return;
    };
    assert!(stage(j, "tcp_destroy_sock").is_none(), "{dump}");
    assert_eq!(out["pid"], me, "{dump}");
    assert_eq!(out["fd"], side.fd, "{dump}");
    assert_eq!(out["syscall"], *syscall, "{dump}");
    assert_eq!(out["comm"], side.comm, "{dump}");
    let call = format!(
        "{syscall}({}) = -1 ECONNRESET in {}[{me}]",
        side.fd, side.comm
    );
    let failed =
        stage(j, "read fails").unwrap_or_else(|| panic!("no failed read in the journey\n{dump}"));
    assert_eq!(failed["detail"], call, "{dump}");
    assert!(text.ends_with(&format!("; {call}")), "{text}\n{dump}");
}

fn on_loopback(when: Reader) {
    on_loopback_at("127.0.0.1", when);
}

/// The same on loopback address `ip` (IPv4 or IPv6, as a socket address writes it).
fn on_loopback_at(ip: &str, when: Reader) {
    let ns = Netns::new("reset");
    let port = free_port();
    let cport = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let server: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let client: SocketAddr = format!("{ip}:{cport}").parse().unwrap();
    let side = ns.run(move || {
        let listener = TcpListener::bind(server).unwrap();
        let c = connect_from(client, server).unwrap();
        let (s, _) = listener.accept().unwrap();
        // The server aborts; the client reads.
        abort_and_read(c, s, when)
    });

    let r = watch.stop();
    let captured = cap.stop();
    check_rst(&r, &captured, server, client, &side);
}

#[test]
fn a_reset_names_the_blocked_reader_whose_read_failed() {
    on_loopback(Reader::Blocked);
}

#[test]
fn a_reset_names_the_later_read_that_failed() {
    on_loopback(Reader::Later);
}

#[test]
fn a_reset_names_the_owner_that_closed_without_reading() {
    on_loopback(Reader::Never);
}

#[test]
fn a_reset_over_ipv6_names_the_blocked_reader_whose_read_failed() {
    on_loopback_at("[::1]", Reader::Blocked);
}

#[test]
fn a_reset_over_veth_names_the_reader() {
    let pair = VethPair::new();
    let port = free_port();
    let filter = format!("tcp port {port}");
    let cap = Capture::start(&pair.b, &pair.b_if, &filter);
    let watch = Watch::start(&["--port", &port.to_string()]);

    let server: SocketAddr = format!("{}:{port}", pair.b_addr).parse().unwrap();
    let listener = pair.b.run(move || TcpListener::bind(server).unwrap());
    let c = pair.a.run(move || TcpStream::connect(server).unwrap());
    let client = c.local_addr().unwrap();
    let (s, _) = listener.accept().unwrap();
    // The client (namespace a) aborts; the server (namespace b) is blocked in read().
    let side = abort_and_read(s, c, Reader::Blocked);

    let r = watch.stop();
    let captured = cap.stop();
    check_rst(&r, &captured, client, server, &side);
    let rst = r
        .journeys
        .iter()
        .find(|j| {
            j["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "RST"))
        })
        .unwrap();
    assert_eq!(rst["iface"], *pair.b_if, "{}", r.dump());
}
