//! The in-kernel cost of each sockpath program: kernel.bpf_stats_enabled makes the kernel time
//! every program run (run_time_ns, run_cnt), which bpftool reports.

use std::process::Command;

use anyhow::Context as _;
use serde_json::Value;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Timing every BPF program run costs a little itself: it is on only for the trials that
/// measure it.
pub struct Enabled {
    before: String,
}

impl Enabled {
    pub fn new() -> anyhow::Result<Self> {
        let before = std::fs::read_to_string(SYSCTL).context("reading kernel.bpf_stats_enabled")?;
        std::fs::write(SYSCTL, "1").context("setting kernel.bpf_stats_enabled=1")?;
        Ok(Self { before })
    }
}

impl Drop for Enabled {
    fn drop(&mut self) {
        let _ = std::fs::write(SYSCTL, self.before.trim());
    }
}

/// One program's totals since it was loaded.
#[derive(Clone, Debug)]
pub struct ProgStats {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

impl ProgStats {
    pub fn ns_per_run(&self) -> f64 {
        if self.run_cnt == 0 {
            0.0
        } else {
            self.run_time_ns as f64 / self.run_cnt as f64
        }
    }
}

fn programs() -> anyhow::Result<Vec<Value>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool (apt-get install bpftool)")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("bpftool JSON")?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Ids of the BPF programs loaded now (taken before sockpath starts, to tell its own apart:
/// Debian's bpftool does not say which process holds a program).
pub fn loaded_ids() -> anyhow::Result<Vec<u64>> {
    Ok(programs()?
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect())
}

/// Totals of the programs loaded since `before` was taken, busiest first.
pub fn since(before: &[u64]) -> anyhow::Result<Vec<ProgStats>> {
    let mut stats: Vec<ProgStats> = programs()?
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| !before.contains(&id)))
        .filter_map(|p| {
            Some(ProgStats {
                name: p["name"].as_str()?.to_string(),
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
            })
        })
        .filter(|p| p.run_cnt > 0)
        .collect();
    stats.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
    Ok(stats)
}
