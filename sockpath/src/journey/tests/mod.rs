//! Journey assembly on hand-made event sequences: what the kernel reports for the netcat
//! experiment, and the awkward cases (events out of order, lost events, batched packets,
//! reused addresses, waiting too long).

use std::net::{IpAddr, Ipv4Addr};

use sockpath_ebpf::event::{
    QueueFullHook, SyscallKind,
    TcpState::{self, *},
};

use super::{
    clock::Clock,
    model::{Item, Journey, OutcomeKind, SyscallRecord},
    Assembler, Config,
};
use crate::{
    decode::{Call, Event, Meta, PacketRx, SkbEv, SkbKind, SockEv, SockKind, Socket, SyscallEv},
    filter::WatchFilter,
    kernel::names::KernelNames,
    packet::fixture::{tcp4, udp4},
};

const MS: u64 = 1_000_000;
const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const SERVER: u32 = 100;
const CLIENT: u32 = 200;

fn asm() -> Assembler {
    let cfg = Config {
        filter: WatchFilter::port(4000),
        ..Config::default()
    };
    Assembler::new(cfg, KernelNames::for_tests(), Clock::fixed(0))
}

fn meta(ts: u64, journey: u64, net_rx: bool, pid: u32) -> Meta {
    Meta {
        ts_ns: ts,
        cpu: 0,
        net_rx,
        pid,
        tid: pid,
        journey,
    }
}

fn sock(sk: u64, proto: u16, lport: u16, rport: u16, state: TcpState) -> Socket {
    Socket {
        sk,
        ino: sk + 10_000,
        netns: 1,
        family: 2,
        protocol: proto,
        lport,
        rport,
        state: state as u8,
        reuseport: false,
        laddr: LO,
        raddr: if rport == 0 { ANY } else { LO },
    }
}

/// What a syscall event that has no second socket carries in its place.
fn no_socket() -> Socket {
    Socket {
        state: 0,
        ..sock(0, 0, 0, 0, Close)
    }
}

fn packet(ts: u64, id: u64, frame: Vec<u8>) -> Event {
    Event::Packet(PacketRx {
        meta: meta(ts, id, true, 0),
        skb: 0xff00 + id,
        len: frame.len() as u32 - 14,
        wire_len: frame.len() as u32,
        ifindex: 1,
        netns: 1,
        ifname: "lo".into(),
        mac_len: 14,
        ethertype: 0x0800,
        data: frame,
        sampled_out: false,
    })
}

/// A socket event of the server's, `hint` naming the packet the CPU was processing.
fn sock_ev(ts: u64, hint: u64, net_rx: bool, kind: SockKind) -> Event {
    Event::Sock(SockEv {
        meta: meta(ts, hint, net_rx, SERVER),
        comm: "server".into(),
        kind,
    })
}

fn data_ready(ts: u64, hint: u64, net_rx: bool, sock: Socket) -> Event {
    sock_ev(ts, hint, net_rx, SockKind::DataReady { sock })
}

/// tcp_probe names its packet (journey `id`) through the sk_buff, in any context.
fn tcp_rcv(ts: u64, id: u64, net_rx: bool, sock: Socket) -> Event {
    let skb = 0xff00 + id;
    sock_ev(ts, id, net_rx, SockKind::TcpRcv { sock, skb })
}

/// A read by the server that returned `ret`, TCP having copied up to `copied_seq` after it.
fn recv(ts: u64, sock: Socket, ret: i32, copied_seq: u32, call: Option<Call>) -> Event {
    sock_ev(
        ts,
        0,
        false,
        SockKind::Recv {
            sock,
            ret,
            flags: 0,
            copied_seq,
            call,
        },
    )
}

fn state(ts: u64, hint: u64, net_rx: bool, sock: Socket, from: TcpState, to: TcpState) -> Event {
    sock_ev(ts, hint, net_rx, SockKind::StateChange { sock, from, to })
}

fn skb_ev(ts: u64, id: u64, kind: SkbKind) -> Event {
    Event::Skb(SkbEv {
        meta: meta(ts, id, true, 0),
        skb: 0xff00 + id,
        comm: String::new(),
        kind,
    })
}

/// kfree_skb of journey `id` for drop reason `reason`.
fn dropped(ts: u64, id: u64, reason: i32) -> Event {
    let kind = SkbKind::Drop {
        reason,
        location: 0,
        sk: 0,
        tw_substate: None,
        tw_left: None,
    };
    skb_ev(ts, id, kind)
}

fn reset_sent(ts: u64, id: u64, reason: i32) -> Event {
    skb_ev(ts, id, SkbKind::ResetSent { reason, sk: 0 })
}

fn syscall(ts: u64, pid: u32, kind: SyscallKind, fd: i32, ret: i64, s: Socket) -> Event {
    Event::Syscall(SyscallEv {
        meta: meta(ts, 0, false, pid),
        enter_ns: ts - 1_000,
        kind,
        fd,
        ret,
        args: [0; 4],
        addr: None,
        sock: s,
        other: no_socket(),
        comm: if pid == SERVER { "server" } else { "client" }.into(),
    })
}

/// Runs events through the assembler, finishes everything, returns journeys and syscalls.
fn run(a: &mut Assembler, events: Vec<Event>) -> (Vec<Journey>, Vec<SyscallRecord>) {
    for e in events {
        a.push(e);
    }
    a.finish();
    let mut journeys = Vec::new();
    let mut calls = Vec::new();
    for item in a.take_ready() {
        match item {
            Item::Journey(j) => journeys.push(*j),
            Item::Syscall(s) => calls.push(*s),
            Item::Note(_) => {}
        }
    }
    journeys.sort_by_key(|j| j.id);
    for j in &journeys {
        // Every scenario's journeys double as fixtures for the JSON writer's fast path.
        crate::output::journey_json::assert_same_as_serde(j);
    }
    golden::check(&journeys, &calls);
    (journeys, calls)
}

mod golden;

