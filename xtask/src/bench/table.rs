//! The benchmark's report: one Markdown document with the machine, the side-by-side table, the
//! per-program cost, attach times and memory over a long run.

use std::collections::HashMap;

use super::{
    bpf_stats::ProgStats,
    loads::{Load, Rate},
    watchers::{Condition, Cost},
};

pub struct Trial {
    pub load: Load,
    pub cond: Condition,
    pub rate: Rate,
    pub cost: Cost,
    pub secs: u64,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt_rate(load: Load, v: f64) -> String {
    match load {
        Load::BulkTcp => format!("{v:.2}"),
        _ => format!("{:.0}", v),
    }
}

/// The machine, as the README states it.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, kernel {kernel}")
}

pub fn render(
    machine: &str,
    trials: &[Trial],
    hooks: &HashMap<(Load, Condition), Vec<ProgStats>>,
    attach_ms: &[f64],
    rss: &[(f64, u64)],
    soak: &Cost,
    soak_rate: &[f64],
) -> String {
    let mut s = render_trials(machine, trials);
    s.push_str(&render_rest(hooks, attach_ms, rss, soak, soak_rate));
    s
}

/// The main table: every load under every condition, medians and ratios.
pub fn render_trials(machine: &str, trials: &[Trial]) -> String {
    let mut s = String::new();
    let rounds = trials
        .iter()
        .filter(|t| {
            trials
                .first()
                .is_some_and(|f| f.load == t.load && f.cond == t.cond)
        })
        .count();
    let secs = trials.first().map(|t| t.secs).unwrap_or(0);
    s.push_str(&format!(
        "Machine: {machine}. Loopback; each load ran {secs} s per trial, {rounds} rounds, conditions in rotated order; medians.\n\n"
    ));
    s.push_str("| load | condition | rate | vs nothing | lost (all rounds) | watcher CPU (% of a core) | watcher peak RSS | BPF maps (bpftool) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for load in Load::ALL {
        let of = |c: Condition| -> Vec<&Trial> {
            trials
                .iter()
                .filter(|t| t.load == load && t.cond == c)
                .collect()
        };
        let base = median(
            of(Condition::Nothing)
                .iter()
                .map(|t| t.rate.value)
                .collect(),
        );
        for cond in Condition::ALL {
            let ts = of(cond);
            let Some(rate) = median(ts.iter().map(|t| t.rate.value).collect()) else {
                continue;
            };
            let ratio = base.map(|b| format!("{:.2}", rate / b)).unwrap_or_default();
            let lost: Option<String> = match cond {
                Condition::SockpathOtherPort
                | Condition::SockpathLoadedPort
                | Condition::SockpathSampled => Some(
                    ts.iter()
                        .filter_map(|t| t.cost.summary.as_ref()?["events_lost"].as_u64())
                        .sum::<u64>()
                        .to_string(),
                ),
                Condition::Tcpdump => Some(format!(
                    "{} packets dropped",
                    ts.iter()
                        .filter_map(|t| t.cost.tcpdump_dropped)
                        .sum::<u64>()
                )),
                // The totals' line: events lost and packets not counted (the table full).
                Condition::SockpathStats => Some(
                    ts.iter()
                        .filter_map(|t| {
                            let v = t.cost.summary.as_ref()?;
                            Some(v["events_lost"].as_u64()? + v["stats_full"].as_u64()?)
                        })
                        .sum::<u64>()
                        .to_string(),
                ),
                Condition::Nothing | Condition::BpftraceOne | Condition::BpftraceSix => None,
            };
            let maps = ts.iter().filter_map(|t| t.cost.map_bytes).max();
            let cpu = median(
                ts.iter()
                    .filter_map(|t| t.cost.cpu_s.map(|c| 100.0 * c / t.secs as f64))
                    .collect(),
            );
            let rss = ts.iter().filter_map(|t| t.cost.peak_rss_kib).max();
            s.push_str(&format!(
                "| {} | {} | {} {} | {} | {} | {} | {} | {} |\n",
                load.name(),
                cond.name(),
                fmt_rate(load, rate),
                load.unit(),
                ratio,
                lost.unwrap_or_else(|| "-".into()),
                cpu.map(|c| format!("{c:.0}%"))
                    .unwrap_or_else(|| "-".into()),
                rss.map(|r| format!("{:.1} MiB", r as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into()),
                maps.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
                    .unwrap_or_else(|| "-".into()),
            ));
        }
    }

    s
}

fn render_rest(
    hooks: &HashMap<(Load, Condition), Vec<ProgStats>>,
    attach_ms: &[f64],
    rss: &[(f64, u64)],
    soak: &Cost,
    soak_rate: &[f64],
) -> String {
    let mut s = String::new();
    s.push_str("\nIn-kernel cost per program run (kernel.bpf_stats_enabled, separate trials), busiest programs:\n\n");
    s.push_str(
        "| load | sockpath watching | program | runs | ns per run |\n|---|---|---|---|---|\n",
    );
    for load in Load::ALL {
        for cond in [Condition::SockpathOtherPort, Condition::SockpathLoadedPort] {
            let Some(stats) = hooks.get(&(load, cond)) else {
                continue;
            };
            let who = if cond == Condition::SockpathLoadedPort {
                "the loaded port"
            } else {
                "another port"
            };
            for p in stats.iter().take(6) {
                s.push_str(&format!(
                    "| {} | {who} | {} | {} | {:.0} |\n",
                    load.name(),
                    p.name,
                    p.run_cnt,
                    p.ns_per_run()
                ));
            }
        }
    }

    let mut a = attach_ms.to_vec();
    a.sort_by(|x, y| x.total_cmp(y));
    if let (Some(min), Some(max)) = (a.first(), a.last()) {
        s.push_str(&format!(
            "\nStart to every probe attached ({} runs): min {min:.0} ms, median {:.0} ms, max {max:.0} ms.\n",
            a.len(),
            median(a.clone()).unwrap_or(0.0)
        ));
    }

    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        let peak = rss.iter().map(|(_, r)| *r).max().unwrap_or(0);
        let at = |t: f64| {
            rss.iter()
                .find(|(s, _)| *s >= t)
                .map(|(_, r)| format!("{:.1} MiB", *r as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        };
        let sm = soak.summary.as_ref();
        let get = |k: &str| sm.and_then(|v| v[k].as_u64()).unwrap_or(0);
        s.push_str(&format!(
            "\nMemory over a {:.0} s run of the small-UDP load with sockpath watching the loaded port ({:.0} packets/s): RSS {:.1} MiB at start, {} at 10 s, {} at 30 s, {:.1} MiB at the end, peak {:.1} MiB; {} journeys ({} incomplete), {} given up on while waiting, {} events lost.\n",
            last.0,
            median(soak_rate.to_vec()).unwrap_or(0.0),
            first.1 as f64 / 1024.0,
            at(10.0),
            at(30.0),
            last.1 as f64 / 1024.0,
            peak as f64 / 1024.0,
            get("journeys"),
            get("incomplete"),
            get("evicted"),
            get("events_lost"),
        ));
    }
    s
}
