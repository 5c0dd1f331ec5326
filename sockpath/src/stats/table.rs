//! The table `sockpath stats` prints every interval: read at a glance, like top. One row per
//! port and direction with its counts by outcome; then each port's stage latencies; then drops
//! by reason and accept-queue overflows, only when there are any.

use std::fmt::Write as _;

use crate::counts::view::PortView;

/// What heads one interval's table.
pub struct Heading<'a> {
    /// Wall-clock time of the reading, "HH:MM:SS".
    pub time: &'a str,
    /// Seconds the interval lasted.
    pub seconds: f64,
    /// "interval", or "total" for the end's table of everything since the start.
    pub what: &'a str,
    pub events_lost: u64,
    pub stats_full: u64,
}

/// A time in ns the way a person reads it: 850ns, 3.2µs, 12.4ms, 1.20s.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

/// The columns of the counts table: header, width, value.
type Column = (&'static str, fn(&PortView) -> u64);

const COLUMNS: &[Column] = &[
    ("MATCHED", |p| p.matched),
    ("QUEUED", |p| p.queued),
    ("ACCEPT-Q", |p| p.accept_queued),
    ("READ", |p| p.read),
    ("ACCEPTED", |p| p.accepted),
    ("DROPPED", |p| p.dropped),
    ("RESET", |p| p.reset_sent),
    ("ICMP", |p| p.icmp_sent),
    ("Q-FULL", |p| p.queue_full),
];
const CONSUMED: Column = ("CONSUMED", |p| p.consumed);

/// One interval's table.
pub fn render(h: &Heading<'_>, ports: &[PortView]) -> String {
    let mut out = String::new();
    let matched: u64 = ports.iter().map(|p| p.matched).sum();
    let _ = write!(
        out,
        "{} {} {:.2} s: {} packets matched",
        h.time, h.what, h.seconds, matched
    );
    if h.events_lost > 0 {
        let _ = write!(out, ", {} events lost", h.events_lost);
    }
    if h.stats_full > 0 {
        let _ = write!(
            out,
            ", {} packets of ports beyond the statistics' capacity not counted",
            h.stats_full
        );
    }
    out.push('\n');
    if ports.is_empty() {
        return out;
    }
    let label_w = ports
        .iter()
        .map(|p| p.label().chars().count())
        .max()
        .unwrap_or(0)
        .max("PORT".len());
    let mut columns: Vec<&Column> = COLUMNS.iter().collect();
    if ports.iter().any(|p| p.consumed > 0) {
        columns.push(&CONSUMED);
    }
    let widths: Vec<usize> = columns
        .iter()
        .map(|(name, value)| {
            ports
                .iter()
                .map(|p| value(p).to_string().len())
                .max()
                .unwrap_or(0)
                .max(name.len())
        })
        .collect();
    let _ = write!(out, "{:<label_w$}", "PORT");
    for ((name, _), w) in columns.iter().zip(&widths) {
        let _ = write!(out, "  {name:>w$}");
    }
    out.push('\n');
    for p in ports {
        let _ = write!(out, "{:<label_w$}", p.label());
        for ((_, value), w) in columns.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", value(p));
        }
        out.push('\n');
    }

    if ports.iter().any(|p| !p.latency.is_empty()) {
        let stage_w = "device -> queue".len();
        let _ = writeln!(
            out,
            "{:<label_w$}  {:<stage_w$}  {:>8}  {:>8}  {:>8}  {:>8}",
            "LATENCY", "STAGE", "N", "P50", "P99", "MAX"
        );
        for p in ports {
            for (i, s) in p.latency.iter().enumerate() {
                let label = if i == 0 { p.label() } else { String::new() };
                let _ = writeln!(
                    out,
                    "{label:<label_w$}  {:<stage_w$}  {:>8}  {:>8}  {:>8}  {:>8}",
                    s.stage,
                    s.count,
                    duration(s.p50_ns),
                    duration(s.p99_ns),
                    duration(s.max_ns),
                );
            }
        }
    }
    for p in ports.iter().filter(|p| !p.drops.is_empty()) {
        let reasons: Vec<String> = p.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "drops {}: {}", p.label(), reasons.join(", "));
    }
    for p in ports.iter().filter(|p| p.accept_overflows > 0) {
        let _ = writeln!(
            out,
            "accept queue overflows {}: {}",
            p.label(),
            p.accept_overflows
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::view::StageView;

    fn port(port: u16, proto: &str, direction: &'static str) -> PortView {
        PortView {
            port,
            proto: proto.into(),
            direction,
            matched: 0,
            queued: 0,
            accept_queued: 0,
            read: 0,
            accepted: 0,
            dropped: 0,
            reset_sent: 0,
            icmp_sent: 0,
            queue_full: 0,
            consumed: 0,
            drops: vec![],
            accept_overflows: 0,
            latency: vec![],
        }
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(3_240), "3.2µs");
        assert_eq!(duration(12_400_000), "12.4ms");
        assert_eq!(duration(1_204_000_000), "1.20s");
    }

    #[test]
    fn a_table_of_udp_read_and_a_closed_port() {
        let mut read = port(4000, "udp", "to");
        read.matched = 1000;
        read.queued = 1000;
        read.read = 1000;
        read.latency = vec![
            StageView {
                stage: "device -> queue",
                count: 1000,
                p50_ns: 3_100,
                p99_ns: 8_400,
                max_ns: 12_000,
            },
            StageView {
                stage: "queue -> read",
                count: 1000,
                p50_ns: 20_200,
                p99_ns: 81_000,
                max_ns: 1_500_000,
            },
        ];
        let mut closed = port(4001, "udp", "to");
        closed.matched = 10;
        closed.dropped = 10;
        closed.icmp_sent = 10;
        closed.drops = vec![("NO_SOCKET".into(), 10)];
        closed.latency = vec![StageView {
            stage: "device -> drop",
            count: 10,
            p50_ns: 5_000,
            p99_ns: 7_000,
            max_ns: 7_100,
        }];
        let mut listener = port(80, "tcp", "to");
        listener.matched = 7;
        listener.accept_queued = 2;
        listener.accepted = 2;
        listener.dropped = 3;
        listener.drops = vec![("TCP_LISTEN_OVERFLOW".into(), 3)];
        listener.accept_overflows = 3;
        let text = render(
            &Heading {
                time: "10:00:01",
                seconds: 1.0,
                what: "interval",
                events_lost: 0,
                stats_full: 0,
            },
            &[listener, read, closed],
        );
        let want = "\
10:00:01 interval 1.00 s: 1017 packets matched
PORT         MATCHED  QUEUED  ACCEPT-Q  READ  ACCEPTED  DROPPED  RESET  ICMP  Q-FULL
to 80/tcp          7       0         2     0         2        3      0     0       0
to 4000/udp     1000    1000         0  1000         0        0      0     0       0
to 4001/udp       10       0         0     0         0       10      0    10       0
LATENCY      STAGE                   N       P50       P99       MAX
to 4000/udp  device -> queue      1000     3.1µs     8.4µs    12.0µs
             queue -> read        1000    20.2µs    81.0µs     1.5ms
to 4001/udp  device -> drop         10     5.0µs     7.0µs     7.1µs
drops to 80/tcp: TCP_LISTEN_OVERFLOW 3
drops to 4001/udp: NO_SOCKET 10
accept queue overflows to 80/tcp: 3
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn an_empty_interval_is_one_line_and_losses_are_said() {
        let text = render(
            &Heading {
                time: "10:00:02",
                seconds: 0.5,
                what: "total",
                events_lost: 4,
                stats_full: 0,
            },
            &[],
        );
        assert_eq!(
            text,
            "10:00:02 total 0.50 s: 0 packets matched, 4 events lost\n"
        );
        let mut c = port(53, "udp", "from");
        c.matched = 1;
        c.consumed = 1;
        let text = render(
            &Heading {
                time: "t",
                seconds: 1.0,
                what: "interval",
                events_lost: 0,
                stats_full: 0,
            },
            &[c],
        );
        assert!(text.contains("CONSUMED"), "{text}");
        assert!(text.contains("from 53/udp"), "{text}");
    }
}
