//! The netcat experiment over loopback, in a namespace of its own: a listener, a client bound to
//! its own port that connects, sends "salam\n" and closes, the server reading it and closing;
//! then a connection to the closed port. Every packet's journey is checked against what the
//! test did, and tcpdump counts the packets.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
};

use serde_json::Value;
use sockpath_tests::{connect_from, drop_reason, free_port, stage_hook, Capture, Netns, Watch};

struct Done {
    listener_fd: i32,
    accepted_fd: i32,
    client_fd: i32,
    received: Vec<u8>,
    refused: std::io::ErrorKind,
}

fn one<'a>(v: Vec<&'a Value>, what: &str, dump: &str) -> &'a Value {
    assert_eq!(v.len(), 1, "expected exactly one {what}\n{dump}");
    v[0]
}

#[test]
fn tcp_handshake_data_close_and_refused_on_loopback() {
    let ns = Netns::new("tcp");
    let port = free_port();
    let cport = free_port();
    let cap = Capture::start(&ns, "lo", &format!("port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let done = ns.run(move || {
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(server_addr).unwrap();
        let listener_fd = listener.as_raw_fd();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let fd = s.as_raw_fd();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            drop(s);
            (fd, got)
        });
        let local: SocketAddr = format!("127.0.0.1:{cport}").parse().unwrap();
        let mut c = connect_from(local, server_addr).unwrap();
        let client_fd = c.as_raw_fd();
        c.write_all(b"salam\n").unwrap();
        drop(c);
        let (accepted_fd, received) = server.join().unwrap();
        // The listener was moved into the server thread and closed there.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let refused = TcpStream::connect(server_addr).unwrap_err().kind();
        Done {
            listener_fd,
            accepted_fd,
            client_fd,
            received,
            refused,
        }
    });
    assert_eq!(done.received, b"salam\n");
    assert_eq!(done.refused, std::io::ErrorKind::ConnectionRefused);

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    let me = std::process::id();
    assert_eq!(r.exit_code, Some(0), "{dump}");

    // As many journeys as tcpdump saw packets on the port: no more, no fewer.
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\ncaptured:\n{}",
        captured.join("\n")
    );
    for j in &r.journeys {
        assert_eq!(j["complete"], true, "incomplete journey\n{dump}");
        assert_eq!(j["iface"], "lo");
        assert_eq!(j["stages"][0]["name"], "netif_receive_skb");
        assert_eq!(j["stages"][0]["hook"], "tp_btf");
    }

    // The handshake's SYN reached the test's listener; the kernel answered with a SYN-ACK.
    let syns = r.with_flags(&["SYN"]);
    assert_eq!(syns.len(), 2, "the connection and the refused one\n{dump}");
    let syn = one(
        syns.iter()
            .copied()
            .filter(|j| j["sport"] == cport)
            .collect(),
        "SYN from the client port",
        &dump,
    );
    assert_eq!(syn["outcome"]["kind"], "syn_ack_sent", "{dump}");
    assert_eq!(syn["socket"]["local"], format!("127.0.0.1:{port}"));
    assert_eq!(syn["socket"]["state"], "LISTEN");
    assert_eq!(syn["socket"]["owner"]["pid"], me);
    assert_eq!(syn["socket"]["owner"]["fd"], done.listener_fd);
    let stage_names: Vec<&str> = syn["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let hooked = |prefix: &str| stage_hook(&r.start, prefix).is_some();
    if sockpath_tests::expect_hooks() {
        for p in ["IP receive", "transport receive", "socket lookup"] {
            assert!(
                hooked(p),
                "this kernel has kprobes/fentry, yet {p} is not served: {}",
                r.start
            );
        }
    }
    if !hooked("IP receive") && !hooked("transport receive") && !hooked("socket lookup") {
        // The tracepoint-only kernel: IP, TCP and the lookup are inferred, in their place.
        assert_eq!(
            stage_names,
            [
                "netif_receive_skb",
                "ip_rcv",
                "tcp_v4_rcv",
                "socket lookup",
                "SYN-ACK sent",
                "consume_skb",
                "connect returns"
            ]
        );
    }
    // Each of them is observed (with a time, by the kind of hook the registry chose) exactly
    // where this kernel has a hook for it, and inferred (without a time) elsewhere.
    for (prefix, name) in [
        ("IP receive", "ip_rcv"),
        ("transport receive", "tcp_v4_rcv"),
        ("socket lookup", "socket lookup"),
    ] {
        for j in &r.journeys {
            let st = j["stages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("no {name} stage in journey {}\n{dump}", j["id"]));
            match stage_hook(&r.start, prefix) {
                Some(hook) => {
                    let kind = st["hook"].as_str().unwrap();
                    assert!(
                        hook.starts_with(kind),
                        "{name}: served by {hook}, stage says {kind}"
                    );
                    assert!(st["offset_ns"].is_u64(), "{name} observed without a time");
                }
                None => {
                    assert_eq!(st["hook"], "inferred", "{name}\n{dump}");
                    assert!(st["offset_ns"].is_null());
                }
            }
        }
    }
    let positions: Vec<usize> = ["netif_receive_skb", "ip_rcv", "tcp_v4_rcv", "SYN-ACK sent"]
        .iter()
        .map(|n| stage_names.iter().position(|s| s == n).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{stage_names:?}");

    // The SYN-ACK completed the client's connect.
    let synack = one(r.with_flags(&["SYN", "ACK"]), "SYN-ACK", &dump);
    assert_eq!(synack["socket"]["local"], format!("127.0.0.1:{cport}"));
    assert_eq!(synack["socket"]["owner"]["pid"], me);
    assert_eq!(synack["socket"]["owner"]["fd"], done.client_fd);
    assert!(
        synack["state_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["from"] == "SYN_SENT" && c["to"] == "ESTABLISHED"),
        "{dump}"
    );

    // The third packet created the connection the server accepted.
    let acks = r.with_flags(&["ACK"]);
    let third = acks
        .iter()
        .find(|j| j["outcome"]["kind"] == "accepted")
        .unwrap_or_else(|| panic!("no accepted ACK\n{dump}"));
    assert_eq!(third["dport"], port);
    assert_eq!(third["outcome"]["pid"], me);
    assert_eq!(third["outcome"]["fd"], done.accepted_fd);
    assert_eq!(third["outcome"]["syscall"], "accept4");
    assert!(third["state_changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["from"] == "SYN_RECV" && c["to"] == "ESTABLISHED"));

    // The data segment was delivered to the accepted socket and read by the test, 6 bytes.
    let data = one(
        r.journeys
            .iter()
            .filter(|j| j["payload_len"] == 6)
            .collect(),
        "data segment",
        &dump,
    );
    assert_eq!(data["sport"], cport);
    assert_eq!(data["socket"]["local"], format!("127.0.0.1:{port}"));
    assert_eq!(data["socket"]["remote"], format!("127.0.0.1:{cport}"));
    assert_eq!(data["socket"]["state"], "ESTABLISHED");
    assert_eq!(data["socket"]["owner"]["fd"], done.accepted_fd);
    assert_eq!(data["outcome"]["kind"], "read", "{dump}");
    assert_eq!(data["outcome"]["bytes"], 6);
    assert_eq!(data["outcome"]["pid"], me);
    assert_eq!(data["outcome"]["fd"], done.accepted_fd);
    assert!(
        ["read", "recvfrom"].contains(&data["outcome"]["syscall"].as_str().unwrap_or("")),
        "{dump}"
    );

    // The FINs: the server's socket went to CLOSE_WAIT, the client's through FIN_WAIT to
    // TIME_WAIT, the server's from LAST_ACK to CLOSE.
    let transitions: Vec<(String, String)> = r
        .journeys
        .iter()
        .flat_map(|j| j["state_changes"].as_array().unwrap().clone())
        .map(|c| {
            (
                c["from"].as_str().unwrap().to_string(),
                c["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (from, to) in [
        ("ESTABLISHED", "CLOSE_WAIT"),
        ("FIN_WAIT1", "FIN_WAIT2"),
        ("LAST_ACK", "CLOSE"),
    ] {
        assert!(
            transitions.contains(&(from.to_string(), to.to_string())),
            "no {from} -> {to} in any journey\n{dump}"
        );
    }
    let fins: Vec<&Value> = r
        .journeys
        .iter()
        .filter(|j| j["flags"].as_array().unwrap().contains(&"FIN".into()))
        .collect();
    assert_eq!(fins.len(), 2, "{dump}");

    // The refused connection: no socket, a RST sent, the SYN dropped with NO_SOCKET; the RST
    // reached the client as ECONNREFUSED.
    let refused = one(
        syns.iter()
            .copied()
            .filter(|j| j["sport"] != cport)
            .collect(),
        "refused SYN",
        &dump,
    );
    assert_eq!(refused["outcome"]["kind"], "dropped");
    assert_eq!(refused["outcome"]["reason"], drop_reason("NO_SOCKET"));
    assert_eq!(refused["outcome"]["reset_sent"], true);
    assert!(
        refused["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "socket lookup"
                && (s["detail"] == format!("no socket for 127.0.0.1:{port}")
                    || s["detail"] == format!("no listener for 127.0.0.1:{port}"))),
        "{dump}"
    );
    if hooked("socket lookup") {
        // The reset is joined to the lookup that found nothing.
        assert!(
            refused["stages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "socket lookup"
                    && s["hook"] != "inferred"
                    && s["detail"] == format!("no listener for 127.0.0.1:{port}")),
            "{dump}"
        );
    }
    let rst = one(r.with_flags(&["ACK", "RST"]), "RST", &dump);
    assert_eq!(rst["outcome"]["kind"], "reset_received");
    assert_eq!(rst["outcome"]["reason"], "ECONNREFUSED");

    // The test's socket calls, with their return values.
    let listen = one(r.syscalls_named("listen"), "listen", &dump);
    assert_eq!(listen["ret"], 0);
    assert_eq!(listen["pid"], me);
    assert_eq!(listen["fd"], done.listener_fd);
    let accept = one(r.syscalls_named("accept4"), "accept4", &dump);
    assert_eq!(accept["ret"], done.accepted_fd);
    let binds = r.syscalls_named("bind");
    assert!(
        binds
            .iter()
            .any(|b| b["fd"] == done.client_fd && b["ret"] == 0),
        "{dump}"
    );
    let connects = r.syscalls_named("connect");
    assert!(connects.iter().any(|c| c["ret"] == 0), "{dump}");
    assert!(
        connects
            .iter()
            .any(|c| c["ret"] == -111 && c["errno"] == "ECONNREFUSED"),
        "{dump}"
    );
    assert!(r.syscalls_named("close").len() >= 3, "{dump}");

    let s = &r.summary;
    assert_eq!(s["journeys"], r.journeys.len());
    assert_eq!(s["incomplete"], 0);
    assert_eq!(s["events_lost"], 0);
    assert_eq!(s["resets_sent"], 1);
}
