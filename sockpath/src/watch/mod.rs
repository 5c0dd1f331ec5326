//! A watch session: attach, read events, assemble journeys, print them in time order, and on
//! stop (Ctrl-C, SIGTERM, --duration, or the demo finishing) detach and print the summary.
//!
//! `run` is the event loop: signals, timers and reads of the ring buffer. What is done with the
//! records is the pipeline's work (`crate::pipeline`).

mod args;
mod remote;

use std::{
    collections::HashMap,
    future::Future,
    io::BufWriter,
    time::{Duration, Instant},
};

use sockpath_ebpf::config::counter;
use tokio::sync::oneshot;

pub use self::args::{OutputArgs, WatchArgs};
use crate::{
    counts,
    filter::{KernelSet, WatchFilter},
    journey::{
        self,
        clock::{monotonic_ns, Clock},
        model::{Owner, Summary},
    },
    kernel::{self, facts::KernelFacts, probes, Kernel, Mode},
    live::{follow, BATCH, DRAIN, TICK},
    memory::release_free_memory,
    output::{json::JsonSink, text::TextSink, Sink, StartInfo},
    pipeline::{Owners, Pipeline},
    procfs,
    usage::UsageError,
};

/// `sockpath watch`: until Ctrl-C, SIGTERM or the end of --duration.
pub fn command(args: WatchArgs, started: Instant) -> anyhow::Result<()> {
    let filter = args.filter()?;
    // The daemon's programs serve all its watchers at once, and sampling is decided in them
    // (a load-time setting): one watcher cannot have its own. A sampled watch loads programs of
    // its own, and refuses a daemon named on the command line.
    if args.sample.is_some() && args.via.daemon.is_some() {
        return Err(UsageError(
            "--sample does not go through a daemon (its programs follow every packet for all its watchers): run sockpath watch --sample as root, without --daemon".into(),
        )
        .into());
    }
    let via = crate::client::Via {
        daemon: args.via.daemon.clone(),
        standalone: args.via.standalone || args.sample.is_some(),
    };
    runtime()?.block_on(async {
        if let Some(daemon) = crate::client::connect(&via)? {
            return remote::run(daemon, &args, &filter, started).await;
        }
        let session = Session {
            filter,
            output: args.output.clone(),
            sample: args.sample,
        };
        let stop = async {
            match args.duration {
                Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
                None => std::future::pending().await,
            }
        };
        run(session, started, None, stop).await.map(|_| ())
    })
}

/// The single-threaded runtime a session runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub struct Session {
    pub filter: WatchFilter,
    pub output: OutputArgs,
    /// `--sample N`.
    pub sample: Option<u32>,
}

/// Everything needed before the first event: checks, kernel facts, programs attached.
pub struct Attached {
    pub kernel: Kernel,
    pub facts: KernelFacts,
    pub info: StartInfo,
}

pub fn attach(
    filter: &WatchFilter,
    ring_kib: u32,
    mode: Mode,
    started: Instant,
) -> anyhow::Result<Attached> {
    let mut facts = kernel::prepare()?;
    let kernel = Kernel::load_mode(
        &facts,
        &KernelSet::of([filter]),
        filter.snaplen,
        ring_kib << 10,
        mode,
    )?;
    facts.load_symbols();
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
        let file = std::fs::File::create(path)
            .map_err(|e| UsageError(format!("cannot write --pcapng {}: {e}", path.display())))?;
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
    let sinks = sinks(&session.output)?;

    let Attached {
        mut kernel,
        facts,
        info,
    } = attach(
        &session.filter,
        session.output.ring_kib,
        // Sampled, the statistics count every packet the journeys do not follow.
        session.sample.map_or(Mode::JOURNEYS, Mode::sampled),
        started,
    )?;
    // Only the names outlive start-up; the kernel's BTF and symbol set (tens of MiB) go now,
    // and the heap they held goes back to the system.
    let names = {
        let f = facts;
        f.names
    };
    // Named as `sockpath stats` names them (a kernel that gives no reasons says so).
    let drop_names = session.sample.map(|_| names.drop_reason_slots());
    release_free_memory();

    let cfg = journey::Config {
        filter: session.filter.clone(),
        hold_ns: session.output.hold_ms * 1_000_000,
        hooks: probes::choice(&kernel.stages),
        sample_one_in: session.sample,
        ..journey::Config::default()
    };
    let mut pipeline = Pipeline::new(cfg, names, Clock::sample, sinks);
    pipeline.scan_owners(&mut ProcOwners {
        filter: &session.filter,
        kernel: &mut kernel,
    });
    pipeline.start(&info, monotonic_ns())?;
    if let Some(r) = ready {
        let _ = r.send(());
    }

    // The programs never wake us (see RB_FLAGS in sockpath-ebpf's emit.rs): the ring is drained
    // on a timer, many events per wake-up.
    let mut ring = kernel.ring()?;
    let mut drain = tokio::time::interval(DRAIN);
    let mut tick = tokio::time::interval(TICK);
    tokio::pin!(stop);

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
                        Some(rec) => pipeline.ingest(&rec),
                        None => {
                            emptied = true;
                            break;
                        }
                    }
                }
                pipeline.drain(emptied.then_some(drain_started))?;
            }
            _ = tick.tick() => {
                let lost = kernel.lost();
                // Read after the counter: every loss it counts happened before this time.
                let now = monotonic_ns();
                let mut owners = ProcOwners {
                    filter: &session.filter,
                    kernel: &mut kernel,
                };
                pipeline.tick(now, lost, &mut owners)?;
            }
        }
    }

    // Whatever the kernel wrote before we stopped still belongs to the session.
    while let Some(rec) = ring.next() {
        pipeline.ingest(&rec);
    }
    let lost = kernel.lost();
    let mut summary = pipeline.finish(monotonic_ns(), lost)?;
    summary.packets_seen = kernel.counter(counter::PACKETS_SEEN);
    summary.packets_matched = kernel.counter(counter::PACKETS_MATCHED);
    summary.read_errors = kernel.counter(counter::READ_ERRORS);
    summary.events_lost = lost;
    if let (Some(n), Some(stats)) = (session.sample, kernel.stats()) {
        let drop_names = drop_names.unwrap_or_default();
        let reason = |r: usize| {
            drop_names
                .get(r)
                .cloned()
                .unwrap_or_else(|| format!("reason {r}"))
        };
        let counted = counts::view::counted(
            &stats.snapshot(),
            &reason,
            kernel.counter(counter::STATS_FULL),
        );
        let s = summary.sampled.get_or_insert_default();
        s.followed = summary.journeys.saturating_sub(s.told_at_end);
        s.counted = counted;
        summary.sampled_one_in = Some(n);
    }
    // Detach before printing the summary: nothing of sockpath stays in the kernel.
    drop(ring);
    drop(kernel);
    pipeline.close(&summary)?;
    Ok(summary)
}

/// The owners of watched sockets from /proc; the kernel follows their processes' calls, and
/// watches the ports of the sockets of the processes named by --pid/--comm.
struct ProcOwners<'a> {
    filter: &'a WatchFilter,
    kernel: &'a mut Kernel,
}

impl Owners for ProcOwners<'_> {
    fn scan(&mut self) -> HashMap<u64, Owner> {
        follow(self.kernel, procfs::scan(self.filter))
    }
}
