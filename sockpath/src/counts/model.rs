//! The statistics as user space keeps them: per-port totals summed over CPUs, the difference
//! between two readings, and percentiles from the kernel's log2 histograms. Pure functions,
//! tested without a kernel.

use std::collections::BTreeMap;

use sockpath_ebpf::stats::{Hist, PortStats, HIST_BUCKETS};

/// Per-port statistics by key (`sockpath_ebpf::stats::port_key`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub ports: BTreeMap<u32, PortStats>,
}

/// Adds one CPU's statistics of a port to `into`. Maxima are the greatest of the CPUs'.
pub fn add(into: &mut PortStats, v: &PortStats) {
    for (a, b) in into.counts.iter_mut().zip(v.counts.iter()) {
        *a += b;
    }
    for (a, b) in into.drops.iter_mut().zip(v.drops.iter()) {
        *a += b;
    }
    for (a, b) in into.hist.iter_mut().zip(v.hist.iter()) {
        for (x, y) in a.buckets.iter_mut().zip(b.buckets.iter()) {
            *x += y;
        }
        a.sum_ns += b.sum_ns;
        a.max_ns = a.max_ns.max(b.max_ns);
    }
}

impl Totals {
    /// What was counted after `earlier` (a reading of the same programs). A maximum is the
    /// kernel's when it grew in between (a new greatest since load), else the upper bound of the
    /// highest bucket the interval filled.
    pub fn since(&self, earlier: &Totals) -> Totals {
        let zero = PortStats::default();
        let ports = self
            .ports
            .iter()
            .map(|(k, now)| {
                let before = earlier.ports.get(k).unwrap_or(&zero);
                (*k, port_since(now, before))
            })
            .collect();
        Totals { ports }
    }

    /// Every port's statistics added up (the `counts` and `drops`; histograms too).
    pub fn is_empty(&self) -> bool {
        self.ports
            .values()
            .all(|p| p.counts.iter().all(|c| *c == 0))
    }
}

fn port_since(now: &PortStats, before: &PortStats) -> PortStats {
    let mut d = PortStats::default();
    for (i, c) in d.counts.iter_mut().enumerate() {
        *c = now.counts[i].saturating_sub(before.counts[i]);
    }
    for (i, c) in d.drops.iter_mut().enumerate() {
        *c = now.drops[i].saturating_sub(before.drops[i]);
    }
    for (i, h) in d.hist.iter_mut().enumerate() {
        let (n, b) = (&now.hist[i], &before.hist[i]);
        for (j, x) in h.buckets.iter_mut().enumerate() {
            *x = n.buckets[j].saturating_sub(b.buckets[j]);
        }
        h.sum_ns = n.sum_ns.saturating_sub(b.sum_ns);
        h.max_ns = if n.max_ns > b.max_ns {
            n.max_ns
        } else {
            match top_bucket(h) {
                Some(top) => bucket_upper(top).min(n.max_ns),
                None => 0,
            }
        };
    }
    d
}

/// Observations in a histogram.
pub fn count(h: &Hist) -> u64 {
    h.buckets.iter().sum()
}

fn top_bucket(h: &Hist) -> Option<usize> {
    h.buckets.iter().rposition(|n| *n > 0)
}

/// The lowest value of bucket `b` (bucket 0 holds 0 and 1 ns).
fn bucket_lower(b: usize) -> u64 {
    if b == 0 {
        0
    } else {
        1u64 << b
    }
}

/// The greatest value of bucket `b` (the last bucket has no bound of its own).
fn bucket_upper(b: usize) -> u64 {
    if b + 1 >= HIST_BUCKETS {
        u64::MAX
    } else {
        (1u64 << (b + 1)) - 1
    }
}

