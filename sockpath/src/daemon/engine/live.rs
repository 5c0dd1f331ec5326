//! The programs while anyone watches: attached for the first watcher (or the metrics), the
//! kernel's set rewritten as watchers come and go, detached when nobody is left.

use std::time::Instant;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sockpath_ebpf::config::counter;

use super::Engine;
use crate::{
    api::typed_line,
    daemon::union,
    filter::WatchFilter,
    hooks::HookChoice,
    kernel::{self, names::KernelNames, probes, Kernel, Mode},
    memory::release_free_memory,
};

/// The kernel's counters the summaries and the metrics show.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub(super) seen: u64,
    pub(super) matched: u64,
    pub(super) read_errors: u64,
    pub(super) lost: u64,
}

impl Counters {
    pub(super) fn read(k: &Kernel) -> Self {
        Self {
            seen: k.counter(counter::PACKETS_SEEN),
            matched: k.counter(counter::PACKETS_MATCHED),
            read_errors: k.counter(counter::READ_ERRORS),
            lost: k.lost(),
        }
    }

    pub(super) fn plus(self, o: Self) -> Self {
        Self {
            seen: self.seen + o.seen,
            matched: self.matched + o.matched,
            read_errors: self.read_errors + o.read_errors,
            lost: self.lost + o.lost,
        }
    }
}

/// The programs while attached.
pub(super) struct Live {
    pub(super) kernel: Kernel,
    pub(super) ring: RingBuf<MapData>,
    pub(super) names: KernelNames,
    pub(super) hooks: HookChoice,
    /// One line per stage, for each watcher's start line.
    pub(super) described: Vec<String>,
    pub(super) release: String,
    /// Milliseconds the attachment took.
    pub(super) attach_ms: f64,
}

impl Engine {
    pub(super) fn attach(&mut self) -> anyhow::Result<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let t = Instant::now();
        let mut facts = kernel::prepare()?;
        let filters = self.filters();
        // Statistics are kept whoever attached the programs, so a `sockpath stats` client
        // (or the metrics) can join a watch already running without attaching again.
        let mode = Mode::BOTH;
        let mut kernel = union::load(
            &facts,
            &filters,
            self.cfg.snaplen,
            self.cfg.ring_kib << 10,
            mode,
        )?;
        let ring = kernel.ring()?;
        facts.load_symbols();
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

    pub(super) fn detach(&mut self) {
        if let Some(live) = self.live.take() {
            self.carried = self.carried.plus(Counters::read(&live.kernel));
            drop(live);
            tracing::info!("programs detached");
        }
    }

    /// Every filter the kernel must watch for now.
    pub(super) fn filters(&self) -> Vec<&WatchFilter> {
        self.watchers
            .values()
            .map(|w| &w.filter)
            .chain(self.counters.values().map(|c| &c.filter))
            .chain(self.cfg.metrics.iter())
            .collect()
    }

    /// The kernel's set after a watcher left: narrower, or nothing attached at all.
    pub(super) fn narrow(&mut self) {
        if self.watchers.is_empty() && self.counters.is_empty() && self.cfg.metrics.is_none() {
            self.detach();
            return;
        }
        self.set_union();
    }

    pub(super) fn set_union(&mut self) {
        let filters: Vec<WatchFilter> = self.filters().into_iter().cloned().collect();
        if let Some(live) = &mut self.live {
            if let Err(e) = union::set(&mut live.kernel, &filters.iter().collect::<Vec<_>>()) {
                tracing::warn!("could not rewrite the kernel's filter: {e:#}");
            }
        }
    }

    pub(super) fn probes(&mut self) -> anyhow::Result<Vec<u8>> {
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
}