#[test]
fn syn_reaches_the_listener_named_by_its_syn_ack() {
    let mut a = asm();
    let listener = sock(1, 6, 4000, 0, Listen);
    let mut req = sock(2, 0, 4000, 4444, NewSynRecv);
    req.protocol = 0;
    let synack = sock_ev(
        MS + 10_000,
        7,
        true,
        SockKind::SynAck {
            listener,
            request: req,
        },
    );
    let (j, _) = run(
        &mut a,
        vec![
            syscall(
                MS / 2,
                SERVER,
                SyscallKind::Socket,
                -1,
                3,
                sock(1, 6, 0, 0, Close),
            ),
            packet(MS, 7, tcp4(4444, 4000, 100, None, "S", &[])),
            synack,
        ],
    );
    assert_eq!(j.len(), 1);
    let j = &j[0];
    assert_eq!(j.outcome.kind, OutcomeKind::SynAckSent);
    assert!(j.complete);
    let s = j.socket.as_ref().unwrap();
    assert_eq!(&*s.local, "127.0.0.1:4000");
    assert_eq!(s.owner.as_ref().unwrap().pid, SERVER);
    assert_eq!(s.owner.as_ref().unwrap().fd, 3);
    let names: Vec<&str> = j.stages.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "netif_receive_skb",
            "ip_rcv",
            "tcp_v4_rcv",
            "socket lookup",
            "SYN-ACK sent"
        ]
    );
    assert!(!j.stages[1].observed(), "ip_rcv is inferred on this kernel");
    assert_eq!(j.stages[4].offset_ns, Some(10_000));
}

#[test]
fn data_is_read_by_the_process_through_its_syscall() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    // The reader consumed up to seq 1000 + 6: copied_seq after the read. The read() it
    // happened in was recorded at entry and is reported with the read.
    let call = Call {
        kind: SyscallKind::Read,
        fd: 4,
        count: 16384,
        enter_ns: MS + 40_000,
    };
    let read = recv(MS + 50_000, child.clone(), 6, 1006, Some(call));
    let (j, calls) = run(
        &mut a,
        vec![
            syscall(MS / 2, SERVER, SyscallKind::Accept4, 3, 4, child.clone()),
            packet(MS, 9, tcp4(4444, 4000, 1000, Some(1), "AP", b"salam\n")),
            tcp_rcv(MS + 2_000, 9, true, child.clone()),
            data_ready(MS + 3_000, 9, true, child.clone()),
            read,
        ],
    );
    let j = &j[0];
    assert_eq!(j.outcome.kind, OutcomeKind::Read);
    assert_eq!(j.outcome.bytes, Some(6));
    assert_eq!(j.outcome.pid, Some(SERVER));
    assert_eq!(j.outcome.syscall, Some("read"));
    assert_eq!(j.outcome.fd, Some(4));
    assert!(j.complete);
    // Reads are told in the journeys, not as lines of their own.
    assert!(calls.iter().all(|c| c.syscall != "read"));
}

#[test]
fn a_read_spanning_two_segments_reads_both() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    let mut events = vec![];
    for (i, seq) in [(1u64, 1000u32), (2, 1003)] {
        events.push(packet(
            MS * i,
            i,
            tcp4(4444, 4000, seq, Some(1), "A", b"abc"),
        ));
        events.push(tcp_rcv(MS * i + 1, i, true, child.clone()));
    }
    // Coalesced on the queue: one read of 6 bytes takes both.
    events.push(recv(3 * MS, child, 6, 1006, None));
    let (j, _) = run(&mut a, events);
    assert_eq!(j.len(), 2);
    for j in &j {
        assert_eq!(j.outcome.kind, OutcomeKind::Read, "{}", j.outcome.text());
        assert_eq!(j.outcome.bytes, Some(3));
    }
}

#[test]
fn third_ack_creates_the_child_and_accept_returns_it() {
    let mut a = asm();
    let listener = sock(1, 6, 4000, 0, Listen);
    let child = sock(5, 6, 4000, 4444, SynRecv);
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 11, tcp4(4444, 4000, 101, Some(501), "A", &[])),
            state(MS + 1_000, 11, true, child.clone(), Listen, SynRecv),
            state(MS + 2_000, 11, true, child.clone(), SynRecv, Established),
            data_ready(MS + 3_000, 11, true, listener),
            syscall(MS + 9_000, SERVER, SyscallKind::Accept4, 3, 4, child),
        ],
    );
    let j = &j[0];
    assert_eq!(
        j.outcome.kind,
        OutcomeKind::Accepted,
        "{}",
        j.outcome.text()
    );
    assert_eq!(j.outcome.fd, Some(4));
    assert_eq!(j.state_changes.len(), 2);
    assert_eq!(j.state_changes[1].to, "ESTABLISHED");
}

/// The events of a RST that resets the server's connection `child` (journey 31): TCP receives
/// it on the established socket, which accepts the reset, goes to CLOSE and reports
/// ECONNRESET to its user.
fn reset_of(child: &Socket) -> Vec<Event> {
    let closed = || {
        let mut s = child.clone();
        s.state = Close as u8;
        s
    };
    vec![
        syscall(MS / 2, SERVER, SyscallKind::Accept4, 3, 4, child.clone()),
        packet(MS, 31, tcp4(4444, 4000, 7, Some(9), "AR", &[])),
        tcp_rcv(MS + 1_000, 31, true, child.clone()),
        sock_ev(
            MS + 2_000,
            31,
            true,
            SockKind::ReceiveReset {
                sock: child.clone(),
            },
        ),
        state(MS + 3_000, 31, true, child.clone(), Established, Close),
        sock_ev(
            MS + 4_000,
            31,
            true,
            SockKind::ErrorReport {
                sock: closed(),
                err: 104,
            },
        ),
    ]
}

