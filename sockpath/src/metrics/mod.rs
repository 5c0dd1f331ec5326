//! The daemon's Prometheus metrics: a snapshot of what the kernel counted, taken at each scrape
//! and written in the Prometheus text format (prometheus-client's encoder), served on
//! `/metrics` by `http`.
//!
//! Counters are the kernel's own, read at the scrape (no sampling in between); a detach (the
//! daemon serving nobody) would reset the kernel's maps, so the engine carries what they held
//! over into the next attachment and the counters never go backwards.

pub mod http;
pub mod ports;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};

/// What `/metrics` shows, read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The daemon's programs are attached now.
    pub attached: bool,
    /// Clients watching through the daemon now.
    pub watchers: u64,
    /// Packets the device-receive hook saw, before any filtering.
    pub packets_seen: u64,
    /// Packets in the daemon's watched set: the metrics ports and every watcher's filter.
    pub packets_matched: u64,
    /// Events the kernel could not put in the ring buffer.
    pub events_lost: u64,
    /// Packet headers the kernel could not read.
    pub read_errors: u64,
    /// The in-kernel statistics of the metrics ports, one entry per port (empty when the
    /// kernel keeps none).
    pub ports: Vec<PortStats>,
}

/// The in-kernel statistics of one watched port.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortStats {
    pub port: u16,
    /// "tcp", "udp".
    pub proto: String,
    /// Packets by how their journey ended ("delivered", "dropped", ...) and, for a drop, the
    /// kernel's reason (empty otherwise).
    pub packets: Vec<PacketCount>,
    /// Time from device receive to each stage.
    pub latency: Vec<StageLatency>,
    /// Connections refused because a listener's accept queue was full, per listener.
    pub accept_overflows: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketCount {
    pub outcome: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageLatency {
    pub stage: String,
    /// (upper bound in seconds, observations in this bucket: above the previous bound, at or
    /// under this one), in increasing bounds, as the kernel counts them; the encoder makes
    /// them cumulative and adds `+Inf` (`count`).
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

/// The bounds the latency histograms are written with: powers of two nanoseconds from 2^10
/// (about 1 µs) to 2^34 (about 17 s). Fixed, so that every scrape has the same series.
const LATENCY_BOUNDS_LOG2: std::ops::RangeInclusive<usize> = 10..=34;

impl StageLatency {
    /// From a log2 histogram of nanoseconds as the kernel keeps it (bucket b: [2^b, 2^(b+1))
    /// ns) with its exact count and sum. Bucket b goes under the bound 2^(b+1) ns: the ones
    /// below the first bound under it, the ones above the last only under `+Inf`.
    pub fn from_log2_ns(stage: &str, buckets: &[u64], count: u64, sum_ns: u64) -> Self {
        let first = *LATENCY_BOUNDS_LOG2.start();
        let mut out: Vec<(f64, u64)> = LATENCY_BOUNDS_LOG2
            .map(|e| ((1u64 << e) as f64 / 1e9, 0))
            .collect();
        for (b, &n) in buckets.iter().enumerate() {
            let upper = b + 1;
            if LATENCY_BOUNDS_LOG2.contains(&upper) || upper < first {
                out[upper.saturating_sub(first)].1 += n;
            }
        }
        Self {
            stage: stage.to_string(),
            buckets: out,
            sum_seconds: sum_ns as f64 / 1e9,
            count,
        }
    }
}

/// The snapshot as a prometheus-client collector: encoded once, at the scrape that took it.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        gauge(
            &mut enc,
            "sockpath_attached",
            "1 while the daemon's eBPF programs are attached",
            i64::from(s.attached),
        )?;
        gauge(
            &mut enc,
            "sockpath_watchers",
            "Clients watching through the daemon",
            s.watchers as i64,
        )?;
        counter(
            &mut enc,
            "sockpath_packets_seen",
            "Packets the device-receive hook saw, before filtering",
            s.packets_seen,
        )?;
        counter(
            &mut enc,
            "sockpath_packets_matched",
            "Packets in the daemon's watched set (the metrics ports and every watcher's filter)",
            s.packets_matched,
        )?;
        counter(
            &mut enc,
            "sockpath_events_lost",
            "Events the kernel could not put in the ring buffer (the journeys they belonged to are incomplete)",
            s.events_lost,
        )?;
        counter(
            &mut enc,
            "sockpath_read_errors",
            "Packets whose headers the kernel could not read",
            s.read_errors,
        )?;
        if s.ports.iter().any(|p| !p.packets.is_empty()) {
            let mut m = enc.encode_descriptor(
                "sockpath_packets",
                "Packets to or from a metrics port, by how their journey ended and, for drops, the kernel's reason",
                None,
                MetricType::Counter,
            )?;
            for p in &s.ports {
                let port = p.port.to_string();
                for c in &p.packets {
                    let labels = [
                        ("port", port.as_str()),
                        ("proto", p.proto.as_str()),
                        ("outcome", c.outcome.as_str()),
                        ("reason", c.reason.as_str()),
                    ];
                    ConstCounter::new(c.count).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        if s.ports.iter().any(|p| !p.latency.is_empty()) {
            let mut m = enc.encode_descriptor(
                "sockpath_stage_latency_seconds",
                "Time between two stages of a packet's journey (device -> queue, queue -> read, device -> read, device -> drop), per port",
                None,
                MetricType::Histogram,
            )?;
            for p in &s.ports {
                let port = p.port.to_string();
                for l in &p.latency {
                    let labels = [
                        ("port", port.as_str()),
                        ("proto", p.proto.as_str()),
                        ("stage", l.stage.as_str()),
                    ];
                    m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                        l.sum_seconds,
                        l.count,
                        &l.buckets,
                        None,
                    )?;
                }
            }
        }
        if s.ports.iter().any(|p| !p.accept_overflows.is_empty()) {
            let mut m = enc.encode_descriptor(
                "sockpath_accept_queue_overflows",
                "Connections a listener on a metrics port refused because its accept queue was full",
                None,
                MetricType::Counter,
            )?;
            for p in &s.ports {
                let port = p.port.to_string();
                for (listener, n) in &p.accept_overflows {
                    let labels = [
                        ("port", port.as_str()),
                        ("proto", p.proto.as_str()),
                        ("listener", listener.as_str()),
                    ];
                    ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// The snapshot in the Prometheus text format (version 0.0.4).
pub fn render(s: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(s)));
    let mut out = String::new();
    // Writing to a String cannot fail; the encoder's own errors are formatting errors.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::warn!("encoding the metrics failed: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_the_kernel_keeps_are_written_in_the_text_format() {
        let text = render(Snapshot {
            attached: true,
            watchers: 2,
            packets_seen: 1000,
            packets_matched: 40,
            events_lost: 3,
            read_errors: 0,
            ports: vec![],
        });
        for line in [
            "# TYPE sockpath_attached gauge",
            "sockpath_attached 1",
            "sockpath_watchers 2",
            "# TYPE sockpath_packets_seen_total counter",
            "sockpath_packets_seen_total 1000",
            "sockpath_packets_matched_total 40",
            "sockpath_events_lost_total 3",
            "sockpath_read_errors_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        // No per-port families without per-port statistics.
        assert!(!text.contains("sockpath_packets_total"), "{text}");
    }

    #[test]
    fn log2_histograms_keep_fixed_bounds() {
        let mut buckets = [0u64; 64];
        buckets[3] = 2; // 8-15 ns: under the first bound, 1024 ns
        buckets[12] = 5; // 4096-8191 ns: under 8192 ns
        buckets[40] = 1; // about 18 minutes: only under +Inf
        let l = StageLatency::from_log2_ns("device -> read", &buckets, 8, 20_000);
        assert_eq!(l.buckets.len(), 25);
        assert_eq!(l.buckets[0], (1024e-9, 2));
        assert_eq!(l.buckets[3], (8192e-9, 5));
        assert_eq!(l.buckets.iter().map(|b| b.1).sum::<u64>(), 7);
        assert_eq!(l.count, 8);
        assert!((l.sum_seconds - 20e-6).abs() < 1e-12);
        let text = render(Snapshot {
            ports: vec![PortStats {
                port: 80,
                proto: "tcp".into(),
                latency: vec![l],
                ..PortStats::default()
            }],
            ..Snapshot::default()
        });
        assert!(text.contains(r#"sockpath_stage_latency_seconds_bucket{port="80",proto="tcp",stage="device -> read",le="+Inf"} 8"#), "{text}");
    }

    #[test]
    fn per_port_statistics_are_labelled_families() {
        let text = render(Snapshot {
            ports: vec![PortStats {
                port: 443,
                proto: "tcp".into(),
                packets: vec![
                    PacketCount {
                        outcome: "delivered".into(),
                        reason: String::new(),
                        count: 10,
                    },
                    PacketCount {
                        outcome: "dropped".into(),
                        reason: "TCP_LISTEN_OVERFLOW".into(),
                        count: 2,
                    },
                ],
                latency: vec![StageLatency {
                    stage: "socket queue".into(),
                    buckets: vec![(1e-5, 4), (1e-4, 5)],
                    sum_seconds: 0.0004,
                    count: 10,
                }],
                accept_overflows: vec![("0.0.0.0:443".into(), 2)],
            }],
            ..Snapshot::default()
        });
        for line in [
            "# TYPE sockpath_packets_total counter",
            r#"sockpath_packets_total{port="443",proto="tcp",outcome="delivered",reason=""} 10"#,
            r#"sockpath_packets_total{port="443",proto="tcp",outcome="dropped",reason="TCP_LISTEN_OVERFLOW"} 2"#,
            "# TYPE sockpath_stage_latency_seconds histogram",
            r#"sockpath_stage_latency_seconds_bucket{port="443",proto="tcp",stage="socket queue",le="1e-05"} 4"#,
            r#"sockpath_stage_latency_seconds_bucket{port="443",proto="tcp",stage="socket queue",le="0.0001"} 9"#,
            r#"sockpath_stage_latency_seconds_bucket{port="443",proto="tcp",stage="socket queue",le="+Inf"} 10"#,
            r#"sockpath_stage_latency_seconds_count{port="443",proto="tcp",stage="socket queue"} 10"#,
            r#"sockpath_accept_queue_overflows_total{port="443",proto="tcp",listener="0.0.0.0:443"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
    }
}
