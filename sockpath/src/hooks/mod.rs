//! The hook table: every eBPF program declared once, with the journey stage it serves, how it
//! attaches, the hooks its stage falls back to, whether it is optional, and the oldest kernel
//! that has what it needs. Everything else reads it: attaching (`kernel::probes`), the hook
//! each journey stage names ([`HookChoice`]), `sockpath probes` and the hook table in docs/journeys.md.
//!
//! This layer knows nothing of the running kernel and imports nothing above it.

mod choice;
mod kind;
mod markdown;
mod program;
mod table;

use serde::Serialize;

pub use choice::HookChoice;
pub use kind::HookKind;
pub use markdown::markdown;
pub use program::{syscall_tracepoint, Attach, Hook, Program, Reports};
#[cfg(test)]
pub use table::spec;
pub use table::TABLE;

/// The stages of a journey the hook table has rows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageId {
    DeviceReceive,
    Softirq,
    Route,
    IpReceive,
    LocalDeliver,
    Transport,
    Lookup,
    EstablishedReceive,
    SynAck,
    Queue,
    TcpState,
    Read,
    /// The packet whose data a read copied out: for the statistics only.
    Copied,
    Drop,
    Consumed,
    ResetSent,
    ResetReceived,
    IcmpSent,
    QueueFull,
    Destroyed,
    Syscalls,
}

#[cfg(test)]
impl StageId {
    pub const ALL: [StageId; 21] = [
        StageId::DeviceReceive,
        StageId::Softirq,
        StageId::Route,
        StageId::IpReceive,
        StageId::LocalDeliver,
        StageId::Transport,
        StageId::Lookup,
        StageId::EstablishedReceive,
        StageId::SynAck,
        StageId::Queue,
        StageId::TcpState,
        StageId::Read,
        StageId::Copied,
        StageId::Drop,
        StageId::Consumed,
        StageId::ResetSent,
        StageId::ResetReceived,
        StageId::IcmpSent,
        StageId::QueueFull,
        StageId::Destroyed,
        StageId::Syscalls,
    ];
}

/// Every program of the table, with its stage.
pub fn programs() -> impl Iterator<Item = (StageId, &'static Program)> {
    TABLE.iter().flat_map(|s| {
        s.hooks
            .iter()
            .flat_map(move |h| h.programs.iter().map(move |p| (s.stage, p)))
    })
}

#[cfg(test)]
mod tests;