#[test]
fn a_reset_ends_with_the_read_that_failed_with_its_error() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    let mut closed = child.clone();
    closed.state = Close as u8;
    let call = Call {
        kind: SyscallKind::Read,
        fd: 4,
        count: 64,
        enter_ns: MS / 2,
    };
    let mut events = reset_of(&child);
    // The blocked reader wakes with the error; its next read gets end of file, not this RST.
    events.push(recv(
        MS + 9_000,
        closed.clone(),
        -104,
        7,
        Some(call.clone()),
    ));
    events.push(recv(MS + 10_000, closed, 0, 7, Some(call)));
    let (j, _) = run(&mut a, events);
    let j = &j[0];
    assert!(j.complete, "{:?}", j.incomplete_reason);
    assert_eq!(j.outcome.kind, OutcomeKind::ResetReceived);
    assert_eq!(j.outcome.reason.as_deref(), Some("ECONNRESET"));
    assert_eq!(j.outcome.pid, Some(SERVER));
    assert_eq!(j.outcome.fd, Some(4));
    assert_eq!(
        j.outcome.text(),
        "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (server[100] fd 4): \
         ECONNRESET reported to the socket's user; read(4) = -1 ECONNRESET in server[100]"
    );
    let failed = j.stages.iter().find(|s| s.name == "read fails").unwrap();
    assert_eq!(failed.detail(), "read(4) = -1 ECONNRESET in server[100]");
    assert_eq!(j.state_changes[0].from, "ESTABLISHED");
    assert_eq!(j.state_changes[0].to, "CLOSE");
}

#[test]
fn a_reset_waits_for_the_read_then_ends_with_it() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    let mut closed = child.clone();
    closed.state = Close as u8;
    for e in reset_of(&child) {
        a.push(e);
    }
    a.tick(MS + 500 * MS);
    let waiting = a
        .take_ready()
        .filter(|i| matches!(i, Item::Journey(_)))
        .count();
    assert_eq!(waiting, 0, "waits for the owner's read");
    // A read long after the RST (not a blocked one): still the one the reset failed.
    a.push(recv(MS + 600 * MS, closed, -104, 7, None));
    a.tick(MS + 700 * MS);
    let items: Vec<Item> = a.take_ready().collect();
    let Some(Item::Journey(j)) = items.iter().find(|i| matches!(i, Item::Journey(_))) else {
        panic!("the journey did not end with the read")
    };
    assert_eq!(
        j.outcome.text(),
        "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (server[100] fd 4): \
         ECONNRESET reported to the socket's user; a read failed with ECONNRESET in server[100]"
    );
}

#[test]
fn a_reset_whose_socket_is_closed_unread_says_so() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    let mut closed = child.clone();
    closed.state = Close as u8;
    let mut events = reset_of(&child);
    events.push(sock_ev(
        MS + 9_000,
        0,
        false,
        SockKind::Destroy { sock: closed },
    ));
    for e in events {
        a.push(e);
    }
    // Done once the socket is gone, not after the hold time.
    a.tick(MS + 100 * MS);
    let items: Vec<Item> = a.take_ready().collect();
    let Some(Item::Journey(j)) = items.iter().find(|i| matches!(i, Item::Journey(_))) else {
        panic!("the journey waited on after its socket was closed")
    };
    assert_eq!(
        j.outcome.text(),
        "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (server[100] fd 4): \
         ECONNRESET reported to the socket's user; closed by server[100] without a read after \
         the reset"
    );
    let closed = j
        .stages
        .iter()
        .find(|s| s.name == "tcp_destroy_sock")
        .unwrap();
    assert_eq!(
        closed.detail(),
        "closed by server[100] without a read after the reset: the error went unread"
    );
    golden::check(std::slice::from_ref(j), &[]);
}

#[test]
fn a_reset_unread_ends_after_the_hold_time() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    for e in reset_of(&child) {
        a.push(e);
    }
    a.tick(MS + 2_100 * MS);
    let items: Vec<Item> = a.take_ready().collect();
    let Some(Item::Journey(j)) = items.iter().find(|i| matches!(i, Item::Journey(_))) else {
        panic!("journey not finished after the hold time")
    };
    assert!(j.complete);
    assert!(j
        .outcome
        .text()
        .ends_with("; no read of the error while sockpath waited"));
}

#[test]
fn closed_port_gets_a_reset_and_a_drop_with_reason() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 13, tcp4(5555, 4000, 1, None, "S", &[])),
            reset_sent(MS + 5_000, 13, 1),
            dropped(MS + 9_000, 13, 3),
        ],
    );
    let j = &j[0];
    assert_eq!(j.outcome.kind, OutcomeKind::Dropped);
    assert_eq!(j.outcome.reason.as_deref(), Some("NO_SOCKET"));
    assert!(j.outcome.reset_sent);
    assert!(j.outcome.text().contains("no socket for 127.0.0.1:4000"));
    let lookup = j.stages.iter().find(|s| s.name == "socket lookup").unwrap();
    assert_eq!(lookup.detail(), "no socket for 127.0.0.1:4000");
}

/// The client's FIN reaches the server's time-wait socket (rx_sk of the drop, in TIME_WAIT once
/// it handled the FIN), which answers with an ACK: a segment the time-wait socket handled, not a
/// drop.
#[test]
fn a_fin_to_a_time_wait_socket_names_it_and_its_ack() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 14, tcp4(4444, 4000, 7, Some(9), "FA", &[])),
            skb_ev(
                MS + 2_000,
                14,
                SkbKind::Answer {
                    flags: 0x10,
                    sk: 0x77,
                },
            ),
            skb_ev(
                MS + 3_000,
                14,
                SkbKind::Drop {
                    reason: 2,
                    location: 0,
                    sk: 0x77,
                    tw_substate: Some(TimeWait as u8),
                    tw_left: None,
                },
            ),
        ],
    );
    let j = &j[0];
    assert!(j.complete, "{:?}", j.incomplete_reason);
    assert_eq!(j.outcome.kind, OutcomeKind::Consumed);
    assert_eq!(
        j.outcome.text(),
        "handled by the time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (TIME_WAIT): ACK sent; \
         then freed as a drop (NOT_SPECIFIED)"
    );
    let lookup = j.stages.iter().find(|s| s.name == "socket lookup").unwrap();
    assert_eq!(
        lookup.detail(),
        "time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (TIME_WAIT once it handled the segment)"
    );
    let answer = j.stages.iter().find(|s| s.name == "answer sent").unwrap();
    assert_eq!(answer.hook_target, "net_dev_queue");
    assert_eq!(
        answer.detail(),
        "ACK sent by the time-wait socket (TIME_WAIT)"
    );
    assert_eq!(a.summary().dropped, 0);
}

