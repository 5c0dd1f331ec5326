//! The output's other objects: a socket system call, a note, the start and the summary.

use serde::{Deserialize, Serialize};

use super::{SocketView, StateChange, Timestamp};

/// A socket system call, as strace would print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub ts_ns: u64,
    pub ts: Timestamp,
    pub kind: String,
    pub text: String,
}

/// What sockpath says when every hook is attached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartInfo {
    pub filter: String,
    pub kernel: String,
    /// Milliseconds from start to every probe attached.
    pub attach_ms: f64,
    /// One line per journey stage: the hook serving it on this kernel.
    pub hooks: Vec<String>,
}

/// Totals printed at exit. Read back, a count left out is 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
    /// `watch --sample N`: N, one in N matched packets followed in full. Absent without
    /// sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_one_in: Option<u32>,
    /// With `sampled_one_in`: what was followed, and what the kernel counted of every matched
    /// packet, followed or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled: Option<Sampled>,
}

/// What a sampled session (`watch --sample N`) followed, told and counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampled {
    /// Journeys followed in full (one in N of the matched packets).
    pub followed: u64,
    /// Journeys of packets not followed, told from their end on (a drop, a reset or an ICMP
    /// error sent, a full queue).
    pub told_at_end: u64,
    /// What the kernel's statistics counted of every matched packet, followed or not,
    /// summed over the watched ports: exact, nothing of it crossed the ring buffer.
    pub counted: crate::counts::Counted,
}
