//! What sockpath reports: journeys, syscalls, notes and the summary. These are the JSON Lines
//! objects (`--json`) and what the text output formats.

use std::{borrow::Cow, sync::Arc};

use serde::Serialize;

use crate::packet::Headers;

/// Wall-clock nanoseconds since the Unix epoch, written as RFC 3339 UTC text in JSON (formatted
/// only when written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::clock::rfc3339(self.0))
    }
}

/// How a stage was known (the hook table's kinds).
pub use crate::hooks::HookKind;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Kernel function or tracepoint the stage is named after (netif_receive_skb, ip_rcv, ...),
    /// or a short description for composite stages ("socket lookup", "read").
    pub name: &'static str,
    pub hook: HookKind,
    /// The hook's attach point ("netif_receive_skb", "fib/fib_table_lookup"); empty if inferred.
    pub hook_target: &'static str,
    /// Nanoseconds since the first stage; absent for inferred stages (no time was measured).
    pub offset_ns: Option<u64>,
    /// Nanoseconds since the previous observed stage: this hop's latency.
    pub since_prev_ns: Option<u64>,
    /// Fixed text for most inferred and some observed stages: not copied for every packet.
    pub detail: Cow<'static, str>,
}

impl Stage {
    pub fn observed(&self) -> bool {
        self.hook != HookKind::Inferred
    }
}

/// A process's handle on a socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    /// Shared, like the socket's endpoints: every view of the socket names its owner.
    pub comm: Arc<str>,
    pub fd: i32,
}

/// A kernel address, written in hex (`0xffff88810a3c2a00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SocketView {
    pub proto: &'static str,
    /// "127.0.0.1:4000", "[::1]:4000". Shared with the socket table: a journey names its socket
    /// several times, and a copy of the text each time was a good part of the allocations.
    pub local: Arc<str>,
    pub remote: Arc<str>,
    /// TCP state name (LISTEN, ESTABLISHED, ...); for UDP "UNCONNECTED" or "CONNECTED".
    pub state: &'static str,
    /// Kernel address of the struct sock, hex.
    pub sk: Hex,
    /// Socket inode (socket:[N] in /proc/PID/fd); 0 when it has no file.
    pub ino: u64,
    pub netns: u32,
    /// Who holds it, if known: the process and fd.
    pub owner: Option<Owner>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    /// Nothing after device receive was observed.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// Drop reason (skb_drop_reason), reset reason, or socket error, as the kernel names it.
    pub reason: Option<String>,
    /// The sentence the text output shows.
    pub text: String,
    /// Process that read or accepted it.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub syscall: Option<&'static str>,
    pub fd: Option<i32>,
    /// Payload bytes of this packet read by the process.
    pub bytes: Option<u64>,
    /// A RST was sent in answer.
    pub reset_sent: bool,
    /// An ICMP error was sent in answer ("port unreachable").
    pub icmp_sent: Option<String>,
}

impl Outcome {
    pub fn new(kind: OutcomeKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            reason: None,
            text: text.into(),
            pid: None,
            comm: None,
            syscall: None,
            fd: None,
            bytes: None,
            reset_sent: false,
            icmp_sent: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateChange {
    pub from: String,
    pub to: String,
    pub socket: String,
}

/// One received packet and its trip through the kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Journey {
    /// 1, 2, 3... in the order journeys started.
    pub id: u64,
    /// The kernel's id for it (CPU and sequence).
    pub kernel_id: u64,
    /// Wall-clock time of device receive, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The same, RFC 3339 UTC.
    pub ts: Timestamp,
    pub cpu: u16,
    pub iface: String,
    pub ifindex: u32,
    pub netns: u32,
    /// Frame length on the wire (link-layer header included).
    pub wire_len: u32,
    #[serde(flatten)]
    pub headers: Option<Headers>,
    pub stages: Vec<Stage>,
    /// The socket the packet was delivered to.
    pub socket: Option<SocketView>,
    pub state_changes: Vec<StateChange>,
    pub outcome: Outcome,
    /// Every stage this kernel can observe was observed, and no event was lost meanwhile.
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// The packet's bytes as the kernel saw them at device receive, from the link-layer header
    /// on, up to the snap length (for pcapng export; not in JSON).
    #[serde(skip)]
    pub frame: Vec<u8>,
    /// Bytes of link-layer header at the start of `frame` (14 for Ethernet, 0 for none).
    #[serde(skip)]
    pub mac_len: u16,
}

/// A socket system call, as strace would print it.
#[derive(Clone, Debug, Serialize)]
pub struct SyscallRecord {
    /// Wall-clock time of entry.
    pub ts_ns: u64,
    pub ts: Timestamp,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub syscall: String,
    pub fd: Option<i32>,
    pub ret: i64,
    /// errno name when ret < 0 (ECONNREFUSED, ...).
    pub errno: Option<String>,
    /// strace-style line: `connect(3, {sa_family=AF_INET, ...}, 16) = 0`.
    pub text: String,
    pub socket: Option<SocketView>,
    /// State changes the call caused (close(): ESTABLISHED -> FIN_WAIT1).
    pub state_changes: Vec<StateChange>,
}

/// A standalone event worth a line: a state change no packet or syscall explains, lost events.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub ts_ns: u64,
    pub ts: Timestamp,
    pub kind: String,
    pub text: String,
}

/// Totals printed at exit.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Packets the device-receive hook saw (all, before filtering).
    pub packets_seen: u64,
    /// Packets that matched the filter.
    pub packets_matched: u64,
    pub journeys: u64,
    pub complete: u64,
    pub incomplete: u64,
    pub dropped: u64,
    pub resets_sent: u64,
    pub syscalls: u64,
    /// Events the kernel could not put in the ring buffer.
    pub events_lost: u64,
    /// Packet headers the kernel could not read.
    pub read_errors: u64,
    /// Journeys given up on while still waiting (memory bound), counted not kept.
    pub evicted: u64,
    pub decode_errors: u64,
}

/// Everything that goes to the output, in time order.
#[derive(Clone, Debug)]
pub enum Item {
    Journey(Box<Journey>),
    Syscall(Box<SyscallRecord>),
    Note(Note),
}

impl Item {
    pub fn ts_ns(&self) -> u64 {
        match self {
            Item::Journey(j) => j.ts_ns,
            Item::Syscall(s) => s.ts_ns,
            Item::Note(n) => n.ts_ns,
        }
    }
}