/// A pure ACK no hook but consume_skb saw (a socket not in ESTABLISHED, whose receive path has
/// no tracepoint) ends consumed, complete.
#[test]
fn a_consumed_pure_ack_is_complete() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 15, tcp4(4444, 4000, 7, Some(9), "A", &[])),
            skb_ev(MS + 2_000, 15, SkbKind::Consumed { location: 0 }),
        ],
    );
    let j = &j[0];
    assert!(j.complete, "{:?}", j.incomplete_reason);
    assert_eq!(j.outcome.kind, OutcomeKind::Consumed);
    assert_eq!(
        j.outcome.text(),
        "a pure ACK, processed, then freed by the kernel"
    );
    let st = j.stages.iter().find(|s| s.name == "consume_skb").unwrap();
    assert_eq!(st.hook_target, "consume_skb");
    assert_eq!(st.detail(), "consumed: a pure ACK, processed");
}

/// A SYN the listener took in and freed without a SYN-ACK (its accept queue full, as the
/// lookup read it), then the client's retransmission of it, joined to the first.
#[test]
fn a_syn_to_a_full_accept_queue_and_its_retransmission() {
    let mut a = asm();
    let listener = sock(1, 6, 4000, 0, Listen);
    let lookup = |ts, id| {
        sock_ev(
            ts,
            id,
            true,
            SockKind::Lookup {
                table: sockpath_ebpf::event::LookupTable::Listener,
                found: Some(listener.clone()),
                tw_substate: None,
                tw_left: None,
                accept_queue: Some((2, 1)),
                syn_queue: Some(0),
                syn_sysctls: None,
            },
        )
    };
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 16, tcp4(4444, 4000, 77, None, "S", &[])),
            lookup(MS + 1_000, 16),
            skb_ev(MS + 2_000, 16, SkbKind::Consumed { location: 0 }),
            packet(1_001 * MS, 17, tcp4(4444, 4000, 77, None, "S", &[])),
            lookup(1_001 * MS + 1_000, 17),
            skb_ev(1_001 * MS + 2_000, 17, SkbKind::Consumed { location: 0 }),
        ],
    );
    assert_eq!(j.len(), 2);
    for j in &j {
        assert!(j.complete, "{:?}", j.incomplete_reason);
        assert_eq!(j.outcome.kind, OutcomeKind::Dropped);
    }
    assert_eq!(
        j[0].outcome.text(),
        "SYN not answered by listener 127.0.0.1:4000: accept queue full (2 of 1): SYN dropped, \
         the client sends it again when its retransmission timer fires (1 s, then longer)"
    );
    assert!(
        j[1].outcome
            .text()
            .ends_with("; retransmission 1 of the SYN of journey 1, 1.0 s after it"),
        "{}",
        j[1].outcome.text()
    );
}

/// A SYN past a full SYN queue with SYN cookies on: the SYN-ACK leaves from no socket (the
/// listener keeps no request socket), the SYN is freed as consumed.
#[test]
fn a_syn_answered_with_a_syn_cookie_names_the_full_syn_queue() {
    let mut a = asm();
    let listener = sock(1, 6, 4000, 0, Listen);
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 18, tcp4(4444, 4000, 77, None, "S", &[])),
            sock_ev(
                MS + 1_000,
                18,
                true,
                SockKind::Lookup {
                    table: sockpath_ebpf::event::LookupTable::Listener,
                    found: Some(listener),
                    tw_substate: None,
                    tw_left: None,
                    accept_queue: Some((0, 2)),
                    syn_queue: Some(2),
                    syn_sysctls: None,
                },
            ),
            skb_ev(MS + 2_000, 18, SkbKind::Answer { flags: 0x12, sk: 0 }),
            skb_ev(MS + 3_000, 18, SkbKind::Consumed { location: 0 }),
        ],
    );
    let j = &j[0];
    assert!(j.complete, "{:?}", j.incomplete_reason);
    assert_eq!(j.outcome.kind, OutcomeKind::SynAckSent);
    assert_eq!(
        j.outcome.text(),
        "listener 127.0.0.1:4000 answered with a SYN cookie: its SYN queue was full (2 of 2 \
         handshakes in progress); no request socket kept: the client sees a plain SYN-ACK, and \
         its ACK, if the cookie checks out, creates the connection"
    );
    let sent = j.stages.iter().find(|s| s.name == "SYN-ACK sent").unwrap();
    assert_eq!(
        sent.detail(),
        "SYN-ACK with a SYN cookie sent, from no socket: the listener kept no request socket"
    );
}

#[test]
fn accept_names_the_call_that_returned_the_connection() {
    let mut a = asm();
    let listener = sock(1, 6, 4000, 0, Listen);
    let child = sock(5, 6, 4000, 4444, SynRecv);
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 11, tcp4(4444, 4000, 101, Some(501), "A", &[])),
            state(MS + 1_000, 11, true, child.clone(), Listen, SynRecv),
            state(MS + 2_000, 11, true, child.clone(), SynRecv, Established),
            data_ready(MS + 3_000, 11, true, listener),
            syscall(MS + 9_000, SERVER, SyscallKind::Accept, 3, 4, child),
        ],
    );
    let accept = j[0].stages.iter().find(|s| s.name == "accept").unwrap();
    assert_eq!(accept.hook_target, "syscalls/sys_exit_accept");
    assert_eq!(accept.detail(), "accept() = 4 in server[100]");
}

