//! Which hook serves each journey stage on the running kernel, so a journey can say how each
//! of its stages was seen and name the program's attach point, as the table declares it.

use std::collections::HashMap;

use sockpath_ebpf::event::{Hop, LookupTable, QueueFullHook, SyscallKind};

use super::{syscall_tracepoint, Hook, HookKind, Reports, StageId, TABLE};

/// The hook chosen for each stage served here.
#[derive(Clone, Debug)]
pub struct HookChoice {
    chosen: HashMap<StageId, &'static Hook>,
}

impl Default for HookChoice {
    /// What a tracepoint-only kernel (the 6.18 this project builds on) gets: each stage's
    /// first tracepoint hook; stages without one are inferred.
    fn default() -> Self {
        Self::new(TABLE.iter().filter_map(|s| {
            s.hooks
                .iter()
                .find(|h| matches!(h.kind(), HookKind::TpBtf | HookKind::Tracepoint))
                .map(|h| (s.stage, h))
        }))
    }
}

impl HookChoice {
    /// From the hook each stage got at start-up (stages absent are inferred).
    pub fn new(chosen: impl IntoIterator<Item = (StageId, &'static Hook)>) -> Self {
        Self {
            chosen: chosen.into_iter().collect(),
        }
    }

    /// Whether a hook serves `stage` here.
    pub fn serves(&self, stage: StageId) -> bool {
        self.chosen.contains_key(&stage)
    }

    /// How `stage` is seen here (`Inferred` when no hook serves it).
    #[cfg(test)]
    pub fn kind(&self, stage: StageId) -> HookKind {
        self.chosen
            .get(&stage)
            .map(|h| h.kind())
            .unwrap_or(HookKind::Inferred)
    }

    /// `(kind, target)` of the program of `stage`'s chosen hook that reports `what`; an empty
    /// target when the stage is not served here (an inferred stage names no hook).
    fn find(&self, stage: StageId, what: Reports) -> (HookKind, &'static str) {
        match self.chosen.get(&stage).and_then(|h| h.program(what)) {
            Some(p) => (p.attach.kind(), p.attach.target()),
            None => (HookKind::Inferred, ""),
        }
    }

    /// The stage reporting `what`, by the table (whichever hook serves it).
    fn stage_of(what: Reports) -> Option<StageId> {
        TABLE
            .iter()
            .find(|s| s.hooks.iter().any(|h| h.program(what).is_some()))
            .map(|s| s.stage)
    }

    fn reported(&self, what: Reports) -> (HookKind, &'static str) {
        match Self::stage_of(what) {
            Some(stage) => self.find(stage, what),
            None => (HookKind::Inferred, ""),
        }
    }

    /// `(kind, target)` for a stage with one kind of observation.
    pub fn hook(&self, stage: StageId) -> (HookKind, &'static str) {
        self.find(stage, Reports::Stage)
    }

    /// The hook of a receive-path function the packet entered.
    pub fn hop(&self, hop: Hop) -> (HookKind, &'static str) {
        self.reported(Reports::Hop(hop))
    }

    /// The lookup function that searched `table` for an IPv`version` packet.
    pub fn lookup(&self, table: LookupTable, version: u8) -> (HookKind, &'static str) {
        let version = if version == 4 { 4 } else { 6 };
        self.reported(Reports::Lookup(table, version))
    }

    /// The tracepoint that saw a full receive queue.
    pub fn queue_full(&self, by: QueueFullHook) -> (HookKind, &'static str) {
        self.reported(Reports::QueueFull(by))
    }

    /// A RST accepted by a socket.
    pub fn reset_received(&self) -> (HookKind, &'static str) {
        self.find(StageId::ResetReceived, Reports::ResetReceived)
    }

    /// An error reported to a socket's user.
    pub fn error_report(&self) -> (HookKind, &'static str) {
        self.find(StageId::ResetReceived, Reports::ErrorReport)
    }

    /// The return of a followed system call: its own `sys_exit_*` tracepoint.
    pub fn syscall_exit(&self, call: SyscallKind) -> (HookKind, &'static str) {
        match self.find(StageId::Syscalls, Reports::Syscalls) {
            (HookKind::Inferred, _) => (HookKind::Inferred, ""),
            (kind, _) => (kind, syscall_tracepoint(call, true)),
        }
    }
}
