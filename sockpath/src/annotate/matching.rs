//! Pairing a capture's frames with a log's journeys: the same packet has the same headers
//! (`PacketKey`) and timestamps within the tolerance. Among several candidates, the pair whose
//! time difference is closest to the capture's typical offset wins; each frame gets at most one
//! journey and each journey at most one frame.

use std::collections::HashMap;

use super::key::PacketKey;

/// A frame or a journey, as matching sees it.
#[derive(Clone, Copy, Debug)]
pub struct Timed<'a> {
    pub ts_ns: Option<u64>,
    pub key: Option<&'a PacketKey>,
}

/// Candidates kept per frame, nearest in time first: bounds the work when a flood of packets
/// shares one key (IPv6 datagrams of one size between two ports).
const MAX_CANDIDATES: usize = 16;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Matching {
    /// For each frame, the index of its journey.
    pub frame_journey: Vec<Option<usize>>,
    /// For each journey, the index of its frame.
    pub journey_frame: Vec<Option<usize>>,
    /// Capture time minus journey time of the frames with exactly one candidate (the
    /// typical offset), nanoseconds; 0 if there were none.
    pub typical_offset_ns: i64,
}

/// Why a frame (or journey) has no partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// It has no timestamp or no IP headers to match on.
    Unusable(String),
    /// Nothing on the other side has the same headers.
    NoSameHeaders,
    /// The nearest one with the same headers is this far away (other side's index, other's
    /// time minus this one's, ns), beyond the tolerance.
    TooFar { other: usize, dt_ns: i64 },
    /// The nearest one with the same headers went to another (other side's index, its
    /// partner on this side, time difference).
    Taken {
        other: usize,
        partner: usize,
        dt_ns: i64,
    },
}

