//! `sockpath watch` through a daemon: the daemon sends the lines `watch --json` prints, and
//! they are read back into the model and written by the same sinks a session of its own uses,
//! so the output is what a standalone run prints.

use std::{
    io,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use serde::Deserialize;
use tokio::signal::unix::{signal, SignalKind};

use super::{sinks, WatchArgs};
use crate::live::DEFAULT_RING_KIB;
use crate::{
    api::{FilterSpec, Request, WatchRequest},
    client::Daemon,
    filter::{WatchFilter, DEFAULT_SNAPLEN},
    journey::{
        clock::Clock,
        model::{Item, Journey, Note, StartInfo, Summary, SyscallRecord, Timestamp},
    },
    output::Sink,
};

/// A line from the daemon while watching.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Start(StartInfo),
    Journey(Box<Journey>),
    Syscall(Box<SyscallRecord>),
    Note(Note),
    Summary(Summary),
    Missed { items: u64 },
    Frame { mac_len: u16, data: String },
    Error { error: String },
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len().is_multiple_of(2).then_some(())?;
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The note a watcher prints where the daemon dropped items it could not take in time.
fn missed_note(items: u64) -> Item {
    let now = Clock::sample().wall_ns(crate::journey::clock::monotonic_ns());
    Item::Note(Note {
        ts_ns: now,
        ts: Timestamp(now),
        kind: "missed".into(),
        text: format!(
            "{items} journeys, syscalls or notes dropped by the daemon: this watcher read them too slowly"
        ),
    })
}

struct Output {
    sinks: Vec<Box<dyn Sink>>,
    /// A journey waiting for its frame (when frames were asked for, the next line).
    pending: Option<Box<Journey>>,
    missed: u64,
}

impl Output {
    fn emit(&mut self, item: &Item) -> io::Result<()> {
        for s in self.sinks.iter_mut() {
            s.item(item)?;
        }
        Ok(())
    }

    fn release(&mut self) -> io::Result<()> {
        match self.pending.take() {
            Some(j) => self.emit(&Item::Journey(j)),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        for s in self.sinks.iter_mut() {
            s.flush()?;
        }
        Ok(())
    }
}

/// Watches through `daemon` until Ctrl-C, SIGTERM or the end of --duration, then asks it to
/// stop and prints the summary it sends.
pub async fn run(
    mut daemon: Daemon,
    args: &WatchArgs,
    filter: &WatchFilter,
    started: Instant,
) -> anyhow::Result<()> {
    if args.snaplen != DEFAULT_SNAPLEN || args.output.ring_kib != DEFAULT_RING_KIB {
        eprintln!(
            "sockpath: through the daemon, the snap length and the ring buffer are the daemon's \
             (sockpath daemon --snaplen, --ring-kib); --standalone for your own"
        );
    }
    // Opened before asking, so a path that cannot be written is a usage error, as alone.
    let frames = args.output.pcapng.is_some();
    let mut out = Output {
        sinks: sinks(&args.output)?,
        pending: None,
        missed: 0,
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    daemon
        .send(&Request::Watch(WatchRequest {
            filter: FilterSpec::from(filter),
            hold_ms: args.output.hold_ms,
            frames,
        }))
        .await?;
    // --duration counts from the start line, as it does from the attach when alone.
    let deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(deadline);
    let mut stopping = false;
    let mut started_output = false;
    loop {
        let line = tokio::select! {
            _ = sigint.recv(), if !stopping => None,
            _ = sigterm.recv(), if !stopping => None,
            () = &mut deadline, if !stopping && started_output && args.duration.is_some() => None,
            l = daemon.line() => Some(l?),
        };
        let Some(line) = line else {
            stopping = true;
            daemon.send(&Request::Stop).await?;
            continue;
        };
        let Some(line) = line else {
            out.release()?;
            out.flush()?;
            return Err(anyhow!(
                "the sockpath daemon closed the connection before the summary (it stopped?)"
            ));
        };
        let parsed: Line = serde_json::from_str(&line).map_err(|e| {
            anyhow!("the daemon sent a line this sockpath cannot read ({e}): {line}")
        })?;
        if !matches!(parsed, Line::Frame { .. }) {
            out.release()?;
        }
        match parsed {
            Line::Start(mut info) => {
                // What this watch waited for: the daemon's programs may have been attached
                // long before.
                info.attach_ms = started.elapsed().as_secs_f64() * 1e3;
                for s in out.sinks.iter_mut() {
                    s.start(&info)?;
                }
                started_output = true;
                if let Some(d) = args.duration {
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + Duration::from_secs_f64(d));
                }
            }
            Line::Journey(j) if frames => out.pending = Some(j),
            Line::Journey(j) => out.emit(&Item::Journey(j))?,
            Line::Syscall(s) => out.emit(&Item::Syscall(s))?,
            Line::Note(n) => out.emit(&Item::Note(n))?,
            Line::Missed { items } => {
                out.missed += items;
                out.emit(&missed_note(items))?;
            }
            Line::Frame { mac_len, data } => {
                if let Some(mut j) = out.pending.take() {
                    j.frame = unhex(&data).unwrap_or_default();
                    j.mac_len = mac_len;
                    out.emit(&Item::Journey(j))?;
                }
            }
            Line::Summary(s) => {
                out.flush()?;
                for sink in out.sinks.iter_mut() {
                    sink.summary(&s)?;
                }
                if out.missed > 0 {
                    eprintln!(
                        "sockpath: the daemon dropped {} items this watcher read too slowly",
                        out.missed
                    );
                }
                return Ok(());
            }
            Line::Error { error } if !started_output => return Err(anyhow!("{error}")),
            Line::Error { error } => eprintln!("sockpath: the daemon says: {error}"),
        }
        if daemon.idle() {
            out.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_from_hex() {
        assert_eq!(unhex("4500ff"), Some(vec![0x45, 0, 0xff]));
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("450"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn every_line_the_daemon_sends_reads_back() {
        for (l, ok) in [
            (r#"{"type":"missed","items":4}"#, true),
            (r#"{"type":"frame","mac_len":14,"data":"00"}"#, true),
            (r#"{"type":"error","error":"no"}"#, true),
            (r#"{"type":"hello"}"#, false),
        ] {
            assert_eq!(serde_json::from_str::<Line>(l).is_ok(), ok, "{l}");
        }
    }
}
