//! The server closes first (as most servers do): its socket lives on as a time-wait socket, and
//! the client's FIN reaches that socket, which answers with an ACK. The FIN's journey must name
//! the time-wait socket and the ACK it sent, as tcpdump saw it, not call the FIN a drop, and
//! say how long the socket had left: the namespace's FIN_WAIT2 timeout (set here to 30 s, so it
//! cannot pass for TIME_WAIT's fixed 60 s) less the time since the server closed, where the
//! lookup saw it; TIME_WAIT's 60 s, just restarted by the FIN, where only the drop names it.

use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use serde_json::Value;
use sockpath_tests::{connect_from, free_port, Capture, Netns, Watch};

fn stage<'a>(j: &'a Value, name: &str) -> Option<&'a Value> {
    j["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
}

#[test]
fn a_fin_to_a_time_wait_socket_is_answered_by_it() {
    let ns = Netns::new("timewait");
    const FIN_TIMEOUT_S: u64 = 30;
    ns.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.tcp_fin_timeout={FIN_TIMEOUT_S}"),
    ]);
    let port = free_port();
    let cport = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let elapsed = ns.run(move || {
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(server_addr).unwrap();
        let local: SocketAddr = format!("127.0.0.1:{cport}").parse().unwrap();
        let mut c = connect_from(local, server_addr).unwrap();
        // The server closes first: its FIN, the client's ACK of it (the server's socket, closed
        // by its owner, becomes a time-wait socket in FIN_WAIT2).
        let (s, _) = listener.accept().unwrap();
        let closed = Instant::now();
        drop(s);
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf).unwrap(), 0, "end of file from the server");
        std::thread::sleep(Duration::from_millis(50));
        // The client's FIN reaches the time-wait socket.
        let elapsed = closed.elapsed();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
        elapsed
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

    // tcpdump's witness: the client's FIN, then an ACK from the server's port after it.
    let fin_at = captured
        .iter()
        .position(|l| l.contains(&format!(".{cport} > 127.0.0.1.{port}: Flags [F.]")))
        .unwrap_or_else(|| panic!("no client FIN captured:\n{}", captured.join("\n")));
    assert!(
        captured[fin_at + 1..]
            .iter()
            .any(|l| l.contains(&format!(".{port} > 127.0.0.1.{cport}: Flags [.]"))),
        "the FIN was not answered with an ACK on the wire:\n{}",
        captured.join("\n")
    );

    let fin = r
        .journeys
        .iter()
        .find(|j| {
            j["sport"] == cport
                && j["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "FIN"))
        })
        .unwrap_or_else(|| panic!("no journey for the client's FIN\n{dump}"));
    assert_eq!(fin["complete"], true, "{dump}");
    assert_eq!(fin["outcome"]["kind"], "consumed", "{dump}");
    let text = fin["outcome"]["text"].as_str().unwrap();
    let tw = format!("handled by the time-wait socket 127.0.0.1:{port} <- 127.0.0.1:{cport}");
    assert!(text.starts_with(&tw), "{text}\n{dump}");
    assert!(
        text.contains("(FIN_WAIT2)") || text.contains("(TIME_WAIT)"),
        "{text}"
    );
    assert!(text.contains(": ACK sent"), "{text}\n{dump}");
    let lookup = stage(fin, "socket lookup").unwrap_or_else(|| panic!("no lookup\n{dump}"));
    let detail = lookup["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "time-wait socket 127.0.0.1:{port} <- 127.0.0.1:{cport}"
        )),
        "{dump}"
    );

    // The time left, as the JSON field and the stage's words tell it, against what the test
    // knows: FIN_WAIT2's timer was set when the client's ACK of the server's FIN came (just
    // after the server closed) and read when the client's FIN came `elapsed` later; TIME_WAIT's
    // is restarted at 60 s by that FIN. A wrong HZ (100, 300, 1000 for 250) misses by seconds.
    let left_ms = fin["outcome"]["time_wait_left_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no time_wait_left_ms\n{dump}"));
    let after = detail.contains("once it handled the segment");
    let (substate, expect_ms) = if after {
        ("TIME_WAIT", 60_000)
    } else {
        (
            "FIN_WAIT2",
            FIN_TIMEOUT_S * 1000 - elapsed.as_millis() as u64,
        )
    };
    assert!(detail.contains(&format!("({substate}")), "{detail}\n{dump}");
    assert!(
        left_ms.abs_diff(expect_ms) <= 500,
        "{left_ms} ms left of {substate}, expected about {expect_ms} ({elapsed:?} after the \
         close)\n{dump}"
    );
    assert!(
        detail.ends_with(&format!(
            ": {:.1} s left of {substate}",
            left_ms as f64 / 1000.0
        )),
        "{detail}"
    );
    let answer = stage(fin, "answer sent").unwrap_or_else(|| panic!("no answer stage\n{dump}"));
    assert_eq!(answer["hook"], "tp_btf");
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .starts_with("ACK sent by"));
    // Not counted as a drop.
    assert_eq!(r.summary["dropped"], 0, "{dump}");
}
