//! What became of the packet: its kind, the fields JSON readers filter on, and what the
//! outcome's sentence tells beyond them.

use std::{net::SocketAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{read, Name, SocketView, Transition};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Payload delivered and read by a process.
    Read,
    /// Payload delivered to the socket's receive queue, not read (yet).
    Queued,
    /// A connection handed to a process by accept()/accept4().
    Accepted,
    /// A connection waiting in the listener's accept queue.
    AcceptQueued,
    /// A SYN answered by a listener with a SYN-ACK.
    SynAckSent,
    /// TCP processed it and changed the socket's state (handshake, close).
    StateChanged,
    /// TCP processed it (an ACK) with nothing to queue.
    Consumed,
    /// The kernel dropped it (reason given).
    Dropped,
    /// A RST that closed the socket it reached.
    ResetReceived,
    /// Nothing after device receive was observed (read back: a kind this sockpath does not
    /// know).
    #[serde(other)]
    Unknown,
}

/// The JSON object's fields; its `text` is rendered from them and `data` (`output::words`,
/// `Outcome::text()`), which is also where its `Serialize` is.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// Drop reason (skb_drop_reason), reset reason, or socket error, as the kernel names it.
    pub reason: Option<String>,
    /// Process that read or accepted it.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    #[serde(default, deserialize_with = "read::opt_name")]
    pub syscall: Option<Name>,
    pub fd: Option<i32>,
    /// Payload bytes of this packet read by the process.
    pub bytes: Option<u64>,
    /// A RST was sent in answer.
    #[serde(default)]
    pub reset_sent: bool,
    /// An ICMP error was sent in answer ("port unreachable").
    pub icmp_sent: Option<String>,
    /// A time-wait socket handled it: milliseconds then left of its substate (FIN_WAIT2 or
    /// TIME_WAIT), where the kernel gave its timer. Absent from the JSON when None.
    #[serde(default)]
    pub time_wait_left_ms: Option<u64>,
    /// What the sentence tells beyond the fields above; read back, the sentence itself.
    #[serde(rename = "text")]
    pub data: OutcomeData,
}

impl Outcome {
    pub fn new(kind: OutcomeKind, data: OutcomeData) -> Self {
        Self {
            kind,
            reason: None,
            pid: None,
            comm: None,
            syscall: None,
            fd: None,
            bytes: None,
            reset_sent: false,
            icmp_sent: None,
            time_wait_left_ms: None,
            data,
        }
    }
}

/// A SYN sent again: the same ends and sequence number as the SYN of journey `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmission {
    pub n: u32,
    pub first: u64,
    pub after_ns: u64,
}

/// What a time-wait socket did with a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeWaitAnswer {
    /// It answered with a segment of these flags (the ACK of a FIN, or of a duplicate).
    Sent(Vec<&'static str>),
    /// It answered with a RST (the outcome's `reset_sent`; the reason in the stage).
    Reset,
    /// A new SYN reused the port: the time-wait socket gave way and this listener answered.
    NewSyn { listener: SocketView },
    /// Nothing was seen leaving in answer.
    Nothing,
}

/// What the user of a connection a RST reset did next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterReset {
    /// Its read failed with this error (errno name); the outcome's process fields say whose
    /// and which call.
    ReadFailed { errno: String },
    /// Its owner (this process) closed it without a read.
    Closed { comm: String, pid: u32 },
    /// No read while sockpath waited.
    NotRead,
    /// Nothing to tell: a connect() in progress (the connect fields tell it), a socket no
    /// process holds, or one that had received a FIN (its reads return end of file).
    Nothing,
}

/// The connect() a packet completed or refused: what it returned, in which process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub ret: i64,
    pub comm: String,
    pub pid: u32,
}

