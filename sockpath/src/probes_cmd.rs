//! `sockpath probes`: for the running kernel, each journey stage and the hook serving it, and
//! why better hooks were refused; with `--table`, the hook table itself.

use std::time::Instant;

use clap::Args;

use crate::{filter::WatchFilter, hooks, watch};

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
    let attached = watch::attach(&WatchFilter::default(), 64, started)?;
    let stages = &attached.kernel.stages;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kernel": attached.info.kernel,
                "attach_ms": attached.info.attach_ms,
                "stages": stages,
            }))?
        );
        return Ok(());
    }
    println!(
        "kernel {}: all hooks attached in {:.0} ms",
        attached.info.kernel, attached.info.attach_ms
    );
    println!("{:<44} {:<11} hook", "stage", "kind");
    for s in stages {
        let chosen = s
            .chosen
            .clone()
            .unwrap_or_else(|| format!("none ({})", s.without));
        println!("{:<44} {:<11} {}", s.name, s.kind.as_str(), chosen);
        for (hook, why) in &s.partial {
            println!("{:<44} {:<11}   without {hook}: {why}", "", "");
        }
        for (hook, why) in &s.refused {
            println!("{:<44} {:<11}   refused {hook}: {why}", "", "");
        }
    }
    Ok(())
}