fn dt(a: u64, b: u64) -> i64 {
    (i128::from(a) - i128::from(b)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// Items of `side` by key, sorted by time.
fn index<'a>(side: &[Timed<'a>]) -> HashMap<&'a PacketKey, Vec<(u64, usize)>> {
    let mut m: HashMap<&PacketKey, Vec<(u64, usize)>> = HashMap::new();
    for (i, t) in side.iter().enumerate() {
        if let (Some(ts), Some(k)) = (t.ts_ns, t.key) {
            m.entry(k).or_default().push((ts, i));
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

/// The items of `list` within `tol` of `ts`, as (index, other time minus ts).
fn window(list: &[(u64, usize)], ts: u64, tol: u64) -> impl Iterator<Item = (usize, i64)> + '_ {
    let lo = list.partition_point(|(t, _)| *t < ts.saturating_sub(tol));
    list[lo..]
        .iter()
        .take_while(move |(t, _)| *t <= ts.saturating_add(tol))
        .map(move |(t, i)| (*i, dt(*t, ts)))
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

pub fn match_up(frames: &[Timed], journeys: &[Timed], tolerance_ns: u64) -> Matching {
    let by_key = index(journeys);
    // Candidates per frame: (journey, frame time - journey time).
    let mut cands: Vec<Vec<(usize, i64)>> = vec![Vec::new(); frames.len()];
    let mut per_journey = vec![0usize; journeys.len()];
    for (fi, f) in frames.iter().enumerate() {
        let (Some(ts), Some(k)) = (f.ts_ns, f.key) else {
            continue;
        };
        let Some(list) = by_key.get(k) else { continue };
        let mut c: Vec<(usize, i64)> = window(list, ts, tolerance_ns)
            .map(|(ji, d)| (ji, -d))
            .collect();
        c.sort_by_key(|(_, d)| d.unsigned_abs());
        c.truncate(MAX_CANDIDATES);
        for (ji, _) in &c {
            per_journey[*ji] += 1;
        }
        cands[fi] = c;
    }
    // The offset between the two clocks' views of a packet, from the unambiguous pairs; the
    // ambiguous ones are then decided by closeness to it rather than to zero.
    let typical = median(
        cands
            .iter()
            .filter(|c| c.len() == 1 && per_journey[c[0].0] == 1)
            .map(|c| c[0].1)
            .collect(),
    )
    .unwrap_or(0);
    let mut pairs: Vec<(u64, usize, usize)> = cands
        .iter()
        .enumerate()
        .flat_map(|(fi, c)| {
            c.iter()
                .map(move |(ji, d)| ((*d - typical).unsigned_abs(), fi, *ji))
        })
        .collect();
    pairs.sort_unstable();
    let mut m = Matching {
        frame_journey: vec![None; frames.len()],
        journey_frame: vec![None; journeys.len()],
        typical_offset_ns: typical,
    };
    for (_, fi, ji) in pairs {
        if m.frame_journey[fi].is_none() && m.journey_frame[ji].is_none() {
            m.frame_journey[fi] = Some(ji);
            m.journey_frame[ji] = Some(fi);
        }
    }
    m
}

/// Why item `i` of `this` side has no partner on `other` side; `partners` is the other
/// side's assignment (for each of its items, its partner here).
pub fn explain(
    i: usize,
    this: &[Timed],
    other: &[Timed],
    partners: &[Option<usize>],
    tolerance_ns: u64,
) -> Unmatched {
    let me = this[i];
    let (Some(ts), Some(key)) = (me.ts_ns, me.key) else {
        return Unmatched::Unusable(if me.ts_ns.is_none() {
            "no timestamp".into()
        } else {
            "no IP headers".into()
        });
    };
    let nearest = other
        .iter()
        .enumerate()
        .filter(|(_, o)| o.key == Some(key))
        .filter_map(|(oi, o)| o.ts_ns.map(|t| (oi, dt(t, ts))))
        .min_by_key(|(_, d)| d.unsigned_abs());
    match nearest {
        None => Unmatched::NoSameHeaders,
        Some((other, dt_ns)) if dt_ns.unsigned_abs() > tolerance_ns => {
            Unmatched::TooFar { other, dt_ns }
        }
        Some((other, dt_ns)) => match partners[other] {
            Some(partner) => Unmatched::Taken {
                other,
                partner,
                dt_ns,
            },
            // Cannot happen after match_up: both would have been free. Say what is known.
            None => Unmatched::TooFar { other, dt_ns },
        },
    }
}

/// Minimum, median and maximum of the matched pairs' capture time minus journey time.
pub fn offsets(m: &Matching, frames: &[Timed], journeys: &[Timed]) -> Option<(i64, i64, i64)> {
    let v: Vec<i64> = m
        .frame_journey
        .iter()
        .enumerate()
        .filter_map(|(fi, ji)| Some(dt(frames[fi].ts_ns?, journeys[(*ji)?].ts_ns?)))
        .collect();
    let min = *v.iter().min()?;
    let max = *v.iter().max()?;
    Some((min, median(v)?, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{fixture::*, Headers};

    fn key(f: &[u8]) -> PacketKey {
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        PacketKey::of_headers(&Headers::parse(ethertype, 14, f).unwrap())
    }

    fn t(ts: u64, k: &PacketKey) -> Timed<'_> {
        Timed {
            ts_ns: Some(ts),
            key: Some(k),
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn same_headers_within_tolerance_pair_up_one_to_one() {
        let syn = key(&tcp4(4444, 4000, 1, None, "S", &[]));
        let synack = key(&tcp4(4000, 4444, 9, Some(2), "SA", &[]));
        let frames = [t(1000, &syn), t(2000, &synack)];
        let journeys = [t(2005, &synack), t(1003, &syn)];
        let m = match_up(&frames, &journeys, MS);
        assert_eq!(m.frame_journey, [Some(1), Some(0)]);
        assert_eq!(m.journey_frame, [Some(1), Some(0)]);
        assert_eq!(m.typical_offset_ns, -3);
        assert_eq!(offsets(&m, &frames, &journeys), Some((-5, -3, -3)));
    }

    #[test]
    fn different_seq_flags_or_ports_never_match() {
        let a = key(&tcp4(4444, 4000, 1, None, "S", &[]));
        let seq = key(&tcp4(4444, 4000, 2, None, "S", &[]));
        let flags = key(&tcp4(4444, 4000, 1, None, "SR", &[]));
        let port = key(&tcp4(4445, 4000, 1, None, "S", &[]));
        let frames = [t(10, &a)];
        let journeys = [t(10, &seq), t(10, &flags), t(10, &port)];
        let m = match_up(&frames, &journeys, MS);
        assert_eq!(m.frame_journey, [None]);
        assert_eq!(
            explain(0, &frames, &journeys, &m.journey_frame, MS),
            Unmatched::NoSameHeaders
        );
    }

    #[test]
    fn identical_datagrams_go_to_the_nearest_in_time_after_the_typical_offset() {
        // Four IPv6 datagrams of one size between the same ports, 10 µs apart; the capture
        // stamps each 6 µs before sockpath (more than half the spacing).
        let d = key(&udp6(5000, 4000, b"hello"));
        let u = key(&udp4(5000, 4001, b"x"));
        let frames: Vec<Timed> = [0, 10_000, 20_000, 30_000]
            .iter()
            .map(|ts| t(1_000_000 + ts, &d))
            .chain([t(5_000_000, &u)])
            .collect();
        let journeys: Vec<Timed> = [0, 10_000, 20_000, 30_000]
            .iter()
            .map(|ts| t(1_006_000 + ts, &d))
            .chain([t(5_006_000, &u)])
            .collect();
        let m = match_up(&frames, &journeys, MS);
        assert_eq!(m.typical_offset_ns, -6_000);
        assert_eq!(
            m.frame_journey,
            [Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
    }

    #[test]
    fn beyond_tolerance_and_second_copies_are_explained() {
        let a = key(&tcp4(4444, 4000, 1, None, "S", &[]));
        // The same SYN captured twice (a capture on "any" sees it leave and arrive), and a
        // journey 2 s later than a third frame.
        let frames = [t(1000, &a), t(1500, &a), t(10 * 1000 * MS, &a)];
        let journeys = [t(1200, &a), t(12 * 1000 * MS, &a)];
        let m = match_up(&frames, &journeys, 50 * MS);
        assert_eq!(m.frame_journey, [Some(0), None, None]);
        assert_eq!(
            explain(1, &frames, &journeys, &m.journey_frame, 50 * MS),
            Unmatched::Taken {
                other: 0,
                partner: 0,
                dt_ns: -300
            }
        );
        assert_eq!(
            explain(2, &frames, &journeys, &m.journey_frame, 50 * MS),
            Unmatched::TooFar {
                other: 1,
                dt_ns: 2000 * MS as i64
            }
        );
        assert_eq!(
            explain(1, &journeys, &frames, &m.frame_journey, 50 * MS),
            Unmatched::TooFar {
                other: 2,
                dt_ns: -2000 * MS as i64
            }
        );
    }

    #[test]
    fn frames_without_headers_or_time_are_unusable() {
        let a = key(&tcp4(4444, 4000, 1, None, "S", &[]));
        let frames = [
            Timed {
                ts_ns: Some(1),
                key: None,
            },
            Timed {
                ts_ns: None,
                key: Some(&a),
            },
        ];
        let journeys = [t(1, &a)];
        let m = match_up(&frames, &journeys, MS);
        assert_eq!(m.frame_journey, [None, None]);
        assert!(matches!(
            explain(0, &frames, &journeys, &m.journey_frame, MS),
            Unmatched::Unusable(_)
        ));
    }
}
