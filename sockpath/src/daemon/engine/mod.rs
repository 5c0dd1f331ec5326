//! The daemon's kernel side: one set of programs, attached while anyone watches (or metrics
//! ports are configured) and detached when nobody does, one ring buffer drained on the live
//! session's timers, and one pipeline per watcher.
//!
//! Each watcher's pipeline is the one `sockpath watch` runs, with the watcher's own filter and
//! hold time, fed every record of the ring: the kernel's set is the union of every watcher's
//! filter (and the metrics ports), and each assembler keeps exactly what its own filter selects
//! (`journey`), so a watcher gets the journeys, syscalls and notes a standalone run with its
//! filter would print. The engine runs on the daemon's main thread and never waits for a
//! client: items go to each watcher's bounded queue, which drops and counts what does not fit.
//!
//! `live` attaches and detaches the programs and keeps the kernel's set; `watchers` starts and
//! finishes each watcher's pipeline; `counters` serves `sockpath stats` clients.

mod counters;
mod live;
mod watchers;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot};

use self::{
    counters::Counter,
    live::{Counters, Live},
    watchers::Watcher,
};
use super::{access::Peer, owners::ProcCache, owners::SharedOwners, queue::ClientQueue};
use crate::{
    api::{typed_line, CountRequest, WatchRequest},
    filter::WatchFilter,
    journey::clock::monotonic_ns,
    live::{BATCH, DRAIN, TICK},
    metrics::Snapshot,
};

/// Watchers served at once; one more is refused.
pub const MAX_WATCHERS: usize = 256;

/// What the connections ask of the engine.
pub enum Control {
    /// (programs attached, watchers).
    Status {
        reply: oneshot::Sender<(bool, usize)>,
    },
    /// A new watcher: its start line goes to `queue` before the reply.
    Watch {
        id: u64,
        peer: Peer,
        request: WatchRequest,
        queue: Arc<ClientQueue>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The watcher asked to stop: its held journeys are finished and its summary sent.
    Stop { id: u64 },
    /// The watcher's connection is gone: dropped at once.
    Gone { id: u64 },
    /// `probes --json`'s object, as a line.
    Probes {
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// The in-kernel statistics, as a line.
    Stats {
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// A `sockpath stats` client: its ports are counted from now; the reply is its
    /// `counting` line.
    Count {
        id: u64,
        peer: Peer,
        request: CountRequest,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// The counting client's reading, as a line.
    Reading {
        id: u64,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// The counting client's connection is gone.
    Uncount { id: u64 },
}

/// The daemon's settings for the kernel side.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub ring_kib: u32,
    pub snaplen: u32,
    /// Watched for the metrics whoever watches (None: no metrics ports).
    pub metrics: Option<WatchFilter>,
}

pub struct Engine {
    cfg: EngineConfig,
    live: Option<Live>,
    watchers: BTreeMap<u64, Watcher>,
    counters: BTreeMap<u64, Counter>,
    /// What the kernel's counters held in earlier attachments (for the metrics).
    carried: Counters,
    procs: ProcCache,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            live: None,
            watchers: BTreeMap::new(),
            counters: BTreeMap::new(),
            carried: Counters::default(),
            procs: ProcCache::default(),
        }
    }

    /// Attaches now if the metrics need the programs whoever watches.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.cfg.metrics.is_some() {
            self.attach()?;
        }
        Ok(())
    }

