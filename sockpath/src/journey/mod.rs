//! Journey assembly: raw events in, finished journeys and syscall records out.
//!
//! A journey starts with a packet at device receive. Events that name the packet (tcp_probe,
//! kfree_skb, ...) join it by id; events that name only a socket (sk_data_ready, state changes)
//! join the packet the CPU was processing in its NET_RX softirq, checked against the packet's
//! addresses and ports (and found by them when the kernel batched several packets). Reads join
//! by TCP sequence numbers (how far the reader consumed the stream) or, for UDP, by the datagram
//! copied to the reader. A journey is finished when it reached an end (read, accepted, dropped)
//! and nothing more came for a while, or when it waited too long.
//!
//! Where each part lives: `open` (the journeys in flight and their index), `dispatch` (which
//! journey each event joins), `attribute` (events that name no journey), `reads` (what each
//! socket holds for its reader, and which packets a read took), `connect` (connect() and the
//! packets that answered it), `loss` (lost events), `finish` (when a journey is due, and
//! building it), `obs` (what a journey gathers).

mod attribute;
mod build;
pub mod clock;
mod connect;
mod dispatch;
mod finish;
mod loss;
pub mod model;
pub mod names;
mod obs;
mod open;
mod reads;
pub mod sockets;
mod syns;
mod syscalls;

// The names the journey builder (`build`) reads from here.
use sockpath_ebpf::event::LookupTable;

use self::{
    clock::Clock,
    loss::LossWindows,
    model::{Item, Owner, Summary},
    open::Journeys,
    reads::Reads,
    sockets::SocketTable,
};
pub(crate) use self::{
    obs::{state_change, Obs, ReadObs},
    open::Open,
};
use crate::{filter::WatchFilter, hooks::HookChoice, kernel::names::KernelNames};

#[derive(Clone, Debug)]
pub struct Config {
    pub filter: WatchFilter,
    /// A journey is finished this long after its last event, once it needs nothing more. The
    /// time is the time up to which every event has been read (see `Assembler::tick`), so a
    /// reader that falls behind finishes nothing early; this only covers events of one packet
    /// taken on different CPUs and committed to the ring out of order.
    pub settle_ns: u64,
    /// A journey waiting for a read or an accept is finished this long after it started.
    pub hold_ns: u64,
    /// Journeys open at once; past this the oldest is finished as incomplete (memory bound).
    pub max_open: usize,
    /// Which hook serves each stage on this kernel.
    pub hooks: HookChoice,
    /// `watch --sample N`: the kernel follows one in N matched packets (None: all).
    pub sample_one_in: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            filter: WatchFilter::default(),
            settle_ns: 30_000_000,
            hold_ns: 2_000_000_000,
            max_open: 20_000,
            hooks: HookChoice::default(),
            sample_one_in: None,
        }
    }
}

pub struct Assembler {
    cfg: Config,
    names: KernelNames,
    clock: Clock,
    journeys: Journeys,
    pub(crate) sockets: SocketTable,
    reads: Reads,
    syscalls: syscalls::Syscalls,
    ready: Vec<Item>,
    losses: LossWindows,
    /// The time the last tick was given: journeys finished then were waited on up to it.
    ticked: u64,
    /// The latest kernel timestamp of the events read so far.
    newest: u64,
    summary: Summary,
    syns: syns::Syns,
}

impl Assembler {
    pub fn new(cfg: Config, names: KernelNames, clock: Clock) -> Self {
        Self {
            syscalls: syscalls::Syscalls::new(cfg.filter.clone()),
            cfg,
            names,
            clock,
            journeys: Journeys::default(),
            sockets: SocketTable::default(),
            reads: Reads::default(),
            ready: Vec::new(),
            losses: LossWindows::default(),
            ticked: 0,
            newest: 0,
            summary: Summary::default(),
            syns: syns::Syns::default(),
        }
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn summary_mut(&mut self) -> &mut Summary {
        &mut self.summary
    }

    pub fn set_proc_owners(&mut self, owners: std::collections::HashMap<u64, Owner>) {
        self.sockets.set_proc_owners(owners);
    }

    /// How much the assembler holds, for `RUST_LOG=debug`.
    pub fn debug_sizes(&self) -> String {
        let awaiting = self.journeys.values().filter(|o| o.awaiting).count();
        let (finished, order) = self.journeys.finished_len();
        format!(
            "open={} (waiting for a reader {awaiting}) finished={finished} order={order} {} ready={} socks={} undecided={} changes={} notes={}",
            self.journeys.len(),
            self.reads.debug_sizes(),
            self.ready.len(),
            self.sockets.len(),
            self.syscalls.undecided_len(),
            self.syscalls.changes_len(),
            self.syscalls.notes_len(),
        )
    }

    /// Sockets whose owner is unknown though they have a file: worth a /proc rescan.
    pub fn needs_owner_scan(&self) -> bool {
        self.journeys.values().any(|o| {
            o.obs.iter().any(|ob| match ob {
                Obs::TcpRcv { sock, .. } | Obs::DataReady { sock, .. } => {
                    self.sockets.owner_unknown(sock.sk)
                }
                Obs::SynAck { listener, .. } => self.sockets.owner_unknown(listener.sk),
                _ => false,
            })
        })
    }

    /// Earliest start of a journey still open (nothing older can still appear in the output).
    pub fn oldest_open(&self) -> Option<u64> {
        self.journeys.oldest().map(|(t0, _)| t0)
    }

    /// The items finished since the last call. A drain, not a new vector: the buffer is kept
    /// (a fresh one per batch grew through sizes that made glibc's allocator consolidate its
    /// free lists every time).
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, Item> {
        self.ready.drain(..)
    }

    /// The latest kernel timestamp of the events read so far: while the ring is not empty, the
    /// time up to which events are known.
    pub fn newest_event(&self) -> u64 {
        self.newest
    }
}

#[cfg(test)]
mod tests;
