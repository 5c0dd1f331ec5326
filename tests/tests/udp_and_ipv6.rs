//! UDP datagrams (read by a bound socket, and sent to a closed port) and IPv6, on loopback in a
//! namespace of the test's own.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use serde_json::Value;
use sockpath_tests::{drop_reason, free_port, Capture, Netns, Watch};

fn stage<'a>(j: &'a Value, name: &str) -> Option<&'a Value> {
    j["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn udp_delivered_and_read_then_udp_to_a_closed_port_v4_and_v6() {
    let ns = Netns::new("udp");
    let port = free_port();
    let cap = Capture::start(&ns, "lo", &format!("udp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string(), "--proto", "udp"]);

    let fds = ns.run(move || {
        let mut fds = Vec::new();
        for (server, client) in [("127.0.0.1", "127.0.0.1:0"), ("[::1]", "[::1]:0")] {
            let addr: SocketAddr = format!("{server}:{port}").parse().unwrap();
            let rx = UdpSocket::bind(addr).unwrap();
            let tx = UdpSocket::bind(client).unwrap();
            tx.send_to(b"hello", addr).unwrap();
            let mut buf = [0u8; 64];
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello");
            fds.push(rx.as_raw_fd());
            drop(rx);
            // Nobody is bound there any more.
            tx.send_to(b"anyone?", addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        fds
    });

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    let me = std::process::id();
    assert_eq!(r.journeys.len(), 4, "{dump}");
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\n{}",
        captured.join("\n")
    );
    for (i, version) in [4, 6].into_iter().enumerate() {
        let js: Vec<&Value> = r
            .journeys
            .iter()
            .filter(|j| j["ip_version"] == version)
            .collect();
        assert_eq!(js.len(), 2, "{dump}");
        let (read, closed) = (js[0], js[1]);
        assert_eq!(read["proto"], "udp");
        assert_eq!(read["payload_len"], 5);
        assert_eq!(read["outcome"]["kind"], "read", "{dump}");
        assert_eq!(read["outcome"]["bytes"], 5);
        assert_eq!(read["outcome"]["pid"], me);
        assert_eq!(read["outcome"]["fd"], fds[i]);
        assert_eq!(read["outcome"]["syscall"], "recvfrom");
        assert_eq!(read["socket"]["state"], "UNCONNECTED");
        assert_eq!(read["socket"]["owner"]["pid"], me);
        let transport = if version == 4 { "udp_rcv" } else { "udpv6_rcv" };
        assert!(stage(read, transport).is_some(), "{dump}");
        assert!(stage(read, "sk_data_ready").is_some(), "{dump}");
        assert_eq!(read["complete"], true);

        assert_eq!(closed["payload_len"], 7);
        assert_eq!(closed["outcome"]["kind"], "dropped", "{dump}");
        assert_eq!(closed["outcome"]["reason"], drop_reason("NO_SOCKET"));
        if version == 4 {
            // The kernel's answer: ICMP port unreachable (icmp_send; no such tracepoint for v6).
            assert_eq!(
                closed["outcome"]["icmp_sent"], "ICMP port unreachable",
                "{dump}"
            );
        }
        assert_eq!(closed["complete"], true);
    }
    assert_eq!(r.summary["dropped"], 2);
}

#[test]
fn tcp_over_ipv6_is_delivered_and_read() {
    let ns = Netns::new("v6");
    let port = free_port();
    let cap = Capture::start(&ns, "lo", &format!("tcp port {port}"));
    let watch = Watch::start(&["--port", &port.to_string(), "--addr", "::1"]);

    let accepted_fd = ns.run(move || {
        let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let l = TcpListener::bind(addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let fd = s.as_raw_fd();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"over six");
            fd
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"over six").unwrap();
        drop(c);
        server.join().unwrap()
    });

    let r = watch.stop();
    let captured = cap.stop();
    let dump = r.dump();
    assert_eq!(
        r.journeys.len(),
        captured.len(),
        "{dump}\n{}",
        captured.join("\n")
    );
    assert!(
        r.journeys
            .iter()
            .all(|j| j["ip_version"] == 6 && j["complete"] == true),
        "{dump}"
    );
    let data = r
        .journeys
        .iter()
        .find(|j| j["payload_len"] == 8)
        .unwrap_or_else(|| panic!("no data segment\n{dump}"));
    assert_eq!(data["socket"]["local"], format!("[::1]:{port}"));
    assert_eq!(data["outcome"]["kind"], "read");
    assert_eq!(data["outcome"]["bytes"], 8);
    assert_eq!(data["outcome"]["fd"], accepted_fd);
    assert!(stage(data, "tcp_v6_rcv").is_some(), "{dump}");
    assert!(stage(data, "ipv6_rcv").is_some(), "{dump}");
    let syn = &r.with_flags(&["SYN"])[0];
    assert_eq!(syn["outcome"]["kind"], "syn_ack_sent");
    assert_eq!(syn["socket"]["local"], format!("[::1]:{port}"));
}
