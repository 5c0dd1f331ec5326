//! One stage of each kind, with its words.

use sockpath_ebpf::event::Hop;

use super::{addr, caller, change, listener, view};
use crate::journey::model::{ConsumedWhy, ListenerWhy, Lookup, Queue, RouteResult, StageData};

/// One stage of each kind (and each way of saying it), with its words.
pub fn every_stage() -> Vec<(StageData, &'static str)> {
    let conn = || view("127.0.0.1:4000", "127.0.0.1:4444", "ESTABLISHED", None);
    let wildcard = view(
        "0.0.0.0:4000",
        "0.0.0.0:0",
        "LISTEN",
        Some(("other", 200, 5)),
    );
    let v6 = view("[::1]:4000", "[::]:0", "UNCONNECTED", None);
    vec![
        (
            StageData::Device {
                ifname: "eth0".into(),
                ifindex: 2,
                wire_len: 66,
            },
            "dev eth0 (ifindex 2), 66 bytes",
        ),
        (
            StageData::Route {
                src: "10.0.0.2".parse().unwrap(),
                dst: "10.0.0.1".parse().unwrap(),
                table: 255,
                result: RouteResult::Device("lo".into()),
            },
            "input route 10.0.0.2 -> 10.0.0.1: table local -> dev lo",
        ),
        (
            StageData::Route {
                src: "10.0.0.2".parse().unwrap(),
                dst: "10.9.0.1".parse().unwrap(),
                table: 100,
                result: RouteResult::NoRoute { err: -101 },
            },
            "input route 10.0.0.2 -> 10.9.0.1: table 100 no route (err -101)",
        ),
        (
            StageData::Hop {
                hop: Hop::IpRcv,
                ip_ns: None,
            },
            "IPv4 receive: header checks",
        ),
        (
            StageData::Hop {
                hop: Hop::IpLocalDeliver,
                ip_ns: Some(1_240),
            },
            "the route says local: on to the transport (1.2µs in IP)",
        ),
        (
            StageData::Hop {
                hop: Hop::Udpv6Rcv,
                ip_ns: None,
            },
            "UDP receive",
        ),
        (StageData::Lookup(Lookup::Unparsed), ""),
        (
            StageData::Lookup(Lookup::NoEstablished {
                dst: addr("[::1]:4000"),
                src: addr("[::ffff:127.0.0.1]:4444"),
            }),
            "no established socket for [::1]:4000 <- 127.0.0.1:4444",
        ),
        (
            StageData::Lookup(Lookup::NoListener {
                dst: addr("127.0.0.1:4000"),
            }),
            "no listener for 127.0.0.1:4000",
        ),
        (
            StageData::Lookup(Lookup::NoBound {
                dst: addr("127.0.0.1:53"),
            }),
            "no socket bound to 127.0.0.1:53",
        ),
        (
            StageData::Lookup(Lookup::Request {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
            }),
            "request socket 127.0.0.1:4000 <- 127.0.0.1:4444 (handshake in progress)",
        ),
        (
            StageData::Lookup(Lookup::TimeWait {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
                substate: None,
                after: false,
                left_ms: None,
            }),
            "time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444",
        ),
        (
            StageData::Lookup(Lookup::TimeWait {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
                substate: Some("FIN_WAIT2"),
                after: false,
                left_ms: None,
            }),
            "time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (FIN_WAIT2)",
        ),
        (
            StageData::Lookup(Lookup::TimeWait {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
                substate: Some("FIN_WAIT2"),
                after: false,
                left_ms: Some(59_948),
            }),
            "time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (FIN_WAIT2): 59.9 s left of \
             FIN_WAIT2",
        ),
        (
            StageData::Lookup(Lookup::TimeWait {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
                substate: Some("TIME_WAIT"),
                after: true,
                left_ms: Some(60_000),
            }),
            "time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (TIME_WAIT once it handled the \
             segment): 60.0 s left of TIME_WAIT",
        ),
        (
            StageData::Answered {
                flags: vec!["ACK"],
                time_wait: Some("TIME_WAIT"),
            },
            "ACK sent by the time-wait socket (TIME_WAIT)",
        ),
        (
            StageData::Consumed {
                location: Some("tcp_rcv_state_process+0x1c4".into()),
                why: Some(ConsumedWhy::SynAnswered),
            },
            "consumed at tcp_rcv_state_process+0x1c4: the SYN, answered",
        ),
        (
            StageData::Consumed {
                location: None,
                why: None,
            },
            "consumed",
        ),
        (
            StageData::EarlyDemux,
            "socket found in IP receive (early demux); route from the socket's cache, no FIB lookup",
        ),
        (
            StageData::Lookup(Lookup::Established { socket: conn() }),
            "established match: 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED",
        ),
        (
            StageData::Lookup(Lookup::Chosen {
                socket: listener(),
                why: vec![ListenerWhy::BeatsWildcard {
                    dst: "127.0.0.1".parse().unwrap(),
                    wildcard: wildcard.clone(),
                }],
            }),
            "127.0.0.1:4000 LISTEN (server[100] fd 3): bound to the destination address 127.0.0.1, it beats the wildcard listener 0.0.0.0:4000 (other[200] fd 5)",
        ),
        (
            StageData::Lookup(Lookup::ImpliedListener {
                socket: listener(),
                why: vec![
                    ListenerWhy::ReuseportHash {
                        others: vec![listener(), wildcard.clone()],
                    },
                    ListenerWhy::OtherAddress {
                        other: wildcard.clone(),
                        dst: "127.0.0.1".parse().unwrap(),
                    },
                ],
            }),
            "listener 127.0.0.1:4000 LISTEN (server[100] fd 3): the SO_REUSEPORT group member the kernel picked by the hash of the connection's addresses and ports (the other members: 127.0.0.1:4000 (server[100] fd 3), 0.0.0.0:4000 (other[200] fd 5)); 0.0.0.0:4000 (other[200] fd 5) is bound to another address than 127.0.0.1",
        ),
        (
            StageData::Lookup(Lookup::ImpliedListener {
                socket: listener(),
                why: vec![ListenerWhy::ReuseportHash {
                    others: vec![wildcard.clone()],
                }],
            }),
            "listener 127.0.0.1:4000 LISTEN (server[100] fd 3): the SO_REUSEPORT group member the kernel picked by the hash of the connection's addresses and ports (the other member: 0.0.0.0:4000 (other[200] fd 5))",
        ),
        (
            StageData::Lookup(Lookup::ImpliedRequest {
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
            }),
            "request socket for 127.0.0.1:4000 <- 127.0.0.1:4444 (handshake in progress)",
        ),
        (
            StageData::Lookup(Lookup::ImpliedConnection {
                socket: conn(),
                state: "LAST_ACK",
            }),
            "4-tuple match 127.0.0.1:4000 <- 127.0.0.1:4444 (LAST_ACK)",
        ),
        (
            StageData::Lookup(Lookup::ImpliedBound {
                socket: v6.clone(),
                why: vec![ListenerWhy::OnlyReuseportMember],
            }),
            "bound socket [::1]:4000: the only member of its SO_REUSEPORT group",
        ),
        (
            StageData::Lookup(Lookup::ImpliedNone {
                dst: addr("127.0.0.1:4000"),
            }),
            "no socket for 127.0.0.1:4000",
        ),
        (StageData::Lookup(Lookup::NotObserved), "result not observed"),
        (
            StageData::EstablishedReceive {
                socket: view(
                    "127.0.0.1:4000",
                    "127.0.0.1:4444",
                    "ESTABLISHED",
                    Some(("server", 100, 4)),
                ),
            },
            "on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (server[100] fd 4)",
        ),
        (
            StageData::SynAck {
                listener: listener(),
                local: addr("127.0.0.1:4000"),
                remote: addr("127.0.0.1:4444"),
            },
            "by listener 127.0.0.1:4000 LISTEN (server[100] fd 3); request socket 127.0.0.1:4000 <- 127.0.0.1:4444",
        ),
        (
            StageData::StateChange {
                socket: conn(),
                change: change("FIN_WAIT2", "CLOSE", true),
            },
            "FIN_WAIT2 -> CLOSE on 127.0.0.1:4000 <- 127.0.0.1:4444 (continues as a TIME_WAIT socket)",
        ),
        (
            StageData::StateChange {
                socket: listener(),
                change: change("LISTEN", "SYN_RECV", false),
            },
            "LISTEN -> SYN_RECV on 127.0.0.1:4000 <- 0.0.0.0:0",
        ),
        (
            StageData::Queued {
                socket: listener(),
                queue: Queue::Accept,
            },
            "connection queued on the accept queue of 127.0.0.1:4000 LISTEN (server[100] fd 3); accept() woken",
        ),
        (
            StageData::Queued {
                socket: v6,
                queue: Queue::Receive,
            },
            "queued on [::1]:4000 UNCONNECTED; reader woken",
        ),
        (StageData::ResetReceived, "RST accepted: connection reset"),
        (
            StageData::SynCookieSent,
            "SYN-ACK with a SYN cookie sent, from no socket: the listener kept no request socket",
        ),
        (
            StageData::ErrorReported {
                errno: "ECONNRESET".into(),
            },
            "ECONNRESET reported to the socket's user",
        ),
        (
            StageData::ResetSent {
                by_socket: true,
                reason: None,
            },
            "RST sent by the socket",
        ),
        (
            StageData::ResetSent {
                by_socket: false,
                reason: Some("NO_SOCKET".into()),
            },
            "RST sent, no socket (reason NO_SOCKET)",
        ),
        (
            StageData::IcmpSent {
                icmp: "ICMP port unreachable".into(),
            },
            "ICMP port unreachable sent",
        ),
        (
            StageData::Dropped {
                reason: "TCP_CSUM".into(),
                location: "tcp_v4_rcv+0x1a0".into(),
            },
            "dropped: TCP_CSUM at tcp_v4_rcv+0x1a0",
        ),
        (
            StageData::Dropped {
                reason: "reason not given by this kernel".into(),
                location: "tcp_v4_rcv+0x99".into(),
            },
            "dropped at tcp_v4_rcv+0x99, reason not given by this kernel",
        ),
        (
            StageData::QueueFull { rc: -12 },
            "socket could not queue it (rc -12)",
        ),
        (
            StageData::Read {
                bytes: 6,
                reader: caller("nc", Some("read"), Some(4)),
            },
            "6 bytes read by nc[100] via read(4)",
        ),
        (
            StageData::Read {
                bytes: 1,
                reader: caller("nc", Some("recvmsg"), None),
            },
            "1 bytes read by nc[100] via recvmsg()",
        ),
        (
            StageData::EndOfFile {
                reader: caller("nc", None, None),
            },
            "end of file read by nc[100] = 0",
        ),
        (
            StageData::ReadFailed {
                reader: caller("nc", Some("read"), Some(4)),
                errno: "ECONNRESET".into(),
            },
            "read(4) = -1 ECONNRESET in nc[100]",
        ),
        (
            StageData::ReadFailed {
                reader: caller("nc", None, None),
                errno: "ECONNRESET".into(),
            },
            "a read failed with ECONNRESET in nc[100]",
        ),
        (
            StageData::ClosedAfterReset {
                comm: "nc".into(),
                pid: 100,
            },
            "closed by nc[100] without a read after the reset: the error went unread",
        ),
        (
            StageData::Accepted {
                caller: caller("server", None, Some(5)),
            },
            "accept() = 5 in server[100]",
        ),
        (
            StageData::ConnectReturned {
                caller: caller("client", Some("connect"), Some(3)),
                ret: -111,
            },
            "connect(3) = -1 ECONNREFUSED in client[100]",
        ),
        (
            StageData::ConnectReturned {
                caller: caller("client", Some("connect"), None),
                ret: 0,
            },
            "connect(-1) = 0 in client[100]",
        ),
        (
            StageData::InferredIp {
                dropped: Some("IP_INHDR".into()),
            },
            "dropped here (IP_INHDR)",
        ),
        (
            StageData::InferredIp { dropped: None },
            "headers valid, local destination",
        ),
        (StageData::InferredTransport, ""),
        (
            StageData::Logged("words \"as logged\"".into()),
            "words \"as logged\"",
        ),
    ]
}
