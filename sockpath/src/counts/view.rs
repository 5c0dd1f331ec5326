//! One interval's statistics in words: per port, its counts by outcome, its drops by the
//! kernel's reason, and p50/p99/max of each measured stage. The table and the JSON are both
//! written from this.

use serde::Serialize;
use sockpath_ebpf::{
    net::{IPPROTO_TCP, IPPROTO_UDP},
    stats::{key_parts, outcome, stage, PortStats, DROP_REASONS},
};

use super::model::{count, quantile, Totals};

/// The drop reason that says a listener's accept queue was full (kernels from 6.4 name it).
pub const LISTEN_OVERFLOW: &str = "TCP_LISTEN_OVERFLOW";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortView {
    pub port: u16,
    pub proto: String,
    /// `to`: packets to the port; `from`: packets from it (to a local client of it).
    pub direction: &'static str,
    pub matched: u64,
    pub queued: u64,
    pub accept_queued: u64,
    pub read: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub reset_sent: u64,
    pub icmp_sent: u64,
    pub queue_full: u64,
    pub consumed: u64,
    /// Drops by the kernel's reason, most first.
    pub drops: Vec<(String, u64)>,
    /// Connections dropped because the listener's accept queue was full (from the drop
    /// reason, where the kernel has one for it).
    pub accept_overflows: u64,
    pub latency: Vec<StageView>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageView {
    pub stage: &'static str,
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl PortView {
    /// "to 4000/udp", "from 443/tcp".
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.direction, self.port, self.proto)
    }
}

/// "tcp", "udp", or "ipN" for another IP protocol.
pub fn proto_name(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        other => format!("ip{other}"),
    }
}

/// The ports of `t` that counted anything, in port order (to before from), named with
/// `drop_reason` (the running kernel's names of its drop reasons).
pub fn ports(t: &Totals, drop_reason: &dyn Fn(usize) -> String) -> Vec<PortView> {
    let mut v: Vec<PortView> = t
        .ports
        .iter()
        .filter(|(_, p)| p.counts.iter().any(|c| *c > 0))
        .map(|(k, p)| port_view(*k, p, drop_reason))
        .collect();
    v.sort_by_key(|p| (p.port, p.direction == "from", p.proto.clone()));
    v
}

/// Every port's counts added up, as a sampled watch's summary gives them: each matched packet
/// is counted under one port, so the sums count packets. `uncounted`: packets of ports the
/// statistics had no room for.
pub fn counted(t: &Totals, drop_reason: &dyn Fn(usize) -> String, uncounted: u64) -> Counted {
    let mut c = Counted {
        uncounted,
        ..Default::default()
    };
    let mut drops: std::collections::BTreeMap<String, u64> = Default::default();
    for p in ports(t, drop_reason) {
        c.matched += p.matched;
        c.queued += p.queued;
        c.accept_queued += p.accept_queued;
        c.read += p.read;
        c.accepted += p.accepted;
        c.consumed += p.consumed;
        c.dropped += p.dropped;
        c.reset_sent += p.reset_sent;
        c.icmp_sent += p.icmp_sent;
        c.queue_full += p.queue_full;
        for (r, n) in p.drops {
            *drops.entry(r).or_default() += n;
        }
    }
    c.drops = drops.into_iter().collect();
    c.drops
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    c
}

fn port_view(key: u32, p: &PortStats, drop_reason: &dyn Fn(usize) -> String) -> PortView {
    let (port, proto, from) = key_parts(key);
    let mut drops: Vec<(String, u64)> = p
        .drops
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| {
            let name = if r == DROP_REASONS - 1 {
                format!("{} or above", drop_reason(r))
            } else {
                drop_reason(r)
            };
            (name, *n)
        })
        .collect();
    drops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let accept_overflows = drops
        .iter()
        .filter(|(r, _)| r == LISTEN_OVERFLOW)
        .map(|(_, n)| n)
        .sum();
    let latency = (0..stage::COUNT)
        .filter_map(|s| {
            let h = &p.hist[s];
            let n = count(h);
            (n > 0).then(|| StageView {
                stage: stage::NAMES[s],
                count: n,
                p50_ns: quantile(h, 0.5).unwrap_or(0),
                p99_ns: quantile(h, 0.99).unwrap_or(0),
                max_ns: h.max_ns,
            })
        })
        .collect();
    let c = &p.counts;
    PortView {
        port,
        proto: proto_name(proto),
        direction: if from { "from" } else { "to" },
        matched: c[outcome::MATCHED],
        queued: c[outcome::QUEUED],
        accept_queued: c[outcome::ACCEPT_QUEUED],
        read: c[outcome::READ],
        accepted: c[outcome::ACCEPTED],
        dropped: c[outcome::DROPPED],
        reset_sent: c[outcome::RESET_SENT],
        icmp_sent: c[outcome::ICMP_SENT],
        queue_full: c[outcome::QUEUE_FULL],
        consumed: c[outcome::CONSUMED],
        drops,
        accept_overflows,
        latency,
    }
}

/// Counts by outcome of every matched packet (`sockpath_ebpf::stats::outcome`); not exclusive
/// (a datagram to a closed port is both an ICMP error sent and a drop).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Counted {
    pub matched: u64,
    pub queued: u64,
    pub accept_queued: u64,
    pub read: u64,
    pub accepted: u64,
    pub consumed: u64,
    pub dropped: u64,
    pub reset_sent: u64,
    pub icmp_sent: u64,
    pub queue_full: u64,
    /// Drops by the kernel's reason, most first.
    pub drops: Vec<(String, u64)>,
    /// Packets of ports the statistics had no room for (not in the counts above).
    pub uncounted: u64,
}