/// What an outcome's sentence needs beyond the outcome's fields (the reader, the reason, the
/// answers sent are there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutcomeData {
    /// The payload (`payload` bytes) read; `bytes` says how much, the process fields by whom.
    Read { payload: u64 },
    /// The payload queued on the socket at `local`, not read while sockpath waited.
    Unread { payload: u64, local: Arc<str> },
    /// Queued on the socket bound to `local` (nothing to read).
    QueuedOn { local: SocketAddr },
    /// A connection accepted; the process fields say by whom.
    Accepted,
    /// The handshake completed; the connection waits in the listener's accept queue.
    AcceptQueued { listener: Option<SocketAddr> },
    /// The listener answered with a SYN-ACK.
    SynAck { listener: SocketView },
    /// TCP changed the socket's state; the connect() it completed or refused; `eof`: the reader
    /// (the process fields) saw end of file.
    StateChanged {
        change: Transition,
        connect: Option<Connect>,
        eof: bool,
    },
    /// The socket had been closed; its queue, this packet in it, purged (QUEUE_PURGE).
    Purged { change: Transition },
    /// The reader (the process fields) saw end of file.
    EndOfFile,
    /// TCP processed it on the established socket, with these flags.
    Consumed { flags: Vec<&'static str> },
    /// Freed by the kernel once done with it (consume_skb), not dropped: where (the symbol; None
    /// when the kernel does not say) and, where it can be told, why.
    ConsumedAt {
        location: Option<String>,
        why: Option<super::ConsumedWhy>,
    },
    /// A time-wait socket with these ends (in its substate, when told) handled it, and answered
    /// as `answer` says; the kernel then freed it (on some kernels as a drop without reason:
    /// NOT_SPECIFIED, which is the outcome's `reason` then).
    TimeWait {
        local: SocketAddr,
        remote: SocketAddr,
        substate: Option<&'static str>,
        answer: TimeWaitAnswer,
    },
    /// A SYN the listener took in and freed without answering: its SYN queue or its accept
    /// queue was full. `queue`: the accept queue's length and limit as the lookup found it
    /// (kernels whose lookups are hooked), `syn_queue` the SYN queue's length then (the same
    /// limit); `retransmission`: this SYN is the client's retransmission `n` of the SYN of
    /// journey `first`, `after_ns` later.
    SynNotAnswered {
        listener: Option<SocketView>,
        queue: Option<(u32, u32)>,
        syn_queue: Option<u32>,
        /// The listener's namespace's net.ipv4.tcp_max_syn_backlog and net.ipv4.tcp_syncookies
        /// as the lookup read them.
        syn_sysctls: Option<(u32, u8)>,
        retransmission: Option<Retransmission>,
    },
    /// The listener answered the SYN with a SYN cookie: a SYN-ACK from no socket, no request
    /// socket kept. `queue`, `syn_queue`: the listener's queues as the lookup read them
    /// (kernels whose lookups are hooked), as for `SynNotAnswered`.
    SynCookie {
        listener: Option<SocketView>,
        queue: Option<(u32, u32)>,
        syn_queue: Option<u32>,
    },
    /// An RST reset the connection `socket` (as it was when the RST came: its owner); the
    /// error reported is the reason; `after`: what its user did next. The kernel frees the RST
    /// as a drop (TCP_RESET on the kernels that give reasons): not the packet's story.
    ResetReceived {
        socket: Option<SocketView>,
        connect: Option<Connect>,
        after: AfterReset,
    },
    /// Dropped (the reason, the answers sent are fields); `no_socket`: no socket wanted it, for
    /// the packet's destination `dst`.
    Dropped {
        no_socket: bool,
        dst: Option<SocketAddr>,
        connect: Option<Connect>,
    },
    /// No drop seen, only the RST sent in answer.
    ResetSent,
    /// A pure ACK (no data, no SYN, FIN or RST) of which nothing was seen after device receive,
    /// though the drop and consume hooks were attached and no event was lost: the kernel freed
    /// it where no tracepoint is (`__kfree_skb`: the established socket's fast path, an
    /// orphaned socket's ACK of its FIN). Inferred by elimination.
    AckFreedUnseen,
    /// Nothing observed after device receive.
    NothingObserved,
    /// Read back from JSON: the sentence, without the data it was made from.
    Logged(String),
}