    /// Serves until SIGTERM or SIGINT (or every sender is gone), then finishes every watcher
    /// (each gets its summary) and detaches.
    pub async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut snapshots: mpsc::UnboundedReceiver<oneshot::Sender<Snapshot>>,
    ) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut drain = tokio::time::interval(DRAIN);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                msg = control.recv() => match msg {
                    Some(m) => self.control(m),
                    None => break,
                },
                Some(reply) = snapshots.recv() => {
                    let _ = reply.send(self.snapshot());
                }
                _ = drain.tick(), if self.live.is_some() => self.drain(),
                _ = tick.tick(), if self.live.is_some() => self.tick(),
            }
        }
        self.shutdown();
        Ok(())
    }

    fn control(&mut self, m: Control) {
        match m {
            Control::Status { reply } => {
                let _ = reply.send((self.live.is_some(), self.watchers.len()));
            }
            Control::Watch {
                id,
                peer,
                request,
                queue,
                reply,
            } => {
                let r = self.watch(id, peer, &request, queue);
                let _ = reply.send(r);
            }
            Control::Stop { id } => self.stop(id),
            Control::Gone { id } => {
                if let Some(w) = self.watchers.remove(&id) {
                    w.queue.close();
                    tracing::info!(
                        "watcher {id} ({}) gone; {} items it missed",
                        w.peer,
                        w.queue.missed()
                    );
                    self.narrow();
                }
            }
            Control::Probes { reply } => {
                let _ = reply.send(self.probes().map_err(|e| format!("{e:#}")));
            }
            Control::Stats { reply } => {
                let _ = reply.send(self.stats_line());
            }
            Control::Count {
                id,
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(self.count(id, peer, &request));
            }
            Control::Reading { id, reply } => {
                let _ = reply.send(self.reading(id));
            }
            Control::Uncount { id } => self.uncount(id),
        }
    }

    /// Reads the ring buffer: one bounded batch into every watcher's pipeline, as the live
    /// session does.
    fn drain(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let started = monotonic_ns();
        let mut emptied = false;
        for _ in 0..BATCH {
            match live.ring.next() {
                Some(rec) => {
                    for w in self.watchers.values_mut() {
                        w.pipeline.ingest(&rec);
                    }
                }
                None => {
                    emptied = true;
                    break;
                }
            }
        }
        for w in self.watchers.values_mut() {
            // A queue sink does not fail: a full queue drops and counts.
            let _ = w.pipeline.drain(emptied.then_some(started));
        }
    }

    fn tick(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let lost = live.kernel.lost();
        // Read after the counter: every loss it counts happened before this time.
        let now = monotonic_ns();
        for w in self.watchers.values_mut() {
            let mut owners = SharedOwners {
                cache: &mut self.procs,
                filter: &w.filter,
                kernel: &mut live.kernel,
            };
            let _ = w.pipeline.tick(now, lost, &mut owners);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let now = self
            .live
            .as_ref()
            .map(|l| Counters::read(&l.kernel))
            .unwrap_or_default();
        let total = self.carried.plus(now);
        Snapshot {
            attached: self.live.is_some(),
            watchers: self.watchers.len() as u64,
            packets_seen: total.seen,
            packets_matched: total.matched,
            events_lost: total.lost,
            read_errors: total.read_errors,
            ports: self.port_stats(),
        }
    }

    /// The `stats` request's answer: what the kernel counted since the daemon started, for
    /// every port it counts (the metrics ports and those of the watchers since), as `sockpath
    /// stats --json` writes its totals.
    fn stats_line(&self) -> Result<Vec<u8>, String> {
        let Some(stats) = self
            .live
            .as_ref()
            .and_then(|l| l.kernel.stats().map(|s| (l, s)))
        else {
            return Err(
                "nothing is counted now: the daemon has programs attached only while someone watches or counts (sockpath watch, sockpath stats) or for its metrics ports (--metrics-port)"
                    .into(),
            );
        };
        let (live, stats) = stats;
        let ports =
            crate::counts::view::ports(&stats.snapshot(), &|r| live.names.drop_reason(r as i32));
        Ok(typed_line(
            "stats",
            &serde_json::json!({
                "packets_matched": ports.iter().map(|p| p.matched).sum::<u64>(),
                "ports": ports,
            }),
        ))
    }

    /// The metrics ports' statistics, while the programs count them (the metrics keep the
    /// programs attached, so the kernel's counts run from the daemon's start).
    fn port_stats(&self) -> Vec<crate::metrics::PortStats> {
        let (Some(live), Some(metrics)) = (&self.live, &self.cfg.metrics) else {
            return Vec::new();
        };
        let Some(stats) = live.kernel.stats() else {
            return Vec::new();
        };
        crate::metrics::ports::from_totals(
            &stats.snapshot(),
            |p| metrics.ports.contains(p),
            |r| live.names.drop_reason(r as i32),
        )
    }

    fn shutdown(&mut self) {
        self.drain_all();
        let ids: Vec<u64> = self.watchers.keys().copied().collect();
        for id in ids {
            if let Some(w) = self.watchers.remove(&id) {
                self.finish(id, w);
            }
        }
        self.detach();
        // The metrics' own attachment, if any.
        drop(self.live.take());
    }
}

/// How long the daemon waits at exit for its watchers to be sent their summaries.
pub const FAREWELL: Duration = Duration::from_secs(3);
