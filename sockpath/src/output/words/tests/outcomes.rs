//! One outcome of each kind, with its sentence.

use std::sync::Arc;

use super::{addr, change, listener, view};
use crate::journey::model::{
    AfterReset, Connect, ConsumedWhy, Outcome, OutcomeData, OutcomeKind, Retransmission,
    SocketView, TimeWaitAnswer, Transition,
};

fn outcome(kind: OutcomeKind, data: OutcomeData, f: impl FnOnce(&mut Outcome)) -> Outcome {
    let mut o = Outcome::new(kind, data);
    f(&mut o);
    o
}

fn reader(o: &mut Outcome) {
    o.pid = Some(100);
    o.comm = Some("nc".into());
    o.syscall = Some("read");
    o.fd = Some(4);
}

/// The connection nc[100] holds as fd 4.
fn conn() -> SocketView {
    view(
        "127.0.0.1:4000",
        "127.0.0.1:4444",
        "ESTABLISHED",
        Some(("nc", 100, 4)),
    )
}

fn refused() -> Option<Connect> {
    Some(Connect {
        ret: -111,
        comm: "client".into(),
        pid: 200,
    })
}

/// One outcome of each kind (and each way of saying it), with its sentence.
pub fn every_outcome() -> Vec<(Outcome, &'static str)> {
    use OutcomeKind as K;
    vec![
        (
            outcome(K::Read, OutcomeData::Read { payload: 6 }, |o| {
                reader(o);
                o.bytes = Some(6);
            }),
            "6 bytes delivered and read by nc[100] via read(4)",
        ),
        (
            outcome(K::Read, OutcomeData::Read { payload: 6 }, |o| {
                reader(o);
                o.bytes = Some(2);
            }),
            "2 of 6 bytes read by nc[100] via read(4), the rest still queued",
        ),
        (
            outcome(
                K::Queued,
                OutcomeData::Unread {
                    payload: 6,
                    local: Arc::from("127.0.0.1:4000"),
                },
                |o| o.bytes = Some(0),
            ),
            "6 bytes queued on 127.0.0.1:4000, not read while sockpath waited",
        ),
        (
            outcome(
                K::Queued,
                OutcomeData::QueuedOn {
                    local: addr("127.0.0.1:4000"),
                },
                |_| {},
            ),
            "queued on 127.0.0.1:4000",
        ),
        (
            outcome(K::Accepted, OutcomeData::Accepted, |o| {
                o.pid = Some(100);
                o.comm = Some("server".into());
                o.syscall = Some("accept4");
                o.fd = Some(4);
            }),
            "connection accepted: accept4() = 4 in server[100]",
        ),
        (
            outcome(
                K::AcceptQueued,
                OutcomeData::AcceptQueued { listener: None },
                |_| {},
            ),
            "handshake complete: connection waits in the listener's accept queue (not accepted while sockpath waited)",
        ),
        (
            outcome(
                K::AcceptQueued,
                OutcomeData::AcceptQueued {
                    listener: Some(addr("127.0.0.1:4000")),
                },
                |_| {},
            ),
            "handshake complete: connection waits in 127.0.0.1:4000's accept queue (not accepted while sockpath waited)",
        ),
        (
            outcome(
                K::SynAckSent,
                OutcomeData::SynAck {
                    listener: listener(),
                },
                |_| {},
            ),
            "listener 127.0.0.1:4000 (server[100] fd 3) answered with SYN-ACK",
        ),
        (
            outcome(
                K::StateChanged,
                OutcomeData::StateChanged {
                    change: change("FIN_WAIT1", "CLOSE", true),
                    connect: None,
                    eof: true,
                },
                reader,
            ),
            "TCP FIN_WAIT1 -> TIME_WAIT; end of file read by nc[100] via read(4)",
        ),
        (
            outcome(
                K::StateChanged,
                OutcomeData::StateChanged {
                    change: change("SYN_SENT", "ESTABLISHED", false),
                    connect: Some(Connect {
                        ret: 0,
                        comm: "client".into(),
                        pid: 200,
                    }),
                    eof: false,
                },
                |_| {},
            ),
            "TCP SYN_SENT -> ESTABLISHED; connect() returned 0 in client[200]",
        ),
        (
            outcome(
                K::StateChanged,
                OutcomeData::Purged {
                    change: change("FIN_WAIT1", "FIN_WAIT2", false),
                },
                |o| o.reason = Some("QUEUE_PURGE".into()),
            ),
            "TCP FIN_WAIT1 -> FIN_WAIT2; the socket had been closed, its queue purged (QUEUE_PURGE)",
        ),
        (
            outcome(K::StateChanged, OutcomeData::EndOfFile, reader),
            "end of file read by nc[100] via read(4)",
        ),
        (
            outcome(
                K::Consumed,
                OutcomeData::Consumed {
                    flags: vec!["ACK", "PSH"],
                },
                |_| {},
            ),
            "ACK,PSH processed by the established socket",
        ),
        (
            outcome(
                K::ResetReceived,
                OutcomeData::ResetReceived {
                    socket: None,
                    connect: refused(),
                    after: AfterReset::Nothing,
                },
                |o| o.reason = Some("ECONNREFUSED".into()),
            ),
            "connection reset: ECONNREFUSED reported to the socket's user; connect() returned -1 ECONNREFUSED in client[200]",
        ),
        (
            outcome(
                K::ResetReceived,
                OutcomeData::ResetReceived {
                    socket: None,
                    connect: None,
                    after: AfterReset::Nothing,
                },
                |_| {},
            ),
            "connection reset",
        ),
        (
            outcome(
                K::ResetReceived,
                OutcomeData::ResetReceived {
                    socket: Some(conn()),
                    connect: None,
                    after: AfterReset::ReadFailed {
                        errno: "ECONNRESET".into(),
                    },
                },
                |o| {
                    reader(o);
                    o.reason = Some("ECONNRESET".into());
                },
            ),
            "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[100] fd 4): ECONNRESET reported to the socket's user; read(4) = -1 ECONNRESET in nc[100]",
        ),
        (
            outcome(
                K::ResetReceived,
                OutcomeData::ResetReceived {
                    socket: Some(conn()),
                    connect: None,
                    after: AfterReset::Closed {
                        comm: "nc".into(),
                        pid: 100,
                    },
                },
                |o| o.reason = Some("ECONNRESET".into()),
            ),
            "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[100] fd 4): ECONNRESET reported to the socket's user; closed by nc[100] without a read after the reset",
        ),
        (
            outcome(
                K::ResetReceived,
                OutcomeData::ResetReceived {
                    socket: Some(conn()),
                    connect: None,
                    after: AfterReset::NotRead,
                },
                |_| {},
            ),
            "connection reset on 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[100] fd 4); no read of the error while sockpath waited",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::Dropped {
                    no_socket: true,
                    dst: Some(addr("127.0.0.1:4000")),
                    connect: refused(),
                },
                |o| {
                    o.reason = Some("NO_SOCKET".into());
                    o.reset_sent = true;
                },
            ),
            "no socket for 127.0.0.1:4000: RST sent, dropped (NO_SOCKET); connect() returned -1 ECONNREFUSED in client[200]",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::Dropped {
                    no_socket: false,
                    dst: None,
                    connect: None,
                },
                |o| {
                    o.reason = Some("SOCKET_RCVBUFF".into());
                    o.icmp_sent = Some("ICMP port unreachable".into());
                },
            ),
            "ICMP port unreachable sent, dropped (SOCKET_RCVBUFF)",
        ),
        (
            outcome(K::Dropped, OutcomeData::ResetSent, |o| {
                o.reason = Some("NO_SOCKET".into());
                o.reset_sent = true;
            }),
            "RST sent (NO_SOCKET)",
        ),
        (
            outcome(
                K::StateChanged,
                OutcomeData::StateChanged {
                    change: Transition {
                        fin_wait2: true,
                        ..change("FIN_WAIT2", "CLOSE", false)
                    },
                    connect: None,
                    eof: false,
                },
                |_| {},
            ),
            "TCP FIN_WAIT2 -> CLOSE (a time-wait socket in FIN_WAIT2 continues it)",
        ),
        (
            outcome(
                K::Consumed,
                OutcomeData::TimeWait {
                    local: addr("127.0.0.1:4000"),
                    remote: addr("127.0.0.1:4444"),
                    substate: Some("FIN_WAIT2"),
                    answer: TimeWaitAnswer::Sent(vec!["ACK"]),
                },
                |_| {},
            ),
            "handled by the time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444 (FIN_WAIT2): ACK sent",
        ),
        (
            outcome(
                K::Consumed,
                OutcomeData::TimeWait {
                    local: addr("127.0.0.1:4000"),
                    remote: addr("127.0.0.1:4444"),
                    substate: None,
                    answer: TimeWaitAnswer::Reset,
                },
                |o| {
                    o.reason = Some("NOT_SPECIFIED".into());
                    o.reset_sent = true;
                },
            ),
            "handled by the time-wait socket 127.0.0.1:4000 <- 127.0.0.1:4444: RST sent; then freed \
             as a drop (NOT_SPECIFIED)",
        ),
        (
            outcome(
                K::Consumed,
                OutcomeData::ConsumedAt {
                    location: Some("tcp_rcv_state_process+0x815".into()),
                    why: Some(ConsumedWhy::PureAck),
                },
                |_| {},
            ),
            "a pure ACK, processed, then freed by the kernel at tcp_rcv_state_process+0x815",
        ),
        (
            outcome(
                K::Consumed,
                OutcomeData::ConsumedAt {
                    location: None,
                    why: None,
                },
                |_| {},
            ),
            "consumed by the kernel",
        ),
        (
            outcome(
                K::SynAckSent,
                OutcomeData::SynCookie {
                    listener: None,
                    queue: None,
                    syn_queue: None,
                },
                |_| {},
            ),
            "the listener answered with a SYN cookie: its SYN queue was full, or \
             net.ipv4.tcp_syncookies=2; no request socket kept: the client sees a plain SYN-ACK, \
             and its ACK, if the cookie checks out, creates the connection",
        ),
        (
            outcome(
                K::SynAckSent,
                OutcomeData::SynCookie {
                    listener: Some(listener()),
                    queue: Some((0, 2)),
                    syn_queue: Some(1),
                },
                |_| {},
            ),
            "listener 127.0.0.1:4000 (server[100] fd 3) answered with a SYN cookie though its SYN \
             queue was not full (1 of 2): net.ipv4.tcp_syncookies=2; no request socket kept: the \
             client sees a plain SYN-ACK, and its ACK, if the cookie checks out, creates the \
             connection",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: Some(listener()),
                    queue: Some((0, 2)),
                    syn_queue: Some(2),
                    syn_sysctls: None,
                    retransmission: None,
                },
                |_| {},
            ),
            "SYN not answered by listener 127.0.0.1:4000 (server[100] fd 3): SYN queue full (2 of \
             2 handshakes in progress) and no SYN cookies (net.ipv4.tcp_syncookies): SYN dropped, \
             the client sends it again when its retransmission timer fires (1 s, then longer)",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: None,
                    queue: Some((3, 2)),
                    syn_queue: Some(1),
                    syn_sysctls: None,
                    retransmission: None,
                },
                |_| {},
            ),
            "SYN not answered by the listener: accept queue full (3 of 2): SYN dropped, the client \
             sends it again when its retransmission timer fires (1 s, then longer)",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: None,
                    queue: Some((0, 128)),
                    syn_queue: Some(100),
                    syn_sysctls: None,
                    retransmission: None,
                },
                |_| {},
            ),
            "SYN not answered by the listener: neither queue full as the lookup read them (accept \
             queue 0 of 128, SYN queue 100): the SYN backlog's own check \
             (net.ipv4.tcp_max_syn_backlog, without SYN cookies) or another: SYN dropped, the \
             client sends it again when its retransmission timer fires (1 s, then longer)",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: None,
                    queue: Some((0, 64)),
                    syn_queue: Some(7),
                    syn_sysctls: Some((8, 0)),
                    retransmission: None,
                },
                |_| {},
            ),
            "SYN not answered by the listener: its SYN queue (7 handshakes in progress) had \
             reached 3/4 of net.ipv4.tcp_max_syn_backlog (8; 8 - 7 < 8 / 4) with no SYN cookies \
             (net.ipv4.tcp_syncookies=0): the last quarter is kept for peers the kernel has seen \
             alive before, and this client was not one: SYN dropped, the client sends it again \
             when its retransmission timer fires (1 s, then longer)",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: None,
                    queue: Some((0, 64)),
                    syn_queue: Some(6),
                    syn_sysctls: Some((8, 0)),
                    retransmission: None,
                },
                |_| {},
            ),
            "SYN not answered by the listener: neither queue full as the lookup read them (accept \
             queue 0 of 64, SYN queue 6) nor the SYN backlog's own check met \
             (net.ipv4.tcp_max_syn_backlog 8, net.ipv4.tcp_syncookies=0): another cause: SYN \
             dropped, the client sends it again when its retransmission timer fires (1 s, then \
             longer)",
        ),
        (
            outcome(
                K::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: None,
                    queue: None,
                    syn_queue: None,
                    syn_sysctls: None,
                    retransmission: Some(Retransmission {
                        n: 2,
                        first: 7,
                        after_ns: 3_000_000_000,
                    }),
                },
                |_| {},
            ),
            "SYN not answered by the listener: its accept queue or SYN queue was full, or without \
             SYN cookies its SYN queue had reached 3/4 of net.ipv4.tcp_max_syn_backlog (no hook at \
             the listener here to read which): SYN dropped, the client sends it again when its \
             retransmission timer fires (1 s, then longer); retransmission 2 of the SYN of journey \
             7, 3.0 s after it",
        ),
        (
            outcome(K::Consumed, OutcomeData::AckFreedUnseen, |_| {}),
            "consumed (inferred): a pure ACK the kernel processed and freed where no hook sees it \
             (no drop, reset or error was seen, and no event was lost)",
        ),
        (
            outcome(K::Unknown, OutcomeData::NothingObserved, |_| {}),
            "nothing observed after device receive",
        ),
        (
            outcome(
                K::Read,
                OutcomeData::Logged("as \"logged\"\tbefore".into()),
                |_| {},
            ),
            "as \"logged\"\tbefore",
        ),
    ]
}
