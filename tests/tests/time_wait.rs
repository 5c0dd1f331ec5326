//! The server closes first (as most servers do): its socket lives on as a time-wait socket, and
//! the client's FIN reaches that socket, which answers with an ACK. The FIN's journey must name
//! the time-wait socket and the ACK it sent, as tcpdump saw it, not call the FIN a drop.

use std::{
    io::Read,
    net::{SocketAddr, TcpListener},
    time::Duration,
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
    let port = free_port();
    let cport = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    ns.run(move || {
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(server_addr).unwrap();
        let local: SocketAddr = format!("127.0.0.1:{cport}").parse().unwrap();
        let mut c = connect_from(local, server_addr).unwrap();
        // The server closes first: its FIN, the client's ACK of it (the server's socket, closed
        // by its owner, becomes a time-wait socket in FIN_WAIT2).
        let (s, _) = listener.accept().unwrap();
        drop(s);
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&mut buf).unwrap(), 0, "end of file from the server");
        std::thread::sleep(Duration::from_millis(50));
        // The client's FIN reaches the time-wait socket.
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
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
    assert!(
        lookup["detail"].as_str().unwrap().starts_with(&format!(
            "time-wait socket 127.0.0.1:{port} <- 127.0.0.1:{cport}"
        )),
        "{dump}"
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
