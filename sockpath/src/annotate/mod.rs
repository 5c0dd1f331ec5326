//! `sockpath annotate CAPTURE --journeys LOG -o OUT`: a capture of the same traffic, by tcpdump
//! or Wireshark, written back as pcapng with each frame's journey as its comments.
//!
//! `capture` reads the capture, `link` finds each frame's IP header, `journeys` reads the log,
//! `key` and `matching` pair frames with journeys, `writer` writes the result and `report` says
//! what paired and what did not.

mod capture;
mod journeys;
mod key;
mod link;
mod matching;
mod report;
mod writer;

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::Args;

use self::{
    capture::Capture,
    key::PacketKey,
    matching::Timed,
    report::{Offsets, Report, UnmatchedFrame, UnmatchedJourney},
};
use crate::{journey::clock::time_of_day, output::comment, usage::UsageError};

/// Frames and journeys of one packet are stamped a few microseconds apart on this machine
/// (tcpdump and sockpath read the same clock, at nearly the same point of the receive path);
/// softirq work deferred to ksoftirqd on a busy machine delays one side by up to milliseconds.
/// 50 ms covers that with room to spare and stays well under TCP's minimum retransmission
/// timeout (200 ms), so a retransmitted segment, whose headers may equal the original's, is
/// never taken for it.
pub const DEFAULT_TOLERANCE_MS: f64 = 50.0;

#[derive(Args, Debug, Clone)]
pub struct AnnotateArgs {
    /// The capture: a pcap or pcapng file tcpdump or Wireshark wrote while sockpath watched.
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
    /// The journey log: what `sockpath watch --json` printed (JSON Lines).
    #[arg(long, value_name = "JOURNEYS.jsonl")]
    pub journeys: PathBuf,
    /// Where to write the annotated capture (pcapng).
    #[arg(short = 'o', long = "output", value_name = "OUT.pcapng")]
    pub output: PathBuf,
    /// Largest difference, in milliseconds, between a frame's timestamp and its journey's for
    /// the two to be the same packet (headers must match as well).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TOLERANCE_MS, value_parser = tolerance)]
    pub tolerance_ms: f64,
    /// The report as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

fn tolerance(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if !(0.0..=3_600_000.0).contains(&v) {
        return Err(format!("{v}: the tolerance must be from 0 to 3600000 ms"));
    }
    Ok(v)
}

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The first and last timestamps of a side, if any.
fn span(ts: impl Iterator<Item = u64>) -> Option<(u64, u64)> {
    ts.fold(None, |acc, t| match acc {
        None => Some((t, t)),
        Some((a, b)) => Some((a.min(t), b.max(t))),
    })
}

pub fn run(args: &AnnotateArgs) -> anyhow::Result<()> {
    if same_file(&args.capture, &args.output) {
        return Err(usage(format!(
            "-o {} is the capture itself: write the annotated capture to another file",
            args.output.display()
        )));
    }
    let capture = Capture::read(&args.capture).map_err(usage)?;
    let parsed = capture.parse().map_err(usage)?;
    let log = journeys::read(&args.journeys).map_err(usage)?;

    let frames: Vec<_> = parsed.frames().collect();
    let frame_keys: Vec<Result<PacketKey, String>> = frames
        .iter()
        .map(|f| match &f.source {
            capture::Source::Unannotated { why, .. } => Err(why.to_string()),
            _ => link::headers(f.linktype, &f.data).map(|h| PacketKey::of_headers(&h)),
        })
        .collect();
    let frame_t: Vec<Timed> = frames
        .iter()
        .zip(&frame_keys)
        .map(|(f, k)| Timed {
            ts_ns: f.ts_ns,
            key: k.as_ref().ok(),
        })
        .collect();
    let journey_t: Vec<Timed> = log
        .iter()
        .map(|j| Timed {
            ts_ns: Some(j.journey.ts_ns),
            key: j.key.as_ref(),
        })
        .collect();
    let tol_ns = (args.tolerance_ms * 1e6).round() as u64;
    let m = matching::match_up(&frame_t, &journey_t, tol_ns);
    let id = |i: usize| log[i].journey.id;

    let mut unmatched_frames = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if m.frame_journey[i].is_some() {
            continue;
        }
        let why = match (&frame_keys[i], f.ts_ns) {
            (Err(reason), _) => reason.clone(),
            _ => report::frame_why(
                &matching::explain(i, &frame_t, &journey_t, &m.journey_frame, tol_ns),
                id,
                args.tolerance_ms,
            ),
        };
        unmatched_frames.push(UnmatchedFrame {
            frame: f.number,
            ts_ns: f.ts_ns,
            packet: frame_keys[i].as_ref().ok().map(PacketKey::describe),
            why,
        });
    }
    let mut unmatched_journeys = Vec::new();
    for (i, j) in log.iter().enumerate() {
        if m.journey_frame[i].is_some() {
            continue;
        }
        let u = matching::explain(i, &journey_t, &frame_t, &m.frame_journey, tol_ns);
        unmatched_journeys.push(UnmatchedJourney {
            id: j.journey.id,
            ts_ns: j.journey.ts_ns,
            packet: j.key.as_ref().map(PacketKey::describe),
            why: report::journey_why(&u, |fi| frames[fi].number as u64, args.tolerance_ms),
        });
    }

