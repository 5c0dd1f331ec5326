//! What a journey gathers: one observation per thing seen happen to its packet after device
//! receive, in the order they were read.

use sockpath_ebpf::event::{Hop, LookupTable, QueueFullHook};

use super::{model::StateChange, names::tcp_state, sockets::endpoint};
use crate::decode::{FibEv, Socket};

/// One thing observed about a packet after device receive.
#[derive(Clone, Debug)]
pub(crate) enum Obs {
    Fib(FibEv),
    /// tcp_probe: established-state receive on this socket.
    TcpRcv {
        ts: u64,
        sock: Socket,
    },
    /// SYN-ACK sent by `listener` for request socket `req`.
    SynAck {
        ts: u64,
        listener: Socket,
        req: Socket,
    },
    State {
        ts: u64,
        sock: Socket,
        from: u8,
        to: u8,
    },
    DataReady {
        ts: u64,
        sock: Socket,
    },
    ReceiveReset {
        ts: u64,
        sock: Socket,
    },
    ErrorReport {
        ts: u64,
        err: i32,
    },
    ResetSent {
        ts: u64,
        sk: u64,
        reason: i32,
    },
    Icmp {
        ts: u64,
        type_: i32,
        code: i32,
    },
    Drop {
        ts: u64,
        reason: i32,
        location: u64,
        sk: u64,
    },
    /// consume_skb: freed once the kernel was done with it (0: the kernel does not say where).
    Consumed {
        ts: u64,
        location: u64,
    },
    /// A TCP segment with these flags was sent in answer by no full socket (a time-wait socket,
    /// or TCP's control socket).
    Answer {
        ts: u64,
        flags: u8,
    },
    QueueFail {
        ts: u64,
        rc: i32,
        /// The tracepoint that saw it.
        by: QueueFullHook,
    },
    /// Payload bytes of this packet taken by a reader.
    Read(ReadObs),
    /// The reader saw end-of-file (read() = 0) after this FIN.
    Eof(ReadObs),
    /// A read on the socket this RST reset failed with the error the reset set (`errno`,
    /// positive: ECONNRESET).
    ReadFailed {
        r: ReadObs,
        errno: i32,
    },
    /// The socket this RST reset was destroyed (closed by `comm[pid]`) before any read.
    ClosedAfterReset {
        ts: u64,
        comm: String,
        pid: u32,
    },
    Accepted(ReadObs),
    /// The packet entered a receive-path function (fentry/kprobe).
    Hop {
        ts: u64,
        hop: Hop,
    },
    /// A socket lookup for the packet returned `found` (None: no socket).
    Lookup {
        ts: u64,
        table: LookupTable,
        found: Option<Socket>,
    },
    /// The connect() this packet completed (SYN-ACK) or refused (RST) returned `ret`.
    Connected {
        r: ReadObs,
        ret: i64,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ReadObs {
    pub ts: u64,
    pub pid: u32,
    pub comm: String,
    pub bytes: u64,
    /// Filled in when the reader's system call returns.
    pub syscall: Option<&'static str>,
    pub fd: Option<i32>,
}

/// A TCP state change of socket `s` as the output tells it (`from` and `to` as `Obs::State`
/// holds them).
pub(crate) fn state_change(s: &Socket, from: u8, to: u8) -> StateChange {
    StateChange {
        from: tcp_state(from).to_string(),
        to: tcp_state(to).to_string(),
        socket: if s.rport == 0 {
            endpoint(s.laddr, s.lport)
        } else {
            format!(
                "{} <-> {}",
                endpoint(s.laddr, s.lport),
                endpoint(s.raddr, s.rport)
            )
        },
    }
}
