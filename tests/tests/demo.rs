//! `sockpath demo` tells the whole netcat story by itself: handshake, data delivery, the
//! four-way close and a refused connection.

use std::process::Command;

use serde_json::Value;
use sockpath_tests::{bin, free_port, require_root};

#[test]
fn demo_shows_handshake_data_close_and_refusal() {
    require_root();
    let (port, cport) = (free_port(), free_port());
    let out = Command::new(bin())
        .args(["demo", "--json", "--port", &port.to_string()])
        .args(["--client-port", &cport.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let journeys: Vec<&Value> = lines.iter().filter(|l| l["type"] == "journey").collect();
    let kinds: Vec<&str> = journeys
        .iter()
        .map(|j| j["outcome"]["kind"].as_str().unwrap())
        .collect();
    let text = stdout.to_string();
    // SYN, SYN-ACK, ACK, data, ACK, FIN, FIN, ACK, then the refused SYN and its RST.
    assert_eq!(journeys.len(), 10, "{text}");
    assert!(journeys.iter().all(|j| j["complete"] == true), "{text}");
    assert_eq!(kinds[0], "syn_ack_sent", "{text}");
    assert_eq!(kinds[1], "state_changed", "{text}");
    assert_eq!(kinds[2], "accepted", "{text}");
    assert!(kinds.contains(&"read"), "{text}");
    assert_eq!(kinds[8], "dropped", "{text}");
    assert_eq!(kinds[9], "reset_received", "{text}");
    let read = journeys
        .iter()
        .find(|j| j["outcome"]["kind"] == "read")
        .unwrap();
    assert_eq!(read["outcome"]["comm"], "server");
    assert_eq!(read["outcome"]["bytes"], 6);
    let calls: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "syscall")
        .map(|l| l["syscall"].as_str().unwrap())
        .collect();
    for c in [
        "socket",
        "setsockopt",
        "bind",
        "listen",
        "accept4",
        "connect",
        "close",
    ] {
        assert!(calls.contains(&c), "no {c} in {calls:?}");
    }
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(summary["journeys"], 10);
    assert_eq!(summary["events_lost"], 0);
}