/// A full receive queue is seen by sock_rcvqueue_full or udp_fail_queue_rcv_skb; the stage
/// names the one that fired.
fn queue_fail(ts: u64, id: u64, rc: i32, by: QueueFullHook) -> Event {
    skb_ev(ts, id, SkbKind::QueueFail { rc, by })
}

#[test]
fn a_full_queue_names_the_tracepoint_that_saw_it() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 31, udp4(5000, 4000, b"x")),
            queue_fail(MS + 2_000, 31, -12, QueueFullHook::SockRcvqueueFull),
            dropped(MS + 3_000, 31, 2),
            packet(2 * MS, 32, udp4(5000, 4000, b"y")),
            queue_fail(2 * MS + 2_000, 32, -105, QueueFullHook::UdpFailQueueRcvSkb),
            dropped(2 * MS + 3_000, 32, 2),
        ],
    );
    let target = |j: &Journey| {
        j.stages
            .iter()
            .find(|s| s.name == "queue failed")
            .map(|s| s.hook_target)
    };
    assert_eq!(target(&j[0]), Some("sock_rcvqueue_full"));
    assert_eq!(target(&j[1]), Some("udp_fail_queue_rcv_skb"));
}

/// `watch --sample N`: a packet not followed comes as its device receive, sent late by the
/// hook that saw its end, then that end. The journey says so; nothing between is inferred,
/// and it is not incomplete for it.
#[test]
fn a_sampled_out_packet_is_told_from_its_drop_without_inferred_stages() {
    let mut a = asm();
    let mut late = packet(MS, 41, udp4(5000, 4000, b"x"));
    if let Event::Packet(p) = &mut late {
        p.sampled_out = true;
    }
    let (j, _) = run(
        &mut a,
        vec![
            late,
            skb_ev(MS + 2_000, 41, SkbKind::IcmpSent { type_: 3, code: 3 }),
            dropped(MS + 3_000, 41, 3),
            // A followed one, for comparison: its missing stages are inferred.
            packet(2 * MS, 42, udp4(5000, 4000, b"y")),
            dropped(2 * MS + 3_000, 42, 3),
        ],
    );
    let (out, followed) = (&j[0], &j[1]);
    assert!(out.sampled_out && !followed.sampled_out);
    assert!(out.complete, "{:?}", out.incomplete_reason);
    assert_eq!(out.outcome.kind, OutcomeKind::Dropped);
    assert_eq!(out.outcome.reason.as_deref(), Some("NO_SOCKET"));
    assert!(out.stages.iter().all(|s| s.observed()), "{:?}", out.stages);
    assert_eq!(out.stages[0].name, "netif_receive_skb");
    assert_eq!(out.stages.last().unwrap().offset_ns, Some(3_000));
    assert!(followed.stages.iter().any(|s| !s.observed()));
}

#[test]
fn udp_datagrams_are_read_oldest_first() {
    let mut a = asm();
    let bound = sock(7, 17, 4000, 0, Close);
    let mut events = vec![];
    for i in 1..=2u64 {
        events.push(packet(MS * i, i, udp4(5000, 4000, &vec![b'x'; i as usize])));
        events.push(data_ready(MS * i + 1, i, true, bound.clone()));
    }
    for (i, len) in [(3u64, 1), (4, 2)] {
        events.push(recv(MS * i, bound.clone(), len, 0, None));
    }
    let (j, _) = run(&mut a, events);
    assert_eq!(j[0].outcome.bytes, Some(1));
    assert_eq!(j[1].outcome.bytes, Some(2));
}

#[test]
fn events_read_before_their_packet_still_join_it() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    let (j, _) = run(
        &mut a,
        vec![
            tcp_rcv(MS + 2, 21, true, child),
            packet(MS, 21, tcp4(4444, 4000, 5, Some(6), "A", &[])),
        ],
    );
    assert_eq!(j.len(), 1);
    assert!(j[0].complete, "{:?}", j[0].incomplete_reason);
    assert_eq!(j[0].outcome.kind, OutcomeKind::Consumed);
}

#[test]
fn lost_events_mark_journeys_in_flight_incomplete() {
    let mut a = asm();
    a.push(packet(MS, 31, tcp4(4444, 4000, 5, Some(6), "A", &[])));
    a.lost(3, 2 * MS);
    let (j, _) = run(&mut a, vec![]);
    assert!(!j[0].complete);
    assert!(j[0].incomplete_reason.as_ref().unwrap().contains("lost"));
    assert_eq!(a.summary().events_lost, 3);
}

/// A reader that is behind learns of a loss long after journeys it has not read yet ended:
/// only those alive when the events were lost are marked.
#[test]
fn only_journeys_alive_when_events_were_lost_are_marked() {
    let mut a = asm();
    let bound = sock(7, 17, 4000, 0, Close);
    let datagram = |a: &mut Assembler, t: u64, id: u64| {
        a.push(packet(t, id, udp4(5000, 4000, b"x")));
        a.push(data_ready(t + 1, id, true, bound.clone()));
    };
    let read = |a: &mut Assembler, t: u64| a.push(recv(t, bound.clone(), 1, 0, None));
    a.lost(0, 0);
    datagram(&mut a, MS, 1);
    // Counted at 110 ms, lost after the check at 100 ms.
    a.lost(0, 100 * MS);
    a.lost(5, 110 * MS);
    // Read from the ring only now: ended at 2 ms, long before the loss.
    read(&mut a, 2 * MS);
    // Queued at 3 ms and never read: still waiting when the events were lost.
    datagram(&mut a, 3 * MS, 2);
    // After the loss, and not read either.
    datagram(&mut a, 200 * MS, 3);
    let (j, _) = run(&mut a, vec![]);
    let kinds: Vec<OutcomeKind> = j.iter().map(|j| j.outcome.kind).collect();
    assert_eq!(
        kinds,
        [OutcomeKind::Read, OutcomeKind::Queued, OutcomeKind::Queued]
    );
    let complete: Vec<bool> = j.iter().map(|j| j.complete).collect();
    assert_eq!(
        complete,
        [true, false, true],
        "{:?}",
        j.iter().map(|j| &j.incomplete_reason).collect::<Vec<_>>()
    );
    assert!(j[1].incomplete_reason.as_ref().unwrap().contains("lost"));
    assert_eq!(a.summary().events_lost, 5);
}

