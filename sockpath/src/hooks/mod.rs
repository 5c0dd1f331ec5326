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
pub enum Stage {
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
impl Stage {
    pub const ALL: [Stage; 21] = [
        Stage::DeviceReceive,
        Stage::Softirq,
        Stage::Route,
        Stage::IpReceive,
        Stage::LocalDeliver,
        Stage::Transport,
        Stage::Lookup,
        Stage::EstablishedReceive,
        Stage::SynAck,
        Stage::Queue,
        Stage::TcpState,
        Stage::Read,
        Stage::Copied,
        Stage::Drop,
        Stage::Consumed,
        Stage::ResetSent,
        Stage::ResetReceived,
        Stage::IcmpSent,
        Stage::QueueFull,
        Stage::Destroyed,
        Stage::Syscalls,
    ];
}

/// Every program of the table, with its stage.
#[cfg(test)]
pub fn programs() -> impl Iterator<Item = (Stage, &'static Program)> {
    TABLE.iter().flat_map(|s| {
        s.hooks
            .iter()
            .flat_map(move |h| h.programs.iter().map(move |p| (s.stage, p)))
    })
}

#[cfg(test)]
mod tests;
