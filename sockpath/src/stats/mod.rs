//! `sockpath stats`: counts and latencies kept in the kernel (`sockpath_ebpf::stats`), per
//! watched port, read every interval and printed as a table (like top) or as JSON Lines.
//! Nothing per packet crosses the ring buffer: the cost on a busy port is the programs' own.
//!
//! `model` sums and subtracts the kernel's readings, `view` puts one interval in words, `table`
//! prints it.

pub mod table;

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use clap::Args;
use serde::Serialize;
use sockpath_ebpf::config::counter;

use self::table::Heading;
use crate::{
    counts::{
        model::Totals,
        view::{self, PortView},
    },
    filter::{FilterArgs, KernelSet, WatchFilter, DEFAULT_SNAPLEN},
    kernel::{self, facts::KernelFacts, names::KernelNames, probes, Kernel, Mode},
    usage::UsageError,
};

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print a table (or a JSON line) every this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM), printing what the last
    /// part of an interval counted and the totals.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// JSON Lines on stdout: a start object, one object per interval, and the totals.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub via: crate::client::Via,
}

impl StatsArgs {
    /// The filter, checked as `watch` checks it, and the times.
    pub fn filter(&self) -> Result<WatchFilter, UsageError> {
        let filter = self.filter.filter(DEFAULT_SNAPLEN)?;
        if !(self.interval.is_finite() && self.interval >= 0.01) {
            return Err(UsageError(format!(
                "--interval must be a number of seconds of at least 0.01, not {}",
                self.interval
            )));
        }
        if let Some(d) = self.duration {
            if !(d > 0.0 && d.is_finite()) {
                return Err(UsageError(format!(
                    "--duration must be a positive number of seconds, not {d}"
                )));
            }
        }
        Ok(filter)
    }
}

/// The start object of `--json`.
#[derive(Serialize)]
struct Start<'a> {
    filter: &'a str,
    kernel: &'a str,
    attach_ms: f64,
    interval_s: f64,
    hooks: &'a [String],
}

/// One interval's object of `--json` ("interval"), and the totals' ("total").
#[derive(Serialize)]
struct Reading<'a> {
    time: String,
    seconds: f64,
    packets_matched: u64,
    events_lost: u64,
    stats_full: u64,
    ports: &'a [PortView],
}

/// `sockpath stats`.
pub fn command(args: StatsArgs, started: Instant) -> anyhow::Result<()> {
    let filter = args.filter()?;
    if args.via.daemon.is_some() {
        return Err(UsageError(
            "sockpath stats does not go through a daemon yet: run it as root (it loads programs of its own), without --daemon".into(),
        )
        .into());
    }
    crate::watch::runtime()?.block_on(run(args, filter, started))
}

async fn run(args: StatsArgs, filter: WatchFilter, started: Instant) -> anyhow::Result<()> {
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    kernel::check_privileges()?;
    kernel::raise_memlock();
    let facts = KernelFacts::read()?;
    kernel::ensure_tracefs()?;
    // The ring buffer carries nothing in this mode: the smallest the kernel takes.
    let mut kernel = Kernel::load_mode(
        &facts,
        &KernelSet::of([&filter]),
        filter.snaplen,
        4096,
        Mode::STATS,
    )?;
    let names = facts.names.clone();
    drop(facts);
    crate::live::release_free_memory();
    let attach_ms = started.elapsed().as_secs_f64() * 1e3;
    let hooks = probes::describe(&kernel.stages);
    let release = kernel::kernel_release();
    let mut out = std::io::stdout().lock();
    if args.json {
        let start = Start {
            filter: &filter.describe(),
            kernel: &release,
            attach_ms,
            interval_s: args.interval,
            hooks: &hooks,
        };
        json_line(&mut out, "start", &start)?;
    } else {
        writeln!(
            out,
            "sockpath stats: {}, on kernel {release}; {} hooks attached in {attach_ms:.0} ms; every {} s",
            filter.describe(),
            kernel.stages.iter().filter(|s| s.chosen.is_some()).count(),
            args.interval,
        )?;
    }
    out.flush()?;

    let began = Instant::now();
    let mut last = began;
    let mut lost_before = 0u64;
    let mut full_before = 0u64;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs_f64(args.interval),
        Duration::from_secs_f64(args.interval),
    );
    // A late tick (the machine was busy) starts the next interval from then: no burst of
    // near-empty intervals to catch up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = &mut stop => stopping = true,
            _ = sigint.recv() => stopping = true,
            _ = sigterm.recv() => stopping = true,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let lost = kernel.lost();
        let full = kernel.counter(counter::STATS_FULL);
        let Some(stats) = kernel.stats_mut() else {
            anyhow::bail!("the programs were loaded without statistics");
        };
        let (delta, totals) = stats.take();
        let seconds = now.duration_since(last).as_secs_f64();
        // A stop right on an interval's end has nothing left to say.
        if !stopping || seconds >= 0.001 {
            print(
                &mut out,
                &args,
                &names,
                "interval",
                seconds,
                &delta,
                lost - lost_before,
                full - full_before,
            )?;
        }
        last = now;
        lost_before = lost;
        full_before = full;
        if stopping {
            let total_s = now.duration_since(began).as_secs_f64();
            print(
                &mut out, &args, &names, "total", total_s, &totals, lost, full,
            )?;
            break;
        }
    }
    // Detach before exiting: nothing of sockpath stays in the kernel.
    drop(kernel);
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one reading and how to print it; a struct would only rename them"
)]
fn print(
    out: &mut impl std::io::Write,
    args: &StatsArgs,
    names: &KernelNames,
    what: &str,
    seconds: f64,
    t: &Totals,
    events_lost: u64,
    stats_full: u64,
) -> anyhow::Result<()> {
    let reason = |r: usize| names.drop_reason(r as i32);
    let ports = view::ports(t, &reason);
    if args.json {
        let r = Reading {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            seconds,
            packets_matched: ports.iter().map(|p| p.matched).sum(),
            events_lost,
            stats_full,
            ports: &ports,
        };
        json_line(out, what, &r)?;
    } else {
        let time = chrono::Local::now().format("%H:%M:%S").to_string();
        let text = table::render(
            &Heading {
                time: &time,
                seconds,
                what,
                events_lost,
                stats_full,
            },
            &ports,
        );
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    Ok(())
}

/// `{"type":KIND, ...fields}` on one line, the type first.
fn json_line(out: &mut impl std::io::Write, kind: &str, v: &impl Serialize) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(v)?;
    let fields = bytes
        .strip_prefix(b"{")
        .ok_or_else(|| anyhow::anyhow!("not a JSON object"))?;
    write!(out, "{{\"type\":\"{kind}\"")?;
    if fields != b"}" {
        out.write_all(b",")?;
    }
    out.write_all(fields)?;
    out.write_all(b"\n")?;
    Ok(())
}
