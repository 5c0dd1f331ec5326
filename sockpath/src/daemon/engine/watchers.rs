//! Each watcher's pipeline: started with its own filter and hold time over the programs already
//! attached, finished with its summary when it stops.

use std::sync::Arc;

use super::{live::Counters, Engine, MAX_WATCHERS};
use crate::{
    api::WatchRequest,
    daemon::{access::Peer, owners::SharedOwners, queue::ClientQueue, sink::QueueSink, union},
    filter::WatchFilter,
    journey::{
        self,
        clock::{monotonic_ns, Clock},
    },
    live::BATCH,
    output::StartInfo,
    pipeline::Pipeline,
};

/// Records read from the ring for a watcher that stops: what a burst leaves there (16 batches,
/// some 160 ms of the heaviest load measured).
const FINAL_DRAIN: usize = 16 * BATCH;
pub(super) struct Watcher {
    pub(super) peer: Peer,
    pub(super) filter: WatchFilter,
    pub(super) pipeline: Pipeline,
    pub(super) queue: Arc<ClientQueue>,
    /// The kernel's counters when it started.
    pub(super) base: Counters,
}

impl Engine {
    pub(super) fn watch(
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

    /// What the ring holds now, into every pipeline (before a watcher finishes). Bounded:
    /// under a flood the ring refills as fast as it is read, and the other watchers wait.
    pub(super) fn drain_all(&mut self) {
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

    /// Finishes watcher `id`: what the kernel wrote so far is read, its held journeys are
    /// finished, and its summary ends its queue.
    pub(super) fn stop(&mut self, id: u64) {
        if !self.watchers.contains_key(&id) {
            return;
        }
        self.drain_all();
        if let Some(w) = self.watchers.remove(&id) {
            self.finish(id, w);
        }
        self.narrow();
    }

    pub(super) fn finish(&mut self, id: u64, mut w: Watcher) {
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
}