#[test]
fn an_event_whose_packet_was_lost_is_an_incomplete_journey() {
    let mut a = asm();
    let (j, _) = run(&mut a, vec![dropped(MS, 41, 3)]);
    assert_eq!(j.len(), 1);
    assert!(!j[0].complete);
    assert_eq!(
        j[0].incomplete_reason.as_deref(),
        Some("the device-receive event was lost")
    );
}

#[test]
fn nothing_after_device_receive_is_incomplete() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![packet(MS, 51, tcp4(4444, 4000, 5, Some(6), "PA", b"data"))],
    );
    assert!(!j[0].complete);
    assert_eq!(j[0].outcome.kind, OutcomeKind::Unknown);
}

#[test]
fn a_pure_ack_nothing_saw_freed_is_consumed_by_elimination() {
    // The drop and consume hooks are attached (the tracepoint-only kernel's choice) and no
    // event was lost: the kernel freed it where no hook is.
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![packet(MS, 51, tcp4(4444, 4000, 5, Some(6), "A", &[]))],
    );
    assert!(j[0].complete, "{:?}", j[0].incomplete_reason);
    assert_eq!(j[0].outcome.kind, OutcomeKind::Consumed);
    assert!(j[0]
        .outcome
        .text()
        .starts_with("consumed (inferred): a pure ACK"));
    // A FIN is no pure ACK: something must have been seen of it.
    let (j, _) = run(
        &mut a,
        vec![packet(2 * MS, 52, tcp4(4444, 4000, 6, Some(6), "FA", &[]))],
    );
    assert_eq!(j[0].outcome.kind, OutcomeKind::Unknown);
}

#[test]
fn wrong_softirq_hint_is_corrected_by_addresses() {
    // Two packets received in one batch before either was processed: the CPU's hint names the
    // second, but the first packet's socket is the one that woke.
    let mut a = asm();
    let s1 = sock(3, 6, 4000, 4444, Established);
    let s2 = sock(4, 6, 4000, 4445, Established);
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 61, tcp4(4444, 4000, 5, Some(6), "AF", &[])),
            packet(MS + 1, 62, tcp4(4445, 4000, 5, Some(6), "AF", &[])),
            state(MS + 10, 62, true, s1.clone(), Established, CloseWait),
            state(MS + 11, 62, true, s2.clone(), Established, CloseWait),
        ],
    );
    assert_eq!(
        j[0].state_changes[0].socket,
        "127.0.0.1:4000 <-> 127.0.0.1:4444"
    );
    assert_eq!(
        j[1].state_changes[0].socket,
        "127.0.0.1:4000 <-> 127.0.0.1:4445"
    );
}

#[test]
fn an_event_naming_a_lost_packet_goes_to_the_latest_that_fits_among_many_open() {
    // Thousands in flight, and the CPU's hint names a packet whose event was lost: the socket
    // event goes to the newest packet received before it whose addresses fit, not to one that
    // came after it, and finding it does not mean trying every open journey.
    let mut a = asm();
    let s1 = sock(3, 6, 4000, 4444, Established);
    let mut events = Vec::new();
    for i in 0..3000 {
        events.push(packet(
            MS + i,
            100 + i,
            tcp4(4444, 4000, 5 + i as u32, Some(6), "A", &[]),
        ));
    }
    // Between packets 2000 and 2001; journey 99 was never seen.
    events.insert(2001, state(MS + 2000, 99, true, s1, Established, CloseWait));
    let (j, _) = run(&mut a, events);
    assert_eq!(j.len(), 3000);
    let with_change: Vec<u64> = j
        .iter()
        .filter(|j| !j.state_changes.is_empty())
        .map(|j| j.kernel_id)
        .collect();
    assert_eq!(with_change, vec![2100]);
}

#[test]
fn a_backlog_hint_ends_with_the_read_that_processed_the_backlog() {
    // The client's FIN came while the server was in recvfrom() holding the socket: processed
    // from the backlog in the server's thread (tcp_probe outside softirq). The read returned
    // end of file; then close() sent the server's FIN, the client's final ACK came while close()
    // held the socket, and its LAST_ACK -> CLOSE ran in the server's thread too. That change
    // is the final ACK's, not the FIN's the earlier read processed.
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    // tcp_probe names its packet through the sk_buff, in any context.
    let fin_rcv = tcp_rcv(MS + 2_000, 71, false, child.clone());
    let eof = recv(MS + 5_000, child.clone(), 0, 0, None);
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 71, tcp4(4444, 4000, 7, Some(9), "AF", &[])),
            fin_rcv,
            state(MS + 3_000, 0, false, child.clone(), Established, CloseWait),
            eof,
            packet(MS + 100_000, 72, tcp4(4444, 4000, 8, Some(10), "A", &[])),
            state(MS + 110_000, 0, false, child.clone(), LastAck, Close),
        ],
    );
    assert_eq!(j.len(), 2);
    let changes = |j: &Journey| {
        j.state_changes
            .iter()
            .map(|c| format!("{} -> {}", c.from, c.to))
            .collect::<Vec<_>>()
    };
    assert_eq!(changes(&j[0]), vec!["ESTABLISHED -> CLOSE_WAIT"]);
    assert_eq!(changes(&j[1]), vec!["LAST_ACK -> CLOSE"]);
}

