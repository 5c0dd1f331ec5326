//! One pipeline from the kernel's records to the output: decode, assemble journeys, put them in
//! time order and write them to the sinks, with losses, the clock and the owners of sockets kept
//! up to date.
//!
//! The pipeline reads no ring buffer and runs no timer: whoever drives it does. The live session
//! (`watch`) drives it from the ring buffer on two timers, and the throughput benchmark from byte
//! fixtures, so the benchmark measures the code that ships. Kernel time (CLOCK_MONOTONIC, the
//! eBPF programs' clock) comes in as arguments.

mod timeline;

use std::{collections::HashMap, io, time::Instant};

use self::timeline::Timeline;
use crate::{
    decode,
    journey::{
        clock::Clock,
        model::{Item, Owner, Summary},
        Assembler, Config,
    },
    kernel::names::KernelNames,
    output::{Sink, StartInfo},
};

/// Items held for time ordering at most; past this the oldest go out at once.
const MAX_BUFFERED: usize = 20_000;
/// How often the offset between the kernel's clock and the wall clock is sampled again.
const CLOCK_RESAMPLE: std::time::Duration = std::time::Duration::from_secs(1);
/// Least time between two searches of /proc for the owners of sockets.
const OWNER_RESCAN: std::time::Duration = std::time::Duration::from_millis(250);

/// Where the owners of watched sockets are found: the live session reads /proc and has the
/// kernel follow the calls of the processes it found; a benchmark on byte fixtures finds none.
pub trait Owners {
    /// Socket inode -> the process that holds it, now.
    fn scan(&mut self) -> HashMap<u64, Owner>;
}

pub struct Pipeline {
    asm: Assembler,
    timeline: Timeline,
    sinks: Vec<Box<dyn Sink>>,
    settle_ns: u64,
    /// Samples the wall clock against the kernel's: `Clock::sample` live.
    sample_clock: fn() -> Clock,
    /// The kernel's cumulative lost-event counter at its last check.
    lost_total: u64,
    /// Every event the kernel took before this (monotonic) time has been read.
    known_until: u64,
    clock_sampled: Instant,
    owners_scanned: Instant,
    decode_warned: bool,
}

