//! What `annotate` tells the user: how many frames and journeys paired up, how far apart the
//! two sides' timestamps were, and each frame with no journey and journey with no frame, with
//! the reason.

use serde::Serialize;

use super::matching::Unmatched;
use crate::journey::clock::time_of_day;

/// Unmatched items listed in the text report; `--json` lists all.
const LISTED: usize = 20;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Offsets {
    pub min: i64,
    pub median: i64,
    pub max: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnmatchedFrame {
    /// Wireshark's frame number.
    pub frame: usize,
    pub ts_ns: Option<u64>,
    /// The frame's headers, as a capture summary line (absent if not IP).
    pub packet: Option<String>,
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct UnmatchedJourney {
    pub id: u64,
    pub ts_ns: u64,
    pub packet: Option<String>,
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub capture: String,
    pub format: &'static str,
    pub journey_log: String,
    pub output: String,
    pub frames: usize,
    pub journeys: usize,
    pub matched: usize,
    pub frames_without_journey: usize,
    pub journeys_without_frame: usize,
    pub tolerance_ms: f64,
    /// Capture time minus journey time over the matched pairs, nanoseconds.
    pub offset_ns: Option<Offsets>,
    pub unmatched_frames: Vec<UnmatchedFrame>,
    pub unmatched_journeys: Vec<UnmatchedJourney>,
    pub warnings: Vec<String>,
}

/// A signed time difference for people: "+3.0µs", "-1.250ms", "+2.000s".
pub fn signed(ns: i64) -> String {
    let sign = if ns < 0 { '-' } else { '+' };
    let a = ns.unsigned_abs() as f64;
    if a < 1e6 {
        format!("{sign}{:.1}µs", a / 1e3)
    } else if a < 1e9 {
        format!("{sign}{:.3}ms", a / 1e6)
    } else {
        format!("{sign}{:.3}s", a / 1e9)
    }
}

fn tolerance(ms: f64) -> String {
    format!("{ms} ms")
}

/// Why a frame has no journey. `id` names a journey by its index, `tol_ms` is the tolerance.
pub fn frame_why(u: &Unmatched, id: impl Fn(usize) -> u64, tol_ms: f64) -> String {
    match u {
        Unmatched::Unusable(why) => why.clone(),
        Unmatched::NoSameHeaders => "no journey has the same headers".into(),
        Unmatched::TooFar { other, dt_ns } => format!(
            "journey {} has the same headers but is {} away (tolerance {})",
            id(*other),
            signed(*dt_ns),
            tolerance(tol_ms)
        ),
        Unmatched::Taken {
            other,
            partner,
            dt_ns,
        } => format!(
            "journey {} has the same headers ({} away) but is frame {}'s: a second copy of that packet?",
            id(*other),
            signed(*dt_ns),
            partner + 1
        ),
    }
}

/// Why a journey has no frame. `id` names a journey by its index.
pub fn journey_why(u: &Unmatched, id: impl Fn(usize) -> u64, tol_ms: f64) -> String {
    match u {
        Unmatched::Unusable(_) => "no packet headers in the journey log".into(),
        Unmatched::NoSameHeaders => "no frame has the same headers".into(),
        Unmatched::TooFar { other, dt_ns } => format!(
            "frame {} has the same headers but is {} away (tolerance {})",
            other + 1,
            signed(*dt_ns),
            tolerance(tol_ms)
        ),
        Unmatched::Taken {
            other,
            partner,
            dt_ns,
        } => format!(
            "frame {} has the same headers ({} away) but is journey {}'s",
            other + 1,
            signed(*dt_ns),
            id(*partner)
        ),
    }
}

fn when(ts: Option<u64>) -> String {
    ts.map(time_of_day).unwrap_or_else(|| "(no time)".into())
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = format!(
            "sockpath annotate: {} frames in {} ({}), {} journeys in {}\n",
            self.frames, self.capture, self.format, self.journeys, self.journey_log
        );
        s.push_str(&format!(
            "  {} frames matched to a journey (same headers, timestamps within {})\n",
            self.matched,
            tolerance(self.tolerance_ms)
        ));
        if let Some(o) = &self.offset_ns {
            s.push_str(&format!(
                "  capture time minus journey time: min {}, median {}, max {}\n",
                signed(o.min),
                signed(o.median),
                signed(o.max)
            ));
        }
        s.push_str(&format!(
            "  {} frames with no journey\n",
            self.frames_without_journey
        ));
        for f in self.unmatched_frames.iter().take(LISTED) {
            s.push_str(&format!(
                "    frame {} {} {}: {}\n",
                f.frame,
                when(f.ts_ns),
                f.packet.as_deref().unwrap_or("-"),
                f.why
            ));
        }
        more(&mut s, self.unmatched_frames.len());
        s.push_str(&format!(
            "  {} journeys with no frame\n",
            self.journeys_without_frame
        ));
        for j in self.unmatched_journeys.iter().take(LISTED) {
            s.push_str(&format!(
                "    journey {} {} {}: {}\n",
                j.id,
                when(Some(j.ts_ns)),
                j.packet.as_deref().unwrap_or("-"),
                j.why
            ));
        }
        more(&mut s, self.unmatched_journeys.len());
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s.push_str(&format!(
            "wrote {}: each frame's comments are its journey\n",
            self.output
        ));
        s
    }
}

fn more(s: &mut String, n: usize) {
    if n > LISTED {
        s.push_str(&format!(
            "    ... and {} more (--json lists all)\n",
            n - LISTED
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_durations() {
        assert_eq!(signed(-7_200), "-7.2µs");
        assert_eq!(signed(3_000), "+3.0µs");
        assert_eq!(signed(1_250_000), "+1.250ms");
        assert_eq!(signed(-2_000_000_000), "-2.000s");
    }

    #[test]
    fn reasons_name_the_other_side() {
        let id = |i: usize| i as u64 + 10;
        assert_eq!(
            frame_why(
                &Unmatched::Taken {
                    other: 0,
                    partner: 2,
                    dt_ns: 300
                },
                id,
                50.0
            ),
            "journey 10 has the same headers (+0.3µs away) but is frame 3's: a second copy of that packet?"
        );
        assert_eq!(
            journey_why(
                &Unmatched::TooFar {
                    other: 4,
                    dt_ns: -2_000_000_000
                },
                id,
                50.0
            ),
            "frame 5 has the same headers but is -2.000s away (tolerance 50 ms)"
        );
    }

    #[test]
    fn text_lists_counts_offsets_and_the_unmatched() {
        let r = Report {
            capture: "cap.pcap".into(),
            format: "pcap",
            journey_log: "j.jsonl".into(),
            output: "out.pcapng".into(),
            frames: 3,
            journeys: 3,
            matched: 2,
            frames_without_journey: 1,
            journeys_without_frame: 1,
            tolerance_ms: 50.0,
            offset_ns: Some(Offsets {
                min: -7_000,
                median: -1_000,
                max: 2_000,
            }),
            unmatched_frames: vec![UnmatchedFrame {
                frame: 3,
                ts_ns: None,
                packet: None,
                why: "not IPv4 or IPv6 (EtherType 0x0806)".into(),
            }],
            unmatched_journeys: vec![],
            warnings: vec!["cut short".into()],
        };
        let t = r.text();
        assert!(t.contains("3 frames in cap.pcap (pcap), 3 journeys in j.jsonl"));
        assert!(t.contains("min -7.0µs, median -1.0µs, max +2.0µs"));
        assert!(t.contains("frame 3 (no time) -: not IPv4 or IPv6 (EtherType 0x0806)"));
        assert!(t.contains("1 journeys with no frame"));
        assert!(t.contains("warning: cut short"));
    }
}
