//! `cargo xtask bench --hook-groups`: what each group of hooks costs traffic sockpath does not
//! watch. sockpath watches another port with one group of programs attached at a time
//! (SOCKPATH_ONLY_PROGRAMS), against nothing attached, rounds in rotated order; the ratios say
//! where the cost of "watching another port" comes from.

use std::{path::Path, time::Duration};

use super::{
    loads::{self, Load},
    watchers::Running,
    OTHER_PORT, PORT,
};

/// The groups, by the programs' names (as `bpftool prog` lists them).
const GROUPS: [(&str, Option<&str>); 6] = [
    ("no program (sockpath running, nothing attached)", Some("none")),
    ("device receive: netif_receive_skb", Some("netif_receive_skb")),
    (
        "NET_RX softirq marks: softirq_entry + softirq_exit",
        Some("softirq_entry,softirq_exit"),
    ),
    (
        "socket side: net_dev_queue, sk_data_ready, sock_recv_length, inet_sock_set_state, tcp_probe, kfree_skb, tcp_destroy_sock",
        Some("net_dev_queue,sk_data_ready,sock_recv_length,inet_sock_set_state,tcp_probe,kfree_skb,tcp_destroy_sock"),
    ),
    ("socket system calls: sys_enter_* + sys_exit_*", Some("sys_enter,sys_exit")),
    ("every program", None),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the trials and returns the Markdown table.
pub fn run(sockpath: &Path, rounds: usize, secs: u64) -> anyhow::Result<String> {
    let mut s = format!(
        "\nWhat each group of hooks costs traffic on another port ({rounds} rounds of {secs} s, \
         rotated order, median rate with only that group attached / median with nothing attached):\n\n\
         | hooks attached | small UDP (64 B) | short TCP connections |\n|---|---|---|\n"
    );
    let mut ratios = vec![[0.0f64; 2]; GROUPS.len()];
    for (li, load) in [Load::SmallUdp, Load::ShortTcp].into_iter().enumerate() {
        // Slot 0 is nothing attached; slot g+1 is group g.
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); GROUPS.len() + 1];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..=GROUPS.len()).collect();
            let n = order.len();
            order.rotate_left(round % n);
            for slot in order {
                eprintln!(
                    "bench: hook groups / {} / slot {slot} / round {}",
                    load.name(),
                    round + 1
                );
                let watcher = match slot {
                    0 => None,
                    g => Some(Running::sockpath_only(
                        sockpath,
                        &["--port", &OTHER_PORT.to_string()],
                        GROUPS[g - 1].1,
                    )?),
                };
                std::thread::sleep(Duration::from_millis(300));
                rates[slot].push(loads::run(load, PORT, secs)?.value);
                if let Some(w) = watcher {
                    w.stop()?;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let base = median(rates[0].clone());
        for g in 0..GROUPS.len() {
            ratios[g][li] = if base > 0.0 {
                median(rates[g + 1].clone()) / base
            } else {
                0.0
            };
        }
    }
    for (g, (name, _)) in GROUPS.iter().enumerate() {
        s.push_str(&format!(
            "| {name} | {:.2} | {:.2} |\n",
            ratios[g][0], ratios[g][1]
        ));
    }
    Ok(s)
}
