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

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sockpath_ebpf::config::counter;
use tokio::sync::{mpsc, oneshot};

use super::{
    access::Peer,
    api::{typed_line, WatchRequest},
    owners::{ProcCache, SharedOwners},
    queue::ClientQueue,
    sink::QueueSink,
    union,
};
use crate::{
    filter::WatchFilter,
    hooks::HookChoice,
    journey::{
        self,
        clock::{monotonic_ns, Clock},
    },
    kernel::{self, facts::KernelFacts, names::KernelNames, probes, Kernel},
    metrics::Snapshot,
    output::StartInfo,
    pipeline::Pipeline,
    watch::{release_free_memory, BATCH, DRAIN, TICK},
};

/// Records read from the ring for a watcher that stops: what a burst leaves there (16 batches,
/// some 160 ms of the heaviest load measured).
const FINAL_DRAIN: usize = 16 * BATCH;

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
}

/// The daemon's settings for the kernel side.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub ring_kib: u32,
    pub snaplen: u32,
    /// Watched for the metrics whoever watches (None: no metrics ports).
    pub metrics: Option<WatchFilter>,
}

/// The kernel's counters the summaries and the metrics show.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    seen: u64,
    matched: u64,
    read_errors: u64,
    lost: u64,
}

impl Counters {
    fn read(k: &Kernel) -> Self {
        Self {
            seen: k.counter(counter::PACKETS_SEEN),
            matched: k.counter(counter::PACKETS_MATCHED),
            read_errors: k.counter(counter::READ_ERRORS),
            lost: k.lost(),
        }
    }

    fn plus(self, o: Self) -> Self {
        Self {
            seen: self.seen + o.seen,
            matched: self.matched + o.matched,
            read_errors: self.read_errors + o.read_errors,
            lost: self.lost + o.lost,
        }
    }
}

/// The programs while attached.
struct Live {
    kernel: Kernel,
    ring: RingBuf<MapData>,
    names: KernelNames,
    hooks: HookChoice,
    /// One line per stage, for each watcher's start line.
    described: Vec<String>,
    release: String,
    /// Milliseconds the attachment took.
    attach_ms: f64,
}

struct Watcher {
    peer: Peer,
    filter: WatchFilter,
    pipeline: Pipeline,
    queue: Arc<ClientQueue>,
    /// The kernel's counters when it started.
    base: Counters,
}

