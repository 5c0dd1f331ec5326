//! The kernel's per-port statistics (`crate::counts::model::Totals`) as the metrics' families:
//! packets by outcome and drop reason, the stage latency histograms, accept-queue overflows.

use sockpath_ebpf::stats::{key_parts, outcome, stage, PortStats as KernelPort};

use super::{PacketCount, PortStats, StageLatency};
use crate::counts::{
    model::{count, Totals},
    view::LISTEN_OVERFLOW,
};

/// The outcomes every metrics port has a series for from the start (drops go by reason).
const OUTCOMES: [(&str, usize); 9] = [
    ("matched", outcome::MATCHED),
    ("queued", outcome::QUEUED),
    ("accept_queued", outcome::ACCEPT_QUEUED),
    ("read", outcome::READ),
    ("accepted", outcome::ACCEPTED),
    ("reset_sent", outcome::RESET_SENT),
    ("icmp_sent", outcome::ICMP_SENT),
    ("queue_full", outcome::QUEUE_FULL),
    ("consumed", outcome::CONSUMED),
];

/// The ports `wanted` names, packets to them only (those from them, to a local client, are
/// the client's business), in port order.
pub fn from_totals(
    t: &Totals,
    wanted: impl Fn(u16) -> bool,
    drop_reason: impl Fn(usize) -> String,
) -> Vec<PortStats> {
    let mut v: Vec<PortStats> = t
        .ports
        .iter()
        .filter_map(|(k, p)| {
            let (port, proto, from) = key_parts(*k);
            (!from && wanted(port)).then(|| port_stats(port, proto, p, &drop_reason))
        })
        .collect();
    v.sort_by(|a, b| (a.port, &a.proto).cmp(&(b.port, &b.proto)));
    v
}

fn port_stats(
    port: u16,
    proto: u8,
    p: &KernelPort,
    drop_reason: &impl Fn(usize) -> String,
) -> PortStats {
    let mut packets: Vec<PacketCount> = OUTCOMES
        .iter()
        .map(|(name, i)| PacketCount {
            outcome: (*name).into(),
            reason: String::new(),
            count: p.counts[*i],
        })
        .collect();
    let mut overflows = 0;
    for (r, n) in p.drops.iter().enumerate().filter(|(_, n)| **n > 0) {
        let reason = drop_reason(r);
        if reason == LISTEN_OVERFLOW {
            overflows += n;
        }
        packets.push(PacketCount {
            outcome: "dropped".into(),
            reason,
            count: *n,
        });
    }
    let latency = (0..stage::COUNT)
        .map(|s| {
            let h = &p.hist[s];
            StageLatency::from_log2_ns(stage::NAMES[s], &h.buckets, count(h), h.sum_ns)
        })
        .collect();
    let accept_overflows = if proto == sockpath_ebpf::net::IPPROTO_TCP {
        vec![(format!(":{port}"), overflows)]
    } else {
        Vec::new()
    };
    PortStats {
        port,
        proto: crate::counts::view::proto_name(proto),
        packets,
        latency,
        accept_overflows,
    }
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::{
        net::{IPPROTO_TCP, IPPROTO_UDP},
        stats::port_key,
    };

    use super::*;

    #[test]
    fn only_packets_to_the_metrics_ports_with_every_outcome_and_drops_by_reason() {
        let mut udp = KernelPort::default();
        udp.counts[outcome::MATCHED] = 12;
        udp.counts[outcome::READ] = 10;
        udp.counts[outcome::DROPPED] = 2;
        udp.drops[3] = 2;
        udp.hist[stage::DEVICE_TO_READ].buckets[12] = 10;
        let mut tcp = KernelPort::default();
        tcp.counts[outcome::DROPPED] = 4;
        tcp.drops[40] = 4;
        let t = Totals {
            ports: [
                (port_key(53, IPPROTO_UDP, false), udp),
                (port_key(53, IPPROTO_UDP, true), udp),
                (port_key(80, IPPROTO_TCP, false), tcp),
                (port_key(9999, IPPROTO_TCP, false), tcp),
            ]
            .into(),
        };
        let names = |r: usize| match r {
            3 => "NO_SOCKET".to_string(),
            40 => LISTEN_OVERFLOW.to_string(),
            r => format!("reason {r}"),
        };
        let v = from_totals(&t, |p| p == 53 || p == 80, names);
        assert_eq!(v.len(), 2);
        let dns = &v[0];
        assert_eq!((dns.port, dns.proto.as_str()), (53, "udp"));
        let get = |p: &PortStats, o: &str, r: &str| {
            p.packets
                .iter()
                .find(|c| c.outcome == o && c.reason == r)
                .map(|c| c.count)
        };
        assert_eq!(get(dns, "matched", ""), Some(12));
        assert_eq!(get(dns, "read", ""), Some(10));
        assert_eq!(get(dns, "accepted", ""), Some(0));
        assert_eq!(get(dns, "dropped", "NO_SOCKET"), Some(2));
        assert_eq!(dns.latency.len(), stage::COUNT);
        assert_eq!(dns.latency[stage::DEVICE_TO_READ].count, 10);
        assert!(dns.accept_overflows.is_empty());
        assert_eq!(v[1].accept_overflows, vec![(":80".to_string(), 4)]);
    }
}