impl Pipeline {
    pub fn new(
        cfg: Config,
        names: KernelNames,
        sample_clock: fn() -> Clock,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Self {
        let settle_ns = cfg.settle_ns;
        Self {
            asm: Assembler::new(cfg, names, sample_clock()),
            timeline: Timeline::default(),
            sinks,
            settle_ns,
            sample_clock,
            lost_total: 0,
            known_until: 0,
            clock_sampled: Instant::now(),
            owners_scanned: Instant::now(),
            decode_warned: false,
        }
    }

    /// Takes the owners of the watched sockets from `owners` now.
    pub fn scan_owners(&mut self, owners: &mut dyn Owners) {
        self.asm.set_proc_owners(owners.scan());
    }

    /// Writes the output's heading, at monotonic time `now`, once every probe is attached.
    pub fn start(&mut self, info: &StartInfo, now: u64) -> io::Result<()> {
        for s in self.sinks.iter_mut() {
            s.start(info)?;
        }
        // Losses are placed in time between two checks of the counter: the first is now.
        self.asm.lost(0, now);
        self.clock_sampled = Instant::now();
        self.owners_scanned = Instant::now();
        self.known_until = now;
        Ok(())
    }

    /// Losses the kernel counted before now are not this pipeline's: `lost_total` is the
    /// kernel's cumulative lost-event counter now (a daemon's watcher joining programs that
    /// have been running; a session of its own starts from 0).
    pub fn lost_before(&mut self, lost_total: u64) {
        self.lost_total = lost_total;
    }

    /// One record from the kernel: decoded and handed to the assembler. A record that does not
    /// decode is counted in the summary; the first is also logged.
    pub fn ingest(&mut self, record: &[u8]) {
        match decode::decode(record) {
            Ok(ev) => self.asm.push(ev),
            Err(e) => {
                self.asm.summary_mut().decode_errors += 1;
                if !self.decode_warned {
                    tracing::warn!("malformed event from the kernel: {e}");
                    self.decode_warned = true;
                }
            }
        }
    }

    /// After a batch of records: `emptied_at` is the monotonic time at which the reading of a
    /// batch that found the ring empty began (every event the kernel took before it has been
    /// read), None when records were left in the ring (then the newest event read is the bound).
    pub fn drain(&mut self, emptied_at: Option<u64>) -> io::Result<()> {
        self.known_until = match emptied_at {
            Some(t) => t,
            None => self.known_until.max(self.asm.newest_event()),
        };
        // Journeys finished meanwhile (an overload finishes the oldest open one for each new
        // packet) go to the timeline now, which sends out what is over its bound: nothing piles
        // up between ticks.
        for item in self.asm.take_ready() {
            self.timeline.push(item);
        }
        for item in self.timeline.overflow(MAX_BUFFERED) {
            emit(&mut self.sinks, &item)?;
        }
        Ok(())
    }

    /// The periodic work: counts the events lost, finishes the journeys that are due, finds
    /// owners a journey lacks, and writes out, in time order, what nothing older can precede.
    /// `lost_total` is the kernel's cumulative lost-event counter and `now` the monotonic time
    /// read after it, so every loss it counts happened before `now`.
    pub fn tick(&mut self, now: u64, lost_total: u64, owners: &mut dyn Owners) -> io::Result<()> {
        self.count_lost(now, lost_total);
        if self.clock_sampled.elapsed() >= CLOCK_RESAMPLE {
            tracing::debug!(
                "{} timeline={} reading {} ms behind",
                self.asm.debug_sizes(),
                self.timeline.len(),
                now.saturating_sub(self.known_until) / 1_000_000
            );
            self.asm.set_clock((self.sample_clock)());
            self.clock_sampled = Instant::now();
        }
        self.asm.tick(self.known_until);
        if self.asm.needs_owner_scan() && self.owners_scanned.elapsed() >= OWNER_RESCAN {
            self.scan_owners(owners);
            self.owners_scanned = Instant::now();
        }
        for item in self.asm.take_ready() {
            self.timeline.push(item);
        }
        let watermark = self.watermark();
        for item in self.timeline.release(watermark) {
            emit(&mut self.sinks, &item)?;
        }
        for item in self.timeline.overflow(MAX_BUFFERED) {
            emit(&mut self.sinks, &item)?;
        }
        for s in self.sinks.iter_mut() {
            s.flush()?;
        }
        Ok(())
    }

    /// At the end, once every record is ingested: counts the last losses (`now` read after
    /// `lost_total`, as for `tick`), finishes every journey and writes everything out. Returns
    /// the summary so far, for the caller to complete and hand to `close`.
    pub fn finish(&mut self, now: u64, lost_total: u64) -> io::Result<Summary> {
        self.count_lost(now, lost_total);
        self.asm.finish();
        for item in self.asm.take_ready() {
            self.timeline.push(item);
        }
        for item in self.timeline.release(u64::MAX) {
            emit(&mut self.sinks, &item)?;
        }
        for s in self.sinks.iter_mut() {
            s.flush()?;
        }
        Ok(self.asm.summary().clone())
    }

    /// Writes the summary and ends the output.
    pub fn close(mut self, summary: &Summary) -> io::Result<()> {
        for s in self.sinks.iter_mut() {
            s.summary(summary)?;
        }
        Ok(())
    }

    fn count_lost(&mut self, now: u64, lost_total: u64) {
        self.asm
            .lost(lost_total.saturating_sub(self.lost_total), now);
        self.lost_total = lost_total;
    }

    /// Wall-clock time up to which items may leave the timeline: before the oldest journey
    /// still open, and a settling delay before the time up to which events have been read.
    fn watermark(&self) -> u64 {
        let clock = self.asm.clock();
        let horizon = clock.wall_ns(self.known_until.saturating_sub(self.settle_ns));
        self.asm
            .oldest_open()
            .map(|t| clock.wall_ns(t).saturating_sub(1).min(horizon))
            .unwrap_or(horizon)
    }
}

fn emit(sinks: &mut [Box<dyn Sink>], item: &Item) -> io::Result<()> {
    for s in sinks.iter_mut() {
        s.item(item)?;
    }
    Ok(())
}