/// The `q` quantile (0 < q <= 1) of a log2 histogram in ns: the bucket holding the
/// ceil(q*n)-th smallest observation, interpolated linearly inside it, and never above the
/// maximum. None for an empty histogram.
pub fn quantile(h: &Hist, q: f64) -> Option<u64> {
    let n = count(h);
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut below = 0u64;
    for (b, &c) in h.buckets.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if below + c >= rank {
            let lo = bucket_lower(b);
            let hi = bucket_upper(b).min(h.max_ns.max(lo));
            let frac = (rank - below) as f64 / c as f64;
            let v = lo as f64 + (hi - lo) as f64 * frac;
            return Some((v as u64).min(h.max_ns.max(lo)));
        }
        below += c;
    }
    None
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::stats::{log2_bucket, outcome, stage};

    use super::*;

    fn hist(values: &[u64]) -> Hist {
        let mut h = Hist::default();
        for &v in values {
            h.buckets[log2_bucket(v)] += 1;
            h.sum_ns += v;
            h.max_ns = h.max_ns.max(v);
        }
        h
    }

    #[test]
    fn quantiles_fall_in_the_right_bucket_and_never_above_the_maximum() {
        // 98 values around 3 µs, one at 100 µs, one at 2 ms.
        let mut v = vec![3000u64; 98];
        v.push(100_000);
        v.push(2_000_000);
        let h = hist(&v);
        let p50 = quantile(&h, 0.5).unwrap();
        assert!((2048..4096).contains(&p50), "{p50}");
        let p99 = quantile(&h, 0.99).unwrap();
        assert!((65_536..131_072).contains(&p99), "{p99}");
        assert_eq!(quantile(&h, 1.0), Some(2_000_000));
        assert_eq!(quantile(&Hist::default(), 0.5), None);
        // One value: every quantile is within its bucket and at most the value.
        let one = hist(&[5000]);
        for q in [0.01, 0.5, 0.99] {
            let x = quantile(&one, q).unwrap();
            assert!((4096..=5000).contains(&x), "{q}: {x}");
        }
        // Zero-length times land in bucket 0.
        assert_eq!(quantile(&hist(&[0, 0]), 0.5), Some(0));
    }

    #[test]
    fn an_interval_is_the_difference_and_its_maximum_is_bounded() {
        let mut a = PortStats::default();
        a.counts[outcome::MATCHED] = 10;
        a.drops[3] = 2;
        a.hist[stage::DEVICE_TO_READ] = hist(&[1000, 2000, 90_000]);
        let mut b = a;
        b.counts[outcome::MATCHED] = 15;
        b.drops[3] = 4;
        // Two more reads, both faster than the maximum so far.
        let more = hist(&[1500, 3000]);
        add(
            &mut b,
            &PortStats {
                hist: [Hist::default(), Hist::default(), more, Hist::default()],
                ..PortStats::default()
            },
        );
        let t0 = Totals {
            ports: [(7, a)].into(),
        };
        let t1 = Totals {
            ports: [(7, b), (8, PortStats::default())].into(),
        };
        let d = t1.since(&t0);
        let p = &d.ports[&7];
        assert_eq!(p.counts[outcome::MATCHED], 5);
        assert_eq!(p.drops[3], 2);
        let h = &p.hist[stage::DEVICE_TO_READ];
        assert_eq!(count(h), 2);
        assert_eq!(h.sum_ns, 4500);
        // The top bucket filled is [2048, 4096): its bound, not the 90 µs of before.
        assert_eq!(h.max_ns, 4095);
        assert!(d.ports.contains_key(&8));
        // A new maximum is the kernel's own.
        let mut c = b;
        c.hist[stage::DEVICE_TO_READ].buckets[log2_bucket(200_000)] += 1;
        c.hist[stage::DEVICE_TO_READ].max_ns = 200_000;
        let d2 = Totals {
            ports: [(7, c)].into(),
        }
        .since(&t1);
        assert_eq!(d2.ports[&7].hist[stage::DEVICE_TO_READ].max_ns, 200_000);
    }
}
