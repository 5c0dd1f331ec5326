//! `sockpath probes`: for the running kernel, each journey stage and the hook serving it, and
//! why better hooks were refused; with `--table`, the hook table itself.

use std::time::Instant;

use clap::Args;

use anyhow::anyhow;
use serde_json::Value;

use crate::{
    api::Request,
    client,
    filter::{KernelSet, WatchFilter, DEFAULT_SNAPLEN},
    hooks,
    kernel::{self, Kernel, Mode},
};

#[derive(Args, Debug, Clone)]
pub struct ProbesArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the hook table itself (markdown: each stage's hooks in order of preference, the
    /// oldest kernel each is known to work on, what a stage loses without them) and attach
    /// nothing. Needs no privileges.
    #[arg(long, conflicts_with = "json")]
    pub table: bool,
    #[command(flatten)]
    pub via: client::Via,
}

pub fn run(args: ProbesArgs, started: Instant) -> anyhow::Result<()> {
    if args.table {
        print!("{}", hooks::markdown());
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let report = match client::connect(&args.via)? {
        Some(daemon) => rt.block_on(from_daemon(daemon))?,
        None => {
            let facts = kernel::prepare()?;
            // Every stage, the statistics' own included: what a daemon attaches.
            let k = Kernel::load_mode(
                &facts,
                &KernelSet::of([&WatchFilter::default()]),
                DEFAULT_SNAPLEN,
                64 << 10,
                Mode::BOTH,
            )?;
            serde_json::json!({
                "kernel": kernel::kernel_release(),
                "attach_ms": started.elapsed().as_secs_f64() * 1e3,
                "stages": k.stages,
            })
        }
    };
    print(&report, args.json)
}

/// The report of the daemon's programs (attached for the question if nobody watches).
async fn from_daemon(mut daemon: client::Daemon) -> anyhow::Result<Value> {
    daemon.send(&Request::Probes).await?;
    let line = daemon
        .line()
        .await?
        .ok_or_else(|| anyhow!("the sockpath daemon closed the connection without an answer"))?;
    let mut v: Value = serde_json::from_str(&line)
        .map_err(|e| anyhow!("the daemon sent a line this sockpath cannot read ({e}): {line}"))?;
    match v["type"].as_str() {
        Some("probes") => {}
        Some("error") => return Err(anyhow!("{}", v["error"].as_str().unwrap_or("?"))),
        _ => return Err(anyhow!("the daemon did not answer with probes: {line}")),
    }
    if let Value::Object(o) = &mut v {
        o.remove("type");
    }
    Ok(v)
}

/// The report as `--json` prints it, or as a table: the same whoever attached the programs.
fn print(report: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!(
        "kernel {}: all hooks attached in {:.0} ms",
        text(&report["kernel"]),
        report["attach_ms"].as_f64().unwrap_or(0.0)
    );
    println!("{:<44} {:<11} hook", "stage", "kind");
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| (text(&p[0]), text(&p[1])))
            .collect()
    };
    for s in report["stages"].as_array().into_iter().flatten() {
        let chosen = match s["chosen"].as_str() {
            Some(c) => c.to_string(),
            None => format!("none ({})", text(&s["without"])),
        };
        println!(
            "{:<44} {:<11} {}",
            text(&s["name"]),
            text(&s["kind"]),
            chosen
        );
        if let Some(loses) = s["loses"].as_str() {
            println!("{:<44} {:<11}   loses: {loses}", "", "");
        }
        for (hook, why) in pairs(&s["partial"]) {
            println!("{:<44} {:<11}   without {hook}: {why}", "", "");
        }
        for (hook, why) in pairs(&s["refused"]) {
            println!("{:<44} {:<11}   refused {hook}: {why}", "", "");
        }
    }
    Ok(())
}
