//! `sockpath stats`: counts and latencies kept in the kernel (`sockpath_ebpf::stats`), per
//! watched port, read every interval and printed as a table (like top) or as JSON Lines.
//! Nothing per packet crosses the ring buffer: the cost on a busy port is the programs' own.
//! With a daemon running, the daemon counts (`source`): no root needed.
//!
//! `model` sums and subtracts the kernel's readings, `view` puts one interval in words, `table`
//! prints it.

mod source;
pub mod table;

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use clap::Args;
use serde::Serialize;

use self::{
    source::{Reading, Source},
    table::Heading,
};
use crate::{
    counts::{
        model::Totals,
        view::{self, PortView},
    },
    filter::{FilterArgs, WatchFilter, DEFAULT_SNAPLEN},
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
struct ReadingLine<'a> {
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
    crate::watch::runtime()?.block_on(run(args, filter, started))
}

async fn run(args: StatsArgs, filter: WatchFilter, started: Instant) -> anyhow::Result<()> {
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A running daemon counts for us (no root needed); without one, programs of our own.
    let (mut source, info) = match crate::client::connect(&args.via)? {
        Some(_) if !filter.owners.is_empty() => {
            return Err(UsageError(
                "through the daemon sockpath stats counts by port: --pid and --comm need --standalone (as root)".into(),
            )
            .into())
        }
        Some(daemon) => Source::daemon(daemon, &filter, started).await?,
        None => Source::own(&filter, started)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let start = Start {
            filter: &filter.describe(),
            kernel: &info.release,
            attach_ms: info.attach_ms,
            interval_s: args.interval,
            hooks: &info.hooks,
        };
        json_line(&mut out, "start", &start)?;
    } else {
        writeln!(
            out,
            "sockpath stats: {}, on kernel {}; {} hooks attached in {:.0} ms; every {} s",
            filter.describe(),
            info.release,
            info.attached,
            info.attach_ms,
            args.interval,
        )?;
    }
    out.flush()?;

    let began = Instant::now();
    let mut last = began;
    let mut before = Reading {
        totals: Totals::default(),
        events_lost: 0,
        stats_full: 0,
    };
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
        let reading = source.read().await?;
        let seconds = now.duration_since(last).as_secs_f64();
        let delta = reading.totals.since(&before.totals);
        // A stop right on an interval's end (--duration a multiple of --interval) has nothing
        // left to say: no near-empty last interval.
        if !stopping || seconds >= 0.01 * args.interval || !delta.is_empty() {
            print(
                &mut out,
                &args,
                &info.drop_reasons,
                "interval",
                seconds,
                &delta,
                reading.events_lost.saturating_sub(before.events_lost),
                reading.stats_full.saturating_sub(before.stats_full),
            )?;
        }
        last = now;
        if stopping {
            let total_s = now.duration_since(began).as_secs_f64();
            print(
                &mut out,
                &args,
                &info.drop_reasons,
                "total",
                total_s,
                &reading.totals,
                reading.events_lost,
                reading.stats_full,
            )?;
            break;
        }
        before = reading;
    }
    // Detach (or leave the daemon's count) before exiting: nothing of sockpath stays in the
    // kernel for this run.
    drop(source);
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one reading and how to print it; a struct would only rename them"
)]
fn print(
    out: &mut impl std::io::Write,
    args: &StatsArgs,
    drop_reasons: &[String],
    what: &str,
    seconds: f64,
    t: &Totals,
    events_lost: u64,
    stats_full: u64,
) -> anyhow::Result<()> {
    let reason = |r: usize| {
        drop_reasons
            .get(r)
            .cloned()
            .unwrap_or_else(|| format!("reason {r}"))
    };
    let ports = view::ports(t, &reason);
    if args.json {
        let r = ReadingLine {
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
