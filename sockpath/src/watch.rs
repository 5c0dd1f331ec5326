//! A watch session: attach, read events, assemble journeys, print them in time order, and on
//! stop (Ctrl-C, SIGTERM, --duration, or the demo finishing) detach and print the summary.

use std::{
    future::Future,
    io::BufWriter,
    time::{Duration, Instant},
};

use sockpath_ebpf::config::counter;
use tokio::sync::oneshot;

use crate::{
    cli::OutputArgs,
    decode,
    filter::WatchFilter,
    journey::{
        self,
        clock::{monotonic_ns, Clock},
        model::Summary,
        Assembler,
    },
    kernel::{self, facts::KernelFacts, probes, Kernel},
    output::{json::JsonSink, text::TextSink, timeline::Timeline, Sink, StartInfo},
    procfs,
};

/// How often journeys that are due are finished and the output is written.
const TICK: Duration = Duration::from_millis(25);
/// Items held for time ordering at most; past this the oldest go out at once.
const MAX_BUFFERED: usize = 20_000;
/// Ring records handled before the other work of the loop gets a turn: about 10 ms of work at
/// the speed measured, so journeys are finished and written out on time under a flood.
const BATCH: usize = 4096;
/// How often the ring buffer is drained: the 16 MiB default holds about half a second of the
/// heaviest load measured.
const DRAIN: Duration = Duration::from_millis(10);

pub struct Session {
    pub filter: WatchFilter,
    pub output: OutputArgs,
}

/// Everything needed before the first event: checks, kernel facts, programs attached.
pub struct Attached {
    pub kernel: Kernel,
    pub facts: KernelFacts,
    pub info: StartInfo,
}

pub fn attach(filter: &WatchFilter, ring_kib: u32, started: Instant) -> anyhow::Result<Attached> {
    kernel::check_privileges()?;
    kernel::raise_memlock();
    let facts = KernelFacts::read()?;
    kernel::ensure_tracefs()?;
    let kernel = Kernel::load(&facts, &filter.to_kernel(), ring_kib << 10)?;
    let info = StartInfo {
        filter: filter.describe(),
        kernel: kernel::kernel_release(),
        attach_ms: started.elapsed().as_secs_f64() * 1e3,
        hooks: probes::describe(&kernel.stages),
    };
    Ok(Attached {
        kernel,
        facts,
        info,
    })
}

fn sinks(output: &OutputArgs) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut v: Vec<Box<dyn Sink>> = Vec::new();
    if output.json {
        v.push(Box::new(JsonSink::new(BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        ))));
    } else {
        v.push(Box::new(TextSink::new(BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        ))));
    }
    // Opened before anything is attached, so a path that cannot be written is a usage error.
    if let Some(path) = &output.pcapng {
        let file = std::fs::File::create(path).map_err(|e| {
            crate::cli::UsageError(format!("cannot write --pcapng {}: {e}", path.display()))
        })?;
        v.push(Box::new(crate::output::pcapng::PcapngSink::new(
            std::io::BufWriter::new(file),
        )));
    }
    Ok(v)
}

