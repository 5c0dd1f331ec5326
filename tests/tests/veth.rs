//! TCP between two network namespaces over a veth pair: the journeys name the veth devices,
//! show the input route lookup (which loopback packets skip), and reach the server in the other
//! namespace.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
};

use serde_json::Value;
use sockpath_tests::{free_port, Capture, VethPair};

#[test]
fn tcp_across_a_veth_pair() {
    let pair = VethPair::new();
    let port = free_port();
    let filter = format!("tcp port {port}");
    let cap_a = Capture::start(&pair.a, &pair.a_if, &filter);
    let cap_b = Capture::start(&pair.b, &pair.b_if, &filter);
    let watch = sockpath_tests::Watch::start(&["--port", &port.to_string()]);

    let server_addr: SocketAddr = format!("{}:{port}", pair.b_addr).parse().unwrap();
    let listener = pair.b.run(move || TcpListener::bind(server_addr).unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        (s.as_raw_fd(), got, peer)
    });
    pair.a.run(move || {
        let mut c = TcpStream::connect(server_addr).unwrap();
        c.write_all(b"across namespaces").unwrap();
    });
    let (accepted_fd, got, peer) = server.join().unwrap();
    assert_eq!(got, b"across namespaces");

    let r = watch.stop();
    let (a, b) = (cap_a.stop(), cap_b.stop());
    let dump = r.dump();
    // Each packet is received once, by the device on the far side.
    assert_eq!(r.journeys.len(), a.len(), "{dump}\nA:\n{}", a.join("\n"));
    assert_eq!(a.len(), b.len());
    for j in &r.journeys {
        assert_eq!(j["complete"], true, "{dump}");
        let to_server = j["dport"] == port;
        assert_eq!(j["iface"], *if to_server { &pair.b_if } else { &pair.a_if });
        // A packet to a connected socket reuses the route cached on it (early demux); the
        // others are routed on input, which loopback packets never are.
        let fib = j["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "fib_table_lookup");
        let flags = j["flags"].as_array().unwrap();
        if flags.contains(&"SYN".into()) {
            let fib =
                fib.unwrap_or_else(|| panic!("no route lookup in journey {}\n{dump}", j["id"]));
            assert_eq!(fib["hook"], "tracepoint");
            let detail = fib["detail"].as_str().unwrap();
            assert!(
                detail.starts_with(&format!(
                    "input route {} -> {}",
                    j["src"].as_str().unwrap(),
                    j["dst"].as_str().unwrap()
                )),
                "{dump}"
            );
            assert!(
                detail.ends_with(&format!("dev {}", j["iface"].as_str().unwrap())),
                "{dump}"
            );
        }
    }
    let data: Vec<&Value> = r
        .journeys
        .iter()
        .filter(|j| j["payload_len"] == 17)
        .collect();
    assert_eq!(data.len(), 1, "{dump}");
    let data = data[0];
    assert_eq!(data["src"], pair.a_addr);
    assert_eq!(data["sport"], peer.port());
    assert_eq!(data["socket"]["local"], format!("{}:{port}", pair.b_addr));
    assert_eq!(data["outcome"]["kind"], "read");
    // Early demux: IP receive found the connection and took the route cached on it; the route
    // hook saw no lookup, and the journey says so (inferred) between IP and TCP receive.
    let names: Vec<&str> = data["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"fib_table_lookup"), "{dump}");
    let at = |n: &str| names.iter().position(|s| *s == n);
    let demux = at("early demux").unwrap_or_else(|| panic!("no early demux stage\n{dump}"));
    assert!(at("ip_rcv").is_some_and(|i| i < demux), "{names:?}");
    assert!(at("tcp_v4_rcv").is_some_and(|t| demux < t), "{names:?}");
    let st = &data["stages"][demux];
    assert_eq!(st["hook"], "inferred");
    assert_eq!(
        st["detail"],
        "socket found in IP receive (early demux); route from the socket's cache, no FIB lookup"
    );
    assert_eq!(data["outcome"]["bytes"], 17);
    assert_eq!(data["outcome"]["fd"], accepted_fd);
    assert_eq!(data["outcome"]["pid"], std::process::id());
    // Both namespaces' packets, each with its own namespace id.
    let netns: std::collections::HashSet<u64> = r
        .journeys
        .iter()
        .map(|j| j["netns"].as_u64().unwrap())
        .collect();
    assert_eq!(netns.len(), 2, "{dump}");
}
