//! A stage of a journey: where the packet was, when, which hook saw it, and what it saw there.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use sockpath_ebpf::event::Hop;

use super::{read, HookKind, Lookup, Name, SocketView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Kernel function or tracepoint the stage is named after (netif_receive_skb, ip_rcv, ...),
    /// or a short description for composite stages ("socket lookup", "read").
    #[serde(deserialize_with = "read::name")]
    pub name: Name,
    pub hook: HookKind,
    /// The hook's attach point ("netif_receive_skb", "fib/fib_table_lookup"); empty if inferred.
    #[serde(default, deserialize_with = "read::name")]
    pub hook_target: Name,
    /// Nanoseconds since the first stage; absent for inferred stages (no time was measured).
    pub offset_ns: Option<u64>,
    /// Nanoseconds since the previous observed stage: this hop's latency.
    pub since_prev_ns: Option<u64>,
    /// What the stage saw. JSON holds it as its words, `detail` (`output::words` renders them,
    /// `Stage::detail()`); read back, the words are all that is left (`StageData::Logged`).
    #[serde(rename = "detail", default)]
    pub data: StageData,
}

impl Stage {
    pub fn observed(&self) -> bool {
        self.hook != HookKind::Inferred
    }
}

/// A process's system call on the socket: who made it, and through which call and fd when it
/// returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub comm: String,
    pub pid: u32,
    /// Known when the call returned.
    pub syscall: Option<&'static str>,
    pub fd: Option<i32>,
}

/// Which queue of a socket a packet was put on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// A listener's accept queue: a connection, for accept().
    Accept,
    /// A socket's receive queue: payload, for a reader.
    Receive,
}

/// A TCP state change. `time_wait`: the connection ended into TCP_CLOSE and lives on as a
/// time-wait socket (tcp_time_wait()).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub time_wait: bool,
    /// The connection ended into TCP_CLOSE on the ACK of its FIN, its owner having closed it:
    /// a time-wait socket in the FIN_WAIT2 substate continues it (tcp_time_wait(sk,
    /// TCP_FIN_WAIT2, ...)).
    pub fin_wait2: bool,
}

/// Why the kernel freed a packet without dropping it, as far as the journey tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumedWhy {
    /// A segment without payload, SYN, FIN or RST: its acknowledgment was processed.
    PureAck,
    /// A SYN the listener answered (the request socket holds what it needs).
    SynAnswered,
    /// A segment or datagram whose payload a reader took.
    Read,
    /// A segment without payload (a FIN, say) the established socket processed.
    Processed,
}

/// Where the input route lookup sent the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteResult {
    Device(String),
    /// No route: the lookup's error.
    NoRoute {
        err: i32,
    },
}

/// What a stage saw, by kind of stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageData {
    /// netif_receive_skb: the device, and the frame's length on the wire.
    Device {
        ifname: String,
        ifindex: u32,
        wire_len: u32,
    },
    /// fib_table_lookup: the input route lookup, its table and result.
    Route {
        src: IpAddr,
        dst: IpAddr,
        table: u32,
        result: RouteResult,
    },
    /// A receive-path function the packet entered. `ip_ns`: at local delivery, the time spent
    /// in IP since the IP receive stage.
    Hop { hop: Hop, ip_ns: Option<u64> },
    /// A socket lookup: its result, observed or implied by the later stages.
    Lookup(Lookup),
    /// tcp_rcv_established: TCP processed the segment on this established socket.
    EstablishedReceive { socket: SocketView },
    /// A listener answered a SYN with a SYN-ACK, from a request socket with these ends.
    SynAck {
        listener: SocketView,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// inet_sock_set_state: the socket changed TCP state.
    StateChange {
        socket: SocketView,
        change: Transition,
    },
    /// sk_data_ready: put on one of the socket's queues, its waiter woken.
    Queued { socket: SocketView, queue: Queue },
    /// tcp_receive_reset: an RST accepted, the connection reset.
    ResetReceived,
    /// inet_sk_error_report: the error (errno name) reported to the socket's user.
    ErrorReported { errno: String },
    /// tcp_send_reset: an RST sent in answer, by a socket or by none; the kernel's reason, when
    /// it gives one.
    ResetSent {
        by_socket: bool,
        reason: Option<String>,
    },
    /// icmp_send: an ICMP error sent in answer ("ICMP port unreachable").
    IcmpSent { icmp: String },
    /// kfree_skb: dropped, with the kernel's reason, where (the symbol of the location).
    Dropped { reason: String, location: String },
    /// A TCP segment with these flags sent in answer by no full socket: by the time-wait
    /// socket the packet reached (its substate), or by TCP's control socket.
    Answered {
        flags: Vec<&'static str>,
        time_wait: Option<&'static str>,
    },
    /// A SYN-ACK carrying a SYN cookie sent in answer, from no socket (no request socket kept).
    SynCookieSent,
    /// consume_skb: freed once the kernel was done with it, where (the symbol of the location;
    /// None on kernels whose tracepoint does not say) and, where it can be told, why.
    Consumed {
        location: Option<String>,
        why: Option<ConsumedWhy>,
    },
    /// The socket could not queue it (the hook's return code).
    QueueFull { rc: i32 },
    /// Payload bytes of this packet taken by a reader.
    Read { bytes: u64, reader: Caller },
    /// The reader saw end of file (read() = 0) after this FIN.
    EndOfFile { reader: Caller },
    /// The reader's read failed with this error (errno name), which this RST set.
    ReadFailed { reader: Caller, errno: String },
    /// tcp_destroy_sock: the socket this RST reset was closed by this process, no read after
    /// the reset.
    ClosedAfterReset { comm: String, pid: u32 },
    /// accept() or accept4() returned the connection this packet completed.
    Accepted { caller: Caller },
    /// The connect() this packet completed or refused returned `ret`.
    ConnectReturned { caller: Caller, ret: i64 },
    /// Not observed: the IP receive the packet must have passed. `dropped`: the reason, when it
    /// went no further.
    InferredIp { dropped: Option<String> },
    /// Not observed: the transport's receive function the packet must have passed.
    InferredTransport,
    /// Not observed: IP receive found the connected socket (early demux) and took the route
    /// cached on it; no FIB lookup (the route hook saw none).
    EarlyDemux,
    /// Read back from JSON: the words, without the data they were made from.
    Logged(String),
}

impl Default for StageData {
    fn default() -> Self {
        StageData::Logged(String::new())
    }
}