pub struct Engine {
    cfg: EngineConfig,
    live: Option<Live>,
    watchers: BTreeMap<u64, Watcher>,
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
                let _ = reply.send(Err(
                    "this daemon keeps no in-kernel statistics (see sockpath daemon --help)".into(),
                ));
            }
        }
    }

    fn attach(&mut self) -> anyhow::Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let t = Instant::now();
        kernel::check_privileges()?;
        kernel::raise_memlock();
        let facts = KernelFacts::read()?;
        kernel::ensure_tracefs()?;
        let filters = self.filters();
        let mut kernel = union::load(&facts, &filters, self.cfg.snaplen, self.cfg.ring_kib << 10)?;
        let ring = kernel.ring()?;
        let names = facts.names.clone();
        drop(facts);
        // The BTF and the symbol set parsed at attach (tens of MiB) go back to the system.
        release_free_memory();
        let attach_ms = t.elapsed().as_secs_f64() * 1e3;
        tracing::info!("programs attached in {attach_ms:.0} ms");
        self.live = Some(Live {
            hooks: probes::choice(&kernel.stages),
            described: probes::describe(&kernel.stages),
            release: kernel::kernel_release(),
            kernel,
            ring,
            names,
            attach_ms,
        });
        Ok(())
    }

    fn detach(&mut self) {
        if let Some(live) = self.live.take() {
            self.carried = self.carried.plus(Counters::read(&live.kernel));
            drop(live);
            tracing::info!("programs detached");
        }
    }

    /// Every filter the kernel must watch for now.
    fn filters(&self) -> Vec<&WatchFilter> {
        self.watchers
            .values()
            .map(|w| &w.filter)
            .chain(self.cfg.metrics.iter())
            .collect()
    }

    /// The kernel's set after a watcher left: narrower, or nothing attached at all.
    fn narrow(&mut self) {
        if self.watchers.is_empty() && self.cfg.metrics.is_none() {
            self.detach();
            return;
        }
        self.set_union();
    }

    fn set_union(&mut self) {
        let filters: Vec<WatchFilter> = self.filters().into_iter().cloned().collect();
        if let Some(live) = &mut self.live {
            if let Err(e) = union::set(&mut live.kernel, &filters.iter().collect::<Vec<_>>()) {
                tracing::warn!("could not rewrite the kernel's filter: {e:#}");
            }
        }
    }

    fn watch(
        &mut self,
        id: u64,
        peer: Peer,
        request: &WatchRequest,
        queue: Arc<ClientQueue>,
    ) -> Result<(), String> {
        let filter = union::filter_of(&request.filter, self.cfg.snaplen)?;
        if self.watchers.len() >= MAX_WATCHERS {
            return Err(format!(
                "this daemon serves {MAX_WATCHERS} watchers at once, and has them"
            ));
        }
        let fresh = self.live.is_none();
        self.attach().map_err(|e| format!("{e:#}"))?;
        let Some(live) = self.live.as_mut() else {
            return Err("the programs are not attached".into());
        };
        let cfg = journey::Config {
            filter: filter.clone(),
            hold_ns: request.hold_ms.saturating_mul(1_000_000),
            hooks: live.hooks.clone(),
            ..journey::Config::default()
        };
        let sinks: Vec<Box<dyn crate::output::Sink>> =
            vec![Box::new(QueueSink::new(queue.clone(), request.frames))];
        let mut pipeline = Pipeline::new(cfg, live.names.clone(), Clock::sample, sinks);
        // Programs attached for this watcher counted for it from the start, as a session of
        // its own would; joining programs already running, it counts from now.
        let base = if fresh {
            Counters::default()
        } else {
            Counters::read(&live.kernel)
        };
        pipeline.lost_before(base.lost);
        let info = StartInfo {
            filter: filter.describe(),
            kernel: live.release.clone(),
            attach_ms: live.attach_ms,
            hooks: live.described.clone(),
        };
        self.watchers.insert(
            id,
            Watcher {
                peer,
                filter,
                pipeline,
                queue,
                base,
            },
        );
        self.set_union();
        let (Some(live), Some(w)) = (self.live.as_mut(), self.watchers.get_mut(&id)) else {
            return Err("the programs are not attached".into());
        };
        w.pipeline.scan_owners(&mut SharedOwners {
            cache: &mut self.procs,
            filter: &w.filter,
            kernel: &mut live.kernel,
        });
        if let Err(e) = w.pipeline.start(&info, monotonic_ns()) {
            return Err(format!("starting the watch: {e}"));
        }
        tracing::info!("watcher {id} ({peer}) watches {}", info.filter);
        Ok(())
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

    /// What the ring holds now, into every pipeline (before a watcher finishes). Bounded:
    /// under a flood the ring refills as fast as it is read, and the other watchers wait.
    fn drain_all(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        for _ in 0..FINAL_DRAIN {
            let Some(rec) = live.ring.next() else {
                return;
            };
            for w in self.watchers.values_mut() {
                w.pipeline.ingest(&rec);
            }
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

    /// Finishes watcher `id`: what the kernel wrote so far is read, its held journeys are
    /// finished, and its summary ends its queue.
    fn stop(&mut self, id: u64) {
        if !self.watchers.contains_key(&id) {
            return;
        }
        self.drain_all();
        if let Some(w) = self.watchers.remove(&id) {
            self.finish(id, w);
        }
        self.narrow();
    }

    fn finish(&mut self, id: u64, mut w: Watcher) {
        let now_counters = self
            .live
            .as_ref()
            .map(|l| Counters::read(&l.kernel))
            .unwrap_or(w.base);
        let now = monotonic_ns();
        if let Ok(mut summary) = w.pipeline.finish(now, now_counters.lost) {
            // Seen, read errors and losses are the kernel's, for every watcher alike; matched
            // is what this watcher's filter selected (the kernel's count is the union's).
            summary.packets_seen = now_counters.seen.saturating_sub(w.base.seen);
            summary.read_errors = now_counters.read_errors.saturating_sub(w.base.read_errors);
            summary.events_lost = now_counters.lost.saturating_sub(w.base.lost);
            let _ = w.pipeline.close(&summary);
        }
        w.queue.close();
        tracing::info!(
            "watcher {id} ({}) stopped; {} items it missed",
            w.peer,
            w.queue.missed()
        );
    }

    fn probes(&mut self) -> anyhow::Result<Vec<u8>> {
        let temporary = self.live.is_none();
        self.attach().context("attaching to answer probes")?;
        let Some(live) = self.live.as_ref() else {
            anyhow::bail!("the programs are not attached");
        };
        let line = typed_line(
            "probes",
            &serde_json::json!({
                "kernel": live.release,
                "attach_ms": live.attach_ms,
                "stages": live.kernel.stages,
            }),
        );
        if temporary {
            self.narrow();
        }
        Ok(line)
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
            ports: Vec::new(),
        }
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
