//! `cargo xtask bench`: what watching costs, side by side with tcpdump, in one run.
//!
//! Each load runs under each condition (nothing attached, sockpath watching another port,
//! bpftrace on netif_receive_skb and on the six per-packet hooks sockpath uses, each rejecting
//! everything, sockpath watching the loaded port, the same with `--sample 100`, `sockpath
//! stats` on it, tcpdump capturing it), the conditions in a rotated order
//! each round so that drift over the run does not favour one; medians are reported with the
//! ratio to "nothing attached". Then: the in-kernel cost per program run
//! (kernel.bpf_stats_enabled), the time from start to every probe attached, and a long run
//! watching the memory sockpath keeps. It prints a Markdown table, also written to
//! target/bench/results.md.

mod bpf_stats;
mod fixed;
mod hook_groups;
mod loads;
mod procstat;
mod table;
mod watchers;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Context as _;

use self::{
    loads::{Load, Rate},
    table::Trial,
    watchers::{Condition, Cost, Running},
};
use crate::cmd::{root, run};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Rounds of every load under every condition.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each load runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of the long run that watches sockpath's memory.
    #[arg(long, default_value_t = 60)]
    soak_seconds: u64,
    /// Only these loads (repeatable; all by default).
    #[arg(long = "load", value_enum)]
    loads: Vec<Load>,
    /// Only these conditions (repeatable; all by default).
    #[arg(long = "condition", value_enum)]
    conditions: Vec<Condition>,
    /// Only the main table: no fixed rates, per-program costs, attach times or memory run.
    /// For comparing one change quickly; the README's figures come from a full run.
    #[arg(long)]
    main_only: bool,
    /// Also measure what each group of hooks costs traffic on another port (small UDP and
    /// short connections, one group attached at a time; about 5 minutes more).
    #[arg(long)]
    hook_groups: bool,
}

/// The loaded port and a port nobody uses (sockpath watching it filters everything out).
pub(crate) const PORT: u16 = 5201;
pub(crate) const OTHER_PORT: u16 = 5299;

fn build_release() -> anyhow::Result<PathBuf> {
    run(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args(["build", "--release", "-p", "sockpath"]),
    )?;
    Ok(root().join("target/release/sockpath"))
}

fn trial(
    load: Load,
    cond: Condition,
    sockpath: &std::path::Path,
    secs: u64,
    dir: &std::path::Path,
) -> anyhow::Result<(Rate, Cost)> {
    let watcher = Running::start(cond, sockpath, PORT, OTHER_PORT, dir)?;
    // Let the watcher settle after attaching.
    std::thread::sleep(Duration::from_millis(300));
    let rate = loads::run(load, PORT, secs)?;
    let cost = match watcher {
        Some(w) => w.stop()?,
        None => Cost::default(),
    };
    // TIME_WAIT sockets and queues drain between trials.
    std::thread::sleep(Duration::from_millis(500));
    Ok((rate, cost))
}

pub fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    if !crate::cmd::is_root() {
        anyhow::bail!("the benchmark loads eBPF programs: run it as root");
    }
    let sockpath = build_release()?;
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let loads = if args.loads.is_empty() {
        Load::ALL.to_vec()
    } else {
        args.loads.clone()
    };
    let conditions = if args.conditions.is_empty() {
        Condition::ALL.to_vec()
    } else {
        args.conditions.clone()
    };
    let mut trials = Vec::new();
    for &load in &loads {
        for round in 0..args.rounds {
            // Rotate the order so no condition always runs first or last.
            let mut order = conditions.clone();
            let n = order.len();
            order.rotate_left(round % n);
            for cond in order {
                eprintln!(
                    "bench: {} / {} / round {}",
                    load.name(),
                    cond.name(),
                    round + 1
                );
                let (rate, cost) = trial(load, cond, &sockpath, args.seconds, &dir)
                    .with_context(|| format!("{} under {}", load.name(), cond.name()))?;
                trials.push(Trial {
                    load,
                    cond,
                    rate,
                    cost,
                    secs: args.seconds,
                });
            }
        }
    }

    let groups = if args.hook_groups {
        hook_groups::run(&sockpath, args.rounds, args.seconds)?
    } else {
        String::new()
    };
    if args.main_only {
        let text = table::render_trials(&table::machine(), &trials) + &groups;
        println!("{text}");
        return Ok(());
    }

    // Fixed rates up to what tcpdump sustained: where each watcher starts losing.
    let tcpdump_pps = {
        let mut v: Vec<f64> = trials
            .iter()
            .filter(|t| t.load == Load::SmallUdp && t.cond == Condition::Tcpdump)
            .map(|t| t.rate.value)
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let fixed_rows = fixed::run(&sockpath, tcpdump_pps, PORT, OTHER_PORT, args.seconds, &dir)?;

    // The per-program cost, on its own trials: timing every program run costs a little.
    let mut hooks = HashMap::new();
    for load in Load::ALL {
        for cond in [Condition::SockpathOtherPort, Condition::SockpathLoadedPort] {
            let before = bpf_stats::loaded_ids()?;
            let _stats = bpf_stats::Enabled::new()?;
            let port = if cond == Condition::SockpathLoadedPort {
                PORT
            } else {
                OTHER_PORT
            };
            let w = Running::sockpath(&sockpath, &["--port", &port.to_string()])?;
            std::thread::sleep(Duration::from_millis(300));
            loads::run(load, PORT, args.seconds)?;
            let stats = bpf_stats::since(&before)?;
            w.stop()?;
            hooks.insert((load, cond), stats);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // Start to every probe attached.
    let mut attach = Vec::new();
    for _ in 0..5 {
        let w = Running::sockpath(&sockpath, &["--port", &OTHER_PORT.to_string()])?;
        let cost = w.stop()?;
        if let Some(ms) = cost.start.as_ref().and_then(|s| s["attach_ms"].as_f64()) {
            attach.push(ms);
        }
    }

    // A long run at the small-UDP load, watching the loaded port: memory over time.
    eprintln!("bench: memory over {} s", args.soak_seconds);
    let w = Running::sockpath(&sockpath, &["--port", &PORT.to_string()])?;
    let pid = w.pid();
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        let start = std::time::Instant::now();
        while let Some(rss) = watchers::rss_kib(pid) {
            samples.push((start.elapsed().as_secs_f64(), rss));
            std::thread::sleep(Duration::from_secs(1));
        }
        samples
    });
    let mut soak_rate = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(args.soak_seconds);
    while std::time::Instant::now() < end {
        soak_rate.push(loads::run(Load::SmallUdp, PORT, 10.min(args.soak_seconds))?.value);
    }
    let soak = w.stop()?;
    let samples = sampler.join().unwrap_or_default();

    let machine = table::machine();
    let text = table::render(
        &machine, &trials, &hooks, &attach, &samples, &soak, &soak_rate,
    );
    let text = text + &fixed::render(&fixed_rows, args.seconds) + &groups;
    println!("{text}");
    std::fs::write(dir.join("results.md"), &text)?;
    eprintln!("bench: written to {}", dir.join("results.md").display());
    Ok(())
}