/// Runs until `stop` resolves (or Ctrl-C/SIGTERM). `ready` fires once every probe is attached.
pub async fn run(
    session: Session,
    started: Instant,
    ready: Option<oneshot::Sender<()>>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sinks = sinks(&session.output)?;

    let Attached {
        mut kernel,
        facts,
        info,
    } = attach(&session.filter, session.output.ring_kib, started)?;
    // Only the names outlive start-up; the kernel's BTF and symbol set (tens of MiB) go now,
    // and the heap they held goes back to the system.
    let names = {
        let f = facts;
        f.names
    };
    release_free_memory();

    let cfg = journey::Config {
        filter: session.filter.clone(),
        hold_ns: session.output.hold_ms * 1_000_000,
        hooks: probes::choice(&kernel.stages),
        ..journey::Config::default()
    };
    let settle_ns = cfg.settle_ns;
    let mut asm = Assembler::new(cfg, names, Clock::sample());
    let scan = procfs::scan(&session.filter);
    for pid in &scan.watched_pids {
        kernel.watch_tgid(*pid);
    }
    asm.set_proc_owners(scan.owners);

    for s in sinks.iter_mut() {
        s.start(&info)?;
    }
    if let Some(r) = ready {
        let _ = r.send(());
    }

    // The programs never wake us (see RB_FLAGS in sockpath-ebpf's emit.rs): the ring is drained
    // on a timer, many events per wake-up.
    let mut ring = kernel.ring()?;
    let mut drain = tokio::time::interval(DRAIN);
    let mut timeline = Timeline::default();
    let mut tick = tokio::time::interval(TICK);
    let mut last_lost = 0u64;
    // Losses are placed in time between two checks of the counter: the first is now.
    asm.lost(0, monotonic_ns());
    let mut last_clock = Instant::now();
    let mut last_scan = Instant::now();
    let mut decode_warned = false;
    // Every event the kernel took before this (monotonic) time has been read.
    let mut known_until = monotonic_ns();
    tokio::pin!(stop);

    let mut handle = |asm: &mut Assembler, bytes: &[u8]| match decode::decode(bytes) {
        Ok(ev) => asm.push(ev),
        Err(e) => {
            asm.summary_mut().decode_errors += 1;
            if !decode_warned {
                tracing::warn!("malformed event from the kernel: {e}");
                decode_warned = true;
            }
        }
    };

    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = drain.tick() => {
                // A bounded batch: under a flood the ring is never empty, and the tick (which
                // finishes journeys and writes them out) must still run. A drain that falls
                // behind its period runs again at once (missed ticks burst).
                let drain_started = monotonic_ns();
                let mut emptied = false;
                for _ in 0..BATCH {
                    match ring.next() {
                        Some(rec) => handle(&mut asm, &rec),
                        None => {
                            emptied = true;
                            break;
                        }
                    }
                }
                known_until = if emptied {
                    drain_started
                } else {
                    known_until.max(asm.newest_event())
                };
                // Journeys finished meanwhile (an overload finishes the oldest open one for
                // each new packet) go to the timeline now, which sends out what is over its
                // bound: nothing piles up between ticks.
                for item in asm.take_ready() {
                    timeline.push(item);
                }
                for item in timeline.overflow(MAX_BUFFERED) {
                    emit(&mut sinks, &item)?;
                }
            }
            _ = tick.tick() => {
                let lost = kernel.lost();
                // Read after the counter: every loss it counts happened before this time.
                let now = monotonic_ns();
                asm.lost(lost.saturating_sub(last_lost), now);
                last_lost = lost;
                if last_clock.elapsed() >= Duration::from_secs(1) {
                    tracing::debug!(
                        "{} timeline={} reading {} ms behind",
                        asm.debug_sizes(),
                        timeline.len(),
                        now.saturating_sub(known_until) / 1_000_000
                    );
                    asm.set_clock(Clock::sample());
                    last_clock = Instant::now();
                }
                asm.tick(known_until);
                if asm.needs_owner_scan() && last_scan.elapsed() >= Duration::from_millis(250) {
                    let scan = procfs::scan(&session.filter);
                    for pid in &scan.watched_pids {
                        kernel.watch_tgid(*pid);
                    }
                    asm.set_proc_owners(scan.owners);
                    last_scan = Instant::now();
                }
                for item in asm.take_ready() {
                    timeline.push(item);
                }
                let clock = asm.clock();
                let horizon = clock.wall_ns(known_until.saturating_sub(settle_ns));
                let watermark = asm
                    .oldest_open()
                    .map(|t| clock.wall_ns(t).saturating_sub(1).min(horizon))
                    .unwrap_or(horizon);
                for item in timeline.release(watermark) {
                    emit(&mut sinks, &item)?;
                }
                for item in timeline.overflow(MAX_BUFFERED) {
                    emit(&mut sinks, &item)?;
                }
                for s in sinks.iter_mut() {
                    s.flush()?;
                }
            }
        }
    }

    // Whatever the kernel wrote before we stopped still belongs to the session.
    {
        while let Some(rec) = ring.next() {
            handle(&mut asm, &rec);
        }
    }
    let lost = kernel.lost();
    asm.lost(lost.saturating_sub(last_lost), monotonic_ns());
    asm.finish();
    for item in asm.take_ready() {
        timeline.push(item);
    }
    for item in timeline.release(u64::MAX) {
        emit(&mut sinks, &item)?;
    }
    for s in sinks.iter_mut() {
        s.flush()?;
    }
    let mut summary = asm.summary().clone();
    summary.packets_seen = kernel.counter(counter::PACKETS_SEEN);
    summary.packets_matched = kernel.counter(counter::PACKETS_MATCHED);
    summary.read_errors = kernel.counter(counter::READ_ERRORS);
    summary.events_lost = lost;
    // Detach before printing the summary: nothing of sockpath stays in the kernel.
    drop(ring);
    drop(kernel);
    for s in sinks.iter_mut() {
        s.summary(&summary)?;
    }
    Ok(summary)
}

fn emit(sinks: &mut [Box<dyn Sink>], item: &journey::model::Item) -> anyhow::Result<()> {
    for s in sinks.iter_mut() {
        s.item(item)?;
    }
    Ok(())
}

/// Hands memory freed so far back to the system now. jemalloc would keep it until later
/// allocation activity let it decay, and an idle watcher has none: the BTF parsed at start
/// (tens of MiB) stayed resident.
fn release_free_memory() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena. A write-only control with no value, so
    // every pointer is null.
    // SAFETY: a NUL-terminated control name and null old/new pointers, as mallctl documents.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!("jemalloc purge failed: {rc}");
    }
}
