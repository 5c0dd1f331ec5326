//! Packets the kernel frees without dropping them (consume_skb) end their journeys there: many
//! short connections on loopback (connect, send 6 bytes, close, the server reading and closing),
//! where every packet tcpdump saw has one journey and every journey ends in something the
//! kernel did, "nothing observed" only where events were lost.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
};

use serde_json::Value;
use sockpath_tests::{expect_hooks, free_port, Capture, Netns, Watch};

fn stage<'a>(j: &'a Value, name: &str) -> Option<&'a Value> {
    j["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
}

#[test]
fn short_connections_end_in_what_the_kernel_did() {
    // The VM kernels run emulated (qemu TCG), tens of times slower: fewer connections there.
    let connections = if expect_hooks() { 200 } else { 2000 };
    let ns = Netns::new("consumed");
    let port = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string()]);

    let served = ns.run(move || {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            let mut served = 0;
            for _ in 0..connections {
                let (mut s, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                assert_eq!(got, b"salam\n");
                served += 1;
            }
            served
        });
        for _ in 0..connections {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"salam\n").unwrap();
        }
        server.join().unwrap()
    });
    assert_eq!(served, connections);

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "one journey per packet tcpdump saw\n{}",
        r.summary
    );
    let lost = r.summary["events_lost"].as_u64().unwrap_or(0);
    let mut consumed = 0;
    for j in &r.journeys {
        let text = j["outcome"]["text"].as_str().unwrap_or_default();
        if j["complete"] != true {
            // Only lost events may leave a journey without its end.
            assert!(
                lost > 0,
                "journey {} incomplete with 0 events lost: {} ({})\n{}",
                j["id"],
                text,
                j["incomplete_reason"],
                serde_json::to_string_pretty(j).unwrap()
            );
            continue;
        }
        assert_ne!(j["outcome"]["kind"], "unknown", "{dump}");
        if let Some(st) = stage(j, "consume_skb") {
            consumed += 1;
            assert_eq!(st["hook"], "tp_btf");
            assert_eq!(st["hook_target"], "consume_skb");
            assert!(st["offset_ns"].is_u64(), "an observed stage has a time");
        }
    }
    assert!(consumed > 0, "no journey ended consumed\n{dump}");

    // Every SYN was answered by the listener, or (when the client outran the server's accept()
    // and filled its accept queue) taken in without an answer and sent again by the client;
    // either way consumed where the kernel says (6.3 and later name the place; 6.1's
    // tracepoint does not).
    let syns = r.with_flags(&["SYN"]);
    let mut firsts: Vec<(u64, u64)> = syns
        .iter()
        .map(|j| (j["sport"].as_u64().unwrap(), j["seq"].as_u64().unwrap()))
        .collect();
    firsts.sort_unstable();
    firsts.dedup();
    assert_eq!(firsts.len(), connections, "{}", r.summary);
    let with_location = r.journeys.iter().any(|j| {
        stage(j, "consume_skb")
            .and_then(|s| s["detail"].as_str())
            .is_some_and(|d| d.starts_with("consumed at "))
    });
    for syn in syns.iter().filter(|j| j["complete"] == true) {
        let st = stage(syn, "consume_skb")
            .unwrap_or_else(|| panic!("SYN {} not consumed\n{dump}", syn["id"]));
        let detail = st["detail"].as_str().unwrap();
        if syn["outcome"]["kind"] == "dropped" {
            let text = syn["outcome"]["text"].as_str().unwrap();
            assert!(
                text.starts_with(&format!("SYN not answered by listener 127.0.0.1:{port}")),
                "{text}"
            );
            continue;
        }
        assert_eq!(syn["outcome"]["kind"], "syn_ack_sent", "{dump}");
        assert!(detail.ends_with(": the SYN, answered"), "{detail}");
        if with_location {
            assert!(
                detail.starts_with("consumed at tcp_"),
                "a SYN is freed by TCP: {detail}"
            );
        } else {
            assert!(detail.starts_with("consumed: "), "{detail}");
        }
    }
}
