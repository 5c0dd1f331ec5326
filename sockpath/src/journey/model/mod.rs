//! What sockpath reports, as data: journeys (their stages and outcome), syscalls, notes, the
//! start and the summary.
//!
//! Stages and outcomes carry what was observed (sockets, reasons, processes, times), not
//! sentences: their words (a stage's `detail`, an outcome's `text`) are rendered from the data
//! by `output::words`, for the text output, the JSON and the pcapng comments alike. The JSON
//! Lines objects (`--json`) are this model serialized, and `read` takes them back into it (a
//! journey read back keeps its words, not the data they were made from).
//!
//! A lower layer: it knows the packet headers, the hook kinds and the clock's formats, nothing
//! of the assembly (`journey::build`, the assembler) or the outputs.

mod lookup;
mod outcome;
pub mod read;
mod records;
mod socket;
mod stage;

use serde::{Deserialize, Serialize};

pub use self::{
    lookup::{ListenerWhy, Lookup},
    outcome::{
        AfterReset, Connect, Outcome, OutcomeData, OutcomeKind, Retransmission, TimeWaitAnswer,
    },
    records::{Note, Sampled, StartInfo, Summary, SyscallRecord},
    socket::{Hex, Owner, SocketView},
    stage::{Caller, ConsumedWhy, Queue, RouteResult, Stage, StageData, Transition},
};
/// How a stage was known (the hook table's kinds).
pub use crate::hooks::HookKind;
use crate::packet::Headers;

/// A name from a small vocabulary (stage, hook, state, protocol): free to copy, for every packet.
/// Read back from JSON, each distinct name is kept once (`read`). An alias, not `&'static str`
/// in the fields: serde's derive would borrow a `&str` field from the input.
pub type Name = &'static str;

/// Wall-clock nanoseconds since the Unix epoch, written as RFC 3339 UTC text in JSON (formatted
/// only when written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamp(pub u64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::clock::rfc3339(self.0))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub from: String,
    pub to: String,
    pub socket: String,
}

/// One received packet and its trip through the kernel.
///
/// Read back, only what identifies it and says what became of it is required (`id`, `ts_ns`,
/// `outcome`, `complete`): a log written by hand, or by another version, may leave out the rest,
/// which is then empty or zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journey {
    /// 1, 2, 3... in the order journeys started.
    pub id: u64,
    /// The kernel's id for it (CPU and sequence).
    #[serde(default)]
    pub kernel_id: u64,
    /// Wall-clock time of device receive, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The same, RFC 3339 UTC.
    #[serde(default)]
    pub ts: Timestamp,
    #[serde(default)]
    pub cpu: u16,
    #[serde(default)]
    pub iface: String,
    #[serde(default)]
    pub ifindex: u32,
    #[serde(default)]
    pub netns: u32,
    /// Frame length on the wire (link-layer header included).
    #[serde(default)]
    pub wire_len: u32,
    /// Absent when they could not be parsed (and, read back, when a field is missing).
    #[serde(flatten)]
    pub headers: Option<Headers>,
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// The socket the packet was delivered to.
    pub socket: Option<SocketView>,
    #[serde(default)]
    pub state_changes: Vec<StateChange>,
    pub outcome: Outcome,
    /// Every stage this kernel can observe was observed, and no event was lost meanwhile.
    pub complete: bool,
    pub incomplete_reason: Option<String>,
    /// `watch --sample N`: N, one in N matched packets followed in full. Absent without
    /// sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_one_in: Option<u32>,
    /// Not among the packets followed (`sampled_one_in`): told from its end (a drop, a reset or
    /// an ICMP error sent, a full queue) on. Its device receive was read again at that end;
    /// nothing between the two was observed, and none of it is inferred.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sampled_out: bool,
    /// The packet's bytes as the kernel saw them at device receive, from the link-layer header
    /// on, up to the snap length (for pcapng export; not in JSON).
    #[serde(skip)]
    pub frame: Vec<u8>,
    /// Bytes of link-layer header at the start of `frame` (14 for Ethernet, 0 for none).
    #[serde(skip)]
    pub mac_len: u16,
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