#[test]
fn reused_skb_address_is_two_journeys() {
    // The same sk_buff address for two packets: journeys are keyed by the kernel's journey id,
    // so the drop of the second does not touch the first.
    let mut a = asm();
    let mut p1 = packet(MS, 71, tcp4(4444, 4000, 5, None, "S", &[]));
    let mut p2 = packet(2 * MS, 72, tcp4(4446, 4000, 5, None, "S", &[]));
    for p in [&mut p1, &mut p2] {
        if let Event::Packet(p) = p {
            p.skb = 0xabc;
        }
    }
    let (j, _) = run(&mut a, vec![p1, p2, dropped(2 * MS + 5, 72, 3)]);
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].outcome.kind, OutcomeKind::Unknown);
    assert_eq!(j[1].outcome.kind, OutcomeKind::Dropped);
}

#[test]
fn unread_data_is_queued_after_the_hold_time() {
    let mut a = asm();
    let child = sock(3, 6, 4000, 4444, Established);
    a.push(packet(MS, 81, tcp4(4444, 4000, 5, Some(6), "AP", b"data")));
    a.push(tcp_rcv(MS + 2, 81, true, child));
    a.tick(MS + 500 * MS);
    assert_eq!(a.take_ready().len(), 0, "waits for the read");
    a.tick(MS + 2_100 * MS);
    let items: Vec<Item> = a.take_ready().collect();
    let Some(Item::Journey(j)) = items.first() else {
        panic!("journey not finished after the hold time")
    };
    assert_eq!(j.outcome.kind, OutcomeKind::Queued);
    assert!(j.complete);
}

#[test]
fn syscalls_before_a_decision_are_shown_once_the_socket_is_watched() {
    let mut a = asm();
    let fresh = sock(9, 6, 0, 0, Close);
    let bound = sock(9, 6, 4444, 0, Close);
    let connected = sock(9, 6, 4444, 4000, SynSent);
    let mut bind = syscall(3 * MS, CLIENT, SyscallKind::Bind, 3, 0, bound);
    if let Event::Syscall(s) = &mut bind {
        s.addr = Some((LO, 4444));
    }
    let (_, calls) = run(
        &mut a,
        vec![
            syscall(MS, CLIENT, SyscallKind::Socket, -1, 3, fresh.clone()),
            syscall(2 * MS, CLIENT, SyscallKind::Setsockopt, 3, 0, fresh),
            bind,
            syscall(4 * MS, CLIENT, SyscallKind::Connect, 3, 0, connected),
        ],
    );
    let names: Vec<&str> = calls.iter().map(|c| c.syscall.as_str()).collect();
    assert_eq!(names, ["socket", "setsockopt", "bind", "connect"]);
}

#[test]
fn an_unwatched_socket_prints_nothing() {
    let mut a = asm();
    let fresh = sock(9, 6, 0, 0, Close);
    let (_, calls) = run(
        &mut a,
        vec![
            syscall(MS, CLIENT, SyscallKind::Socket, -1, 3, fresh.clone()),
            syscall(2 * MS, CLIENT, SyscallKind::Close, 3, 0, fresh),
        ],
    );
    assert!(calls.is_empty());
}

#[test]
fn state_change_in_a_syscall_belongs_to_the_syscall() {
    let mut a = asm();
    let s = sock(3, 6, 4444, 4000, Established);
    let (_, calls) = run(
        &mut a,
        vec![
            state(MS, 0, false, s.clone(), Established, FinWait1),
            syscall(MS + 500, SERVER, SyscallKind::Close, 3, 0, s),
        ],
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].state_changes[0].to, "FIN_WAIT1");
}

#[test]
fn text_block_shows_summary_stages_and_outcome() {
    let mut a = asm();
    let (j, _) = run(
        &mut a,
        vec![
            packet(MS, 13, tcp4(5555, 4000, 1, None, "S", &[])),
            reset_sent(MS + 5_000, 13, 1),
            dropped(MS + 9_000, 13, 3),
        ],
    );
    let text = crate::output::text::journey_text(&j[0]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(
            "lo 127.0.0.1:5555 → 127.0.0.1:4000 TCP [SYN] Seq=1 Win=65495 Len=0  (journey 1)"
        ),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("+0.0µs") && lines[1].contains("tp_btf netif_receive_skb"));
    assert!(lines[2].contains("inferred") && lines[2].contains("ip_rcv"));
    assert!(lines
        .iter()
        .any(|l| l.contains("+5.0µs") && !l.contains("(+") && l.contains("tcp_send_reset")));
    assert!(lines
        .iter()
        .any(|l| l.contains("+9.0µs") && l.contains("(+4.0µs)") && l.contains("kfree_skb")));
    assert_eq!(
        *lines.last().unwrap(),
        "    => no socket for 127.0.0.1:4000: RST sent, dropped (NO_SOCKET)"
    );
}

#[test]
fn over_the_cap_the_oldest_journey_ends_given_up_only_if_it_still_waited() {
    let cfg = Config {
        filter: WatchFilter::port(4000),
        max_open: 2,
        ..Config::default()
    };
    let mut a = Assembler::new(cfg, KernelNames::for_tests(), Clock::fixed(0));
    let bound = sock(7, 17, 4000, 0, Close);
    let mut events = vec![];
    // Datagram 1 is queued and read (only settling); datagram 2 is queued and never read.
    for i in 1..=2u64 {
        events.push(packet(MS * i, i, udp4(5000, 4000, b"x")));
        events.push(data_ready(MS * i + 1, i, true, bound.clone()));
        if i == 1 {
            events.push(recv(MS * i + 2, bound.clone(), 1, 0, None));
        }
    }
    // Two more packets push both out, oldest first.
    for i in 3..=4u64 {
        events.push(packet(MS * i, i, udp4(5000, 4000, b"x")));
    }
    for e in events {
        a.push(e);
    }
    let mut out: Vec<Journey> = a
        .take_ready()
        .filter_map(|i| match i {
            Item::Journey(j) => Some(*j),
            _ => None,
        })
        .collect();
    out.sort_by_key(|j| j.id);
    assert_eq!(out.len(), 2, "the two oldest were pushed out");
    assert!(out[0].complete, "{:?}", out[0].incomplete_reason);
    assert_eq!(out[0].outcome.kind, OutcomeKind::Read);
    assert!(!out[1].complete);
    assert_eq!(
        out[1].incomplete_reason.as_deref(),
        Some("given up on: too many journeys in flight")
    );
    assert_eq!(a.summary().evicted, 1);
    assert_eq!(a.oldest_open(), Some(3 * MS));
}