    let mut warnings = parsed.warnings.clone();
    let fs = span(frames.iter().filter_map(|f| f.ts_ns));
    let js = span(log.iter().map(|j| j.journey.ts_ns));
    if let (Some(f), Some(j)) = (fs, js) {
        if f.1.saturating_add(tol_ns) < j.0 || j.1.saturating_add(tol_ns) < f.0 {
            warnings.push(format!(
                "the capture ({} to {}) and the journey log ({} to {}) do not overlap in time: were they recorded together, on this machine?",
                time_of_day(f.0),
                time_of_day(f.1),
                time_of_day(j.0),
                time_of_day(j.1),
            ));
        }
    }

    let comments = |number: usize| -> Vec<String> {
        let i = number - 1;
        match m.frame_journey[i] {
            Some(ji) => comment::comments(&log[ji].journey),
            None => {
                let why = unmatched_frames
                    .iter()
                    .find(|u| u.frame == number)
                    .map(|u| u.why.as_str())
                    .unwrap_or("no journey");
                vec![format!("sockpath: no journey: {why}")]
            }
        }
    };
    let out = std::fs::File::create(&args.output)
        .map_err(|e| usage(format!("cannot write -o {}: {e}", args.output.display())))?;
    let section = format!(
        "annotated by sockpath: {} with the journeys in {}",
        name(&args.capture),
        name(&args.journeys)
    );
    let mut out = writer::write(&parsed, comments, section, std::io::BufWriter::new(out))
        .with_context(|| format!("writing {}", args.output.display()))?;
    out.flush()
        .with_context(|| format!("writing {}", args.output.display()))?;

    let matched = m.frame_journey.iter().flatten().count();
    let report =
        Report {
            capture: args.capture.display().to_string(),
            format: parsed.format.name(),
            journey_log: args.journeys.display().to_string(),
            output: args.output.display().to_string(),
            frames: frames.len(),
            journeys: log.len(),
            matched,
            frames_without_journey: frames.len() - matched,
            journeys_without_frame: log.len() - matched,
            tolerance_ms: args.tolerance_ms,
            offset_ns: matching::offsets(&m, &frame_t, &journey_t)
                .map(|(min, median, max)| Offsets { min, median, max }),
            unmatched_frames,
            unmatched_journeys,
            warnings,
        };
    let text = if args.json {
        format!("{}\n", serde_json::to_string(&report)?)
    } else {
        report.text()
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| p.to_owned())
        .display()
        .to_string()
}
