//! What BPF programs are loaded on the machine (bpftool): nothing of sockpath may stay.

use std::process::Command;

use serde_json::Value;

use crate::sh;

/// Names of the BPF programs loaded on the machine now (bpftool).
pub fn loaded_programs() -> Vec<String> {
    let out = sh(Command::new("bpftool").args(["prog", "show", "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Array(vec![]));
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

/// Program names only sockpath loads. The kernel keeps the first 15 characters; bpftool may
/// print the full name from BTF (Debian's does), so names are compared on those 15.
pub const SOCKPATH_PROGRAMS: &[&str] = &[
    "netif_receive_s",
    "sk_data_ready",
    "inet_sock_set_s",
    "tcp_send_reset",
];

pub fn sockpath_programs_loaded() -> usize {
    loaded_programs()
        .iter()
        .filter(|n| {
            let short = &n[..n.len().min(15)];
            SOCKPATH_PROGRAMS.contains(&short)
        })
        .count()
}