/// Runs events through the assembler without the golden files: the journeys, oldest first.
fn journeys_of(a: &mut Assembler, events: Vec<Event>) -> Vec<Journey> {
    for e in events {
        a.push(e);
    }
    a.finish();
    a.take_ready()
        .filter_map(|i| match i {
            Item::Journey(j) => Some(*j),
            _ => None,
        })
        .collect()
}

#[test]
fn a_duplicate_journey_id_keeps_the_new_journeys_events() {
    // The kernel never reuses an id; if a corrupt stream does, the first journey ends and the
    // events that follow are the second's.
    let mut a = asm();
    let j = journeys_of(
        &mut a,
        vec![
            packet(MS, 5, tcp4(4444, 4000, 5, None, "S", &[])),
            packet(2 * MS, 5, tcp4(4446, 4000, 5, None, "S", &[])),
            reset_sent(2 * MS + 3, 5, 1),
            dropped(2 * MS + 5, 5, 3),
        ],
    );
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].outcome.kind, OutcomeKind::Unknown);
    assert_eq!(
        j[1].outcome.kind,
        OutcomeKind::Dropped,
        "{}",
        j[1].outcome.text()
    );
    assert!(j[1].outcome.reset_sent);
    assert!(j[1].complete, "{:?}", j[1].incomplete_reason);
}

/// The kernel's set is wider than the filter (a daemon's other watchers): a packet outside it
/// is no journey here and is not counted as matched.
#[test]
fn packets_outside_the_filter_are_neither_journeys_nor_matched() {
    let mut a = asm();
    let j = journeys_of(
        &mut a,
        vec![
            packet(MS, 5, tcp4(4444, 4000, 5, None, "S", &[])),
            packet(2 * MS, 6, tcp4(4444, 5000, 5, None, "S", &[])),
            dropped(2 * MS + 5, 6, 3),
        ],
    );
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].headers.as_ref().and_then(|h| h.dport), Some(4000));
    assert_eq!(a.summary().packets_matched, 1);
    assert_eq!(a.summary().journeys, 1);
}

/// An owner filter (`--pid`) on the netcat handshake: the server's SYN and third ACK (a
/// connection in its listener's queue, not yet accepted, so held by no one) are its journeys,
/// the SYN-ACK reaching the client's socket is not; so is the last ACK, which reaches the
/// connection after the server closed it (its accept() was not seen: only the close() says
/// who held it). Only the filtered process's calls show.
#[test]
fn an_owner_filter_keeps_the_journeys_and_calls_of_its_processes() {
    let listener = sock(1, 6, 4000, 0, Listen);
    let client = sock(9, 6, 4444, 4000, SynSent);
    let child = sock(3, 6, 4000, 4444, SynRecv);
    let events = || {
        let synack = sock_ev(
            MS + 10_000,
            7,
            true,
            SockKind::SynAck {
                listener: listener.clone(),
                request: sock(2, 0, 4000, 4444, NewSynRecv),
            },
        );
        vec![
            syscall(
                MS / 4,
                SERVER,
                SyscallKind::Socket,
                -1,
                3,
                sock(1, 6, 0, 0, Close),
            ),
            syscall(MS / 3, SERVER, SyscallKind::Listen, 3, 0, listener.clone()),
            syscall(
                MS / 2,
                CLIENT,
                SyscallKind::Socket,
                -1,
                5,
                sock(9, 6, 0, 0, Close),
            ),
            packet(MS, 7, tcp4(4444, 4000, 100, None, "S", &[])),
            synack,
            packet(2 * MS, 8, tcp4(4000, 4444, 500, Some(101), "SA", &[])),
            state(
                2 * MS + 1_000,
                8,
                true,
                client.clone(),
                SynSent,
                Established,
            ),
            packet(3 * MS, 9, tcp4(4444, 4000, 101, Some(501), "A", &[])),
            state(3 * MS + 1_000, 9, true, child.clone(), SynRecv, Established),
            data_ready(3 * MS + 2_000, 9, true, listener.clone()),
            syscall(4 * MS, CLIENT, SyscallKind::Connect, 5, 0, client.clone()),
            syscall(5 * MS, SERVER, SyscallKind::Close, 4, 0, child.clone()),
            packet(6 * MS, 10, tcp4(4444, 4000, 101, Some(502), "A", &[])),
            state(6 * MS + 1_000, 10, true, child.clone(), LastAck, Close),
        ]
    };
    let collect = |pid: u32| {
        let mut f = WatchFilter::default();
        f.owners.pids.insert(pid);
        let mut a = Assembler::new(
            Config {
                filter: f,
                ..Config::default()
            },
            KernelNames::for_tests(),
            Clock::fixed(0),
        );
        for e in events() {
            a.push(e);
        }
        a.finish();
        let mut journeys = Vec::new();
        let mut calls = Vec::new();
        for item in a.take_ready() {
            match item {
                Item::Journey(j) => journeys.push(j.kernel_id),
                Item::Syscall(s) => calls.push((s.pid, s.syscall)),
                Item::Note(_) => {}
            }
        }
        journeys.sort();
        (journeys, calls, a.summary().journeys)
    };
    let (journeys, calls, counted) = collect(SERVER);
    assert_eq!(journeys, [7, 9, 10]);
    assert_eq!(counted, 3);
    assert_eq!(
        calls,
        [
            (SERVER, "socket".to_string()),
            (SERVER, "listen".to_string()),
            (SERVER, "close".to_string())
        ]
    );
    let (journeys, calls, _) = collect(CLIENT);
    assert_eq!(journeys, [8]);
    assert_eq!(
        calls,
        [
            (CLIENT, "socket".to_string()),
            (CLIENT, "connect".to_string())
        ]
    );
}
