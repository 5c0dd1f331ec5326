//! The statistics as the daemon's API carries them to a `sockpath stats` client: the raw
//! per-port counters (not their words), so the client takes differences and percentiles
//! exactly as a standalone run does. Only what is not zero is sent: a port's 160 drop reasons
//! and 4 x 40 histogram buckets are mostly empty.

use serde::{Deserialize, Serialize};
use sockpath_ebpf::stats::{PortStats, DROP_REASONS, HIST_BUCKETS};

use super::model::Totals;

/// Every port's counters, as sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTotals {
    pub ports: Vec<WirePort>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WirePort {
    /// `sockpath_ebpf::stats::port_key`: port, protocol and direction.
    pub key: u32,
    /// By outcome (`sockpath_ebpf::stats::outcome`), in order.
    pub counts: Vec<u64>,
    /// (drop reason, count) where the count is not zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<(u16, u64)>,
    /// By stage (`sockpath_ebpf::stats::stage`), in order.
    pub hist: Vec<WireHist>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireHist {
    /// (bucket, count) where the count is not zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<(u8, u64)>,
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl From<&Totals> for WireTotals {
    fn from(t: &Totals) -> Self {
        let ports = t
            .ports
            .iter()
            .map(|(key, p)| WirePort {
                key: *key,
                counts: p.counts.to_vec(),
                drops: nonzero(&p.drops).map(|(i, n)| (i as u16, n)).collect(),
                hist: p
                    .hist
                    .iter()
                    .map(|h| WireHist {
                        buckets: nonzero(&h.buckets).map(|(i, n)| (i as u8, n)).collect(),
                        sum_ns: h.sum_ns,
                        max_ns: h.max_ns,
                    })
                    .collect(),
            })
            .collect();
        Self { ports }
    }
}

fn nonzero(v: &[u64]) -> impl Iterator<Item = (usize, u64)> + '_ {
    v.iter()
        .enumerate()
        .filter(|(_, n)| **n != 0)
        .map(|(i, n)| (i, *n))
}

impl TryFrom<&WireTotals> for Totals {
    type Error = String;

    /// The counters back; a reading with more outcomes, stages, reasons or buckets than this
    /// build knows (another version of sockpath) is an error, not a silent loss.
    fn try_from(w: &WireTotals) -> Result<Self, String> {
        let mut t = Totals::default();
        for p in &w.ports {
            let mut s = PortStats::default();
            if p.counts.len() != s.counts.len() || p.hist.len() != s.hist.len() {
                return Err(format!(
                    "a reading with {} outcomes and {} stages; this sockpath knows {} and {}",
                    p.counts.len(),
                    p.hist.len(),
                    s.counts.len(),
                    s.hist.len()
                ));
            }
            s.counts.copy_from_slice(&p.counts);
            for (r, n) in &p.drops {
                *s.drops
                    .get_mut(usize::from(*r))
                    .ok_or_else(|| format!("drop reason slot {r} is past {DROP_REASONS}"))? = *n;
            }
            for (h, wh) in s.hist.iter_mut().zip(&p.hist) {
                for (b, n) in &wh.buckets {
                    *h.buckets
                        .get_mut(usize::from(*b))
                        .ok_or_else(|| format!("bucket {b} is past {HIST_BUCKETS}"))? = *n;
                }
                h.sum_ns = wh.sum_ns;
                h.max_ns = wh.max_ns;
            }
            t.ports.insert(p.key, s);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::stats::{outcome, port_key, stage};

    use super::*;

    fn sample() -> Totals {
        let mut t = Totals::default();
        let mut p = PortStats::default();
        p.counts[outcome::MATCHED] = 7;
        p.counts[outcome::READ] = 5;
        p.drops[6] = 2;
        p.drops[DROP_REASONS - 1] = 1;
        p.hist[stage::COUNT - 1].buckets[HIST_BUCKETS - 1] = 3;
        p.hist[0].buckets[12] = 4;
        p.hist[0].sum_ns = 40_000;
        p.hist[0].max_ns = 9_000;
        t.ports.insert(port_key(4000, 17, false), p);
        t.ports.insert(port_key(443, 6, true), PortStats::default());
        t
    }

    #[test]
    fn a_reading_sent_reads_back_the_same() {
        let t = sample();
        let w = WireTotals::from(&t);
        let json = serde_json::to_string(&w).unwrap();
        let back: WireTotals = serde_json::from_str(&json).unwrap();
        assert_eq!(Totals::try_from(&back), Ok(t));
        // Only what is counted travels.
        assert_eq!(w.ports[0].drops, [(6, 2), (DROP_REASONS as u16 - 1, 1)]);
        assert!(json.len() < 600, "{} bytes: {json}", json.len());
    }

    #[test]
    fn a_reading_this_build_cannot_hold_is_an_error() {
        let mut w = WireTotals::from(&sample());
        w.ports[0].drops.push((DROP_REASONS as u16, 1));
        assert!(Totals::try_from(&w).unwrap_err().contains("past"));
        let mut w = WireTotals::from(&sample());
        w.ports[0].hist[0].buckets.push((HIST_BUCKETS as u8, 1));
        assert!(Totals::try_from(&w).unwrap_err().contains("past"));
        let mut w = WireTotals::from(&sample());
        w.ports[0].counts.push(1);
        assert!(Totals::try_from(&w).unwrap_err().contains("outcomes"));
    }
}
