//! A listener with `listen(fd, 1)` that never accepts: two connections fill its accept queue,
//! and the third client's SYNs are taken in and freed without an answer (the kernel's
//! ListenOverflows). Each of those SYNs' journeys must name the listener (process and fd), say
//! the queue was full, and join the client's retransmissions to its first SYN; tcpdump counts
//! the SYNs and sees no SYN-ACK for them.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{expect_hooks, free_port, Capture, Netns, Watch};

#[test]
fn syns_to_a_full_accept_queue_name_the_listener_and_their_retransmissions() {
    let ns = Netns::new("acceptq");
    let port = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let (listener_fd, third_port) = ns.run(move || {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(addr).unwrap();
        let fd = listener.as_raw_fd();
        // listen() again on a listening socket sets its backlog.
        // SAFETY: a valid listening socket fd.
        assert_eq!(unsafe { libc::listen(fd, 1) }, 0);
        // Two connections complete their handshakes and wait in the queue (it is full once it
        // holds more than the backlog).
        let a = TcpStream::connect(addr).unwrap();
        let b = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The third: its SYN at once, then again each time the client's retransmission timer
        // fires (after 1 s, 3 s on older kernels; every second for the first few on kernels with
        // net.ipv4.tcp_syn_linear_timeouts), until the client gives up.
        let s = socket2_connect(addr, Duration::from_millis(3500));
        drop((a, b, listener));
        (fd, s)
    });

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{dump}");
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{}",
        captured.join("\n")
    );
    let on_wire = captured
        .iter()
        .filter(|l| l.contains(&format!(".{third_port} > 127.0.0.1.{port}: Flags [S]")))
        .count();
    assert!(
        on_wire >= 2,
        "the SYN and its retransmissions:\n{}",
        captured.join("\n")
    );
    assert!(
        !captured
            .iter()
            .any(|l| l.contains(&format!(".{port} > 127.0.0.1.{third_port}: Flags [S."))),
        "a SYN-ACK answered the third client:\n{}",
        captured.join("\n")
    );

    let me = std::process::id();
    let syns: Vec<&Value> = r
        .with_flags(&["SYN"])
        .into_iter()
        .filter(|j| j["sport"] == third_port)
        .collect();
    assert_eq!(syns.len(), on_wire, "{dump}");
    let first = syns[0]["id"].as_u64().unwrap();
    for (n, j) in syns.iter().enumerate() {
        assert_eq!(j["complete"], true, "{dump}");
        assert_eq!(j["outcome"]["kind"], "dropped", "{dump}");
        let text = j["outcome"]["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("SYN not answered by listener 127.0.0.1:{port} (")),
            "{text}"
        );
        assert!(
            text.contains(&format!("[{me}] fd {listener_fd})")),
            "{text}"
        );
        if expect_hooks() {
            // The lookup read the queue in the kernel: two waiting, backlog 1.
            assert!(text.contains(": accept queue full (2 of 1)"), "{text}");
        } else {
            assert!(
                text.contains(": its accept queue or SYN queue was full"),
                "{text}"
            );
        }
        assert!(
            text.contains(
                ": SYN dropped, the client sends it again when its retransmission timer fires \
                 (1 s, then longer)"
            ),
            "{text}"
        );
        if n == 0 {
            assert!(!text.contains("; retransmission "), "{text}");
        } else {
            assert!(
                text.contains(&format!(
                    "; retransmission {n} of the SYN of journey {first}, "
                )),
                "{text}"
            );
        }
        let consumed = j["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "consume_skb")
            .unwrap_or_else(|| panic!("no consume_skb stage\n{dump}"));
        assert_eq!(consumed["hook"], "tp_btf");
    }
}

/// Connects to `addr` without waiting longer than `timeout`, as a client that gives up; returns
/// the local port its SYNs came from.
fn socket2_connect(addr: SocketAddr, timeout: Duration) -> u16 {
    // SAFETY: plain socket calls on an fd this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SO_SNDTIMEO bounds a blocking connect().
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only")
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, -1, "the third connection must not complete");
        let mut local: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        libc::getsockname(fd, (&mut local as *mut libc::sockaddr_in).cast(), &mut len);
        libc::close(fd);
        u16::from_be(local.sin_port)
    }
}
