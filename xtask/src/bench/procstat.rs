//! Reading a process's cost from /proc (CPU time, resident memory) and the BPF objects it
//! holds (its maps' memory, bpftrace's attachments) through bpftool.

use std::process::Command;

use serde_json::Value;

/// Sum of bytes_memlock, as `bpftool map show` lists them, of the maps `pid` holds (found by
/// the map_id lines of its descriptors' fdinfo: this bpftool lists no map's processes).
pub fn map_bytes(pid: u32) -> Option<u64> {
    let mut ids = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .ok()?
        .flatten()
    {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            ids.insert(id);
        }
    }
    let out = Command::new("bpftool")
        .args(["-j", "map", "show"])
        .output()
        .ok()?;
    let maps: Value = serde_json::from_slice(&out.stdout).ok()?;
    let sum = maps
        .as_array()?
        .iter()
        .filter(|m| m["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|m| m["bytes_memlock"].as_u64())
        .sum();
    Some(sum)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// VmHWM of a process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    rss_field(pid, "VmHWM:")
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    rss_field(pid, "VmRSS:")
}

fn rss_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Tracepoints `pid` has a BPF program attached to (bpftrace attaches through perf events,
/// which `bpftool perf show` lists with their process).
pub fn bpf_links_of(pid: u32) -> usize {
    let Ok(out) = Command::new("bpftool")
        .args(["-j", "perf", "show"])
        .output()
    else {
        return 0;
    };
    let Ok(links) = serde_json::from_slice::<Value>(&out.stdout) else {
        return 0;
    };
    links.as_array().map_or(0, |a| {
        a.iter()
            .filter(|l| l["pid"].as_u64() == Some(pid.into()))
            .count()
    })
}

/// Whether any program bpftrace loaded is still loaded (its programs are named after the
/// probe, e.g. `tracepoint_net_netif_receive_skb_1`, and are held by a process named bpftrace).
pub fn bpftrace_programs_loaded() -> bool {
    let Ok(out) = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
    else {
        return false;
    };
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter().any(|p| {
                    p["pids"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|x| x["comm"].as_str() == Some("bpftrace")))
                })
            })
        })
        .unwrap_or(false)
}
