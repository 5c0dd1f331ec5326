//! Reading a journey log: the JSON Lines `sockpath watch --json` (or `demo --json`) prints.
//! Journey objects are kept; start, syscall, note and summary objects are skipped.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::key::PacketKey;
use crate::{journey::model::Journey, packet::IPPROTO_TCP};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read the journey log {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the journey log {0} is empty: give what `sockpath watch --json` printed")]
    Empty(PathBuf),
    #[error("{path} line {line}: {what}{hint}")]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
        hint: &'static str,
    },
}

/// One journey of the log.
#[derive(Clone, Debug)]
pub struct LoggedJourney {
    /// What identifies its packet; None when the journey has no packet headers (its
    /// device-receive event was lost), or a TCP segment's without its flags.
    pub key: Option<PacketKey>,
    pub journey: Journey,
}

impl LoggedJourney {
    fn of(journey: Journey) -> Self {
        let key = journey
            .headers
            .as_ref()
            .filter(|h| h.proto != IPPROTO_TCP || h.tcp.is_some())
            .map(PacketKey::of_headers);
        Self { key, journey }
    }
}

const TEXT_HINT: &str =
    " (this looks like sockpath's text output: record the log with `sockpath watch --json ... > FILE`)";

/// Reads the log at `path`.
pub fn read(path: &Path) -> Result<Vec<LoggedJourney>, LogError> {
    let bytes = std::fs::read(path).map_err(|source| LogError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &String::from_utf8_lossy(&bytes))
}

/// Parses a log's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<LoggedJourney>, LogError> {
    let err = |line: usize, what: String, hint: &'static str| LogError::Line {
        path: path.to_owned(),
        line,
        what,
        hint,
    };
    let mut journeys = Vec::new();
    let mut objects = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            let hint = if line.starts_with("sockpath:") || line.contains(" → ") {
                TEXT_HINT
            } else {
                ""
            };
            err(n, format!("not JSON ({e})"), hint)
        })?;
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return Err(err(
                n,
                "not a sockpath object (no \"type\" field)".into(),
                "",
            ));
        };
        objects += 1;
        if kind != "journey" {
            continue;
        }
        let bad = |e: serde_json::Error| err(n, format!("a journey sockpath cannot read: {e}"), "");
        let journey = Journey::deserialize(&v).map_err(bad)?;
        journeys.push(LoggedJourney::of(journey));
    }
    if objects == 0 {
        return Err(LogError::Empty(path.to_owned()));
    }
    Ok(journeys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::comment::fixture::{read_journey, refused_journey};

    fn log(lines: &[String]) -> Result<Vec<LoggedJourney>, LogError> {
        parse(Path::new("j.jsonl"), &lines.join("\n"))
    }

    #[test]
    fn journeys_are_kept_other_objects_skipped() {
        let j = log(&[
            r#"{"type":"start","filter":"port 4000"}"#.into(),
            read_journey().to_string(),
            r#"{"type":"syscall","text":"read(4) = 6"}"#.into(),
            String::new(),
            refused_journey().to_string(),
            r#"{"type":"summary","journeys":2}"#.into(),
        ])
        .unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j[0].journey.id, 4);
        let k = j[0].key.as_ref().unwrap();
        assert_eq!(k.proto, 6);
        assert_eq!(k.sport, Some(4444));
        assert_eq!(k.ip_id, Some(4242));
        assert_eq!(k.tcp.as_ref().unwrap().flags, "ACK,PSH");
        assert_eq!(k.payload_len, 6);
        assert_eq!(j[1].journey.outcome.reason.as_deref(), Some("NO_SOCKET"));
    }

    #[test]
    fn a_journey_without_headers_has_no_key() {
        let mut v = read_journey();
        for f in [
            "src",
            "dst",
            "proto",
            "sport",
            "dport",
            "flags",
            "seq",
            "ack",
            "payload_len",
        ] {
            v.as_object_mut().unwrap().remove(f);
        }
        let j = log(&[v.to_string()]).unwrap();
        assert!(j[0].key.is_none());
    }

    #[test]
    fn malformed_lines_are_named_with_their_number() {
        let e = log(&[read_journey().to_string(), "{\"type\":\"journey\",".into()])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("j.jsonl line 2: not JSON"), "{e}");
        let e = log(&["[1,2]".into()]).unwrap_err().to_string();
        assert!(e.contains("line 1: not a sockpath object"), "{e}");
        let mut v = read_journey();
        v["ts_ns"] = "soon".into();
        let e = log(&[v.to_string()]).unwrap_err().to_string();
        assert!(e.contains("line 1: a journey sockpath cannot read"), "{e}");
    }

    #[test]
    fn text_output_and_empty_files_say_what_to_give() {
        let e = log(&["sockpath: watching port 4000, on any interface".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("watch --json"), "{e}");
        assert!(matches!(log(&[]).unwrap_err(), LogError::Empty(_)));
    }
}
