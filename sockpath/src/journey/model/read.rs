//! The model read back from its JSON form, one `watch --json` line at a time: what `annotate`
//! reads, and what a client of a sockpath that prints JSON needs to print what that sockpath
//! would have printed.
//!
//! JSON holds a stage's and an outcome's words, not the data they were made from: read back,
//! they are `StageData::Logged` and `OutcomeData::Logged`, which render as the same words.

use std::{
    net::IpAddr,
    sync::{LazyLock, Mutex, PoisonError},
};

use rustc_hash::FxHashSet;
use serde::{de::Error as _, Deserialize, Deserializer};

use super::{
    Hex, HookKind, Item, Journey, Note, OutcomeData, StageData, StartInfo, Summary, SyscallRecord,
    Timestamp,
};
use crate::packet::{Headers, TcpInfo, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP};

/// One line of `watch --json` (or `demo --json`): an object whose `type` says what it is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Start(StartInfo),
    Journey(Box<Journey>),
    Syscall(Box<SyscallRecord>),
    Note(Note),
    Summary(Summary),
}

#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "for a client of a sockpath that prints JSON; tests read every scenario back"
    )
)]
impl Line {
    pub fn parse(line: &str) -> serde_json::Result<Self> {
        serde_json::from_str(line)
    }

    /// The output item it is, if it is one (not the start or the summary).
    pub fn into_item(self) -> Option<Item> {
        match self {
            Line::Journey(j) => Some(Item::Journey(j)),
            Line::Syscall(s) => Some(Item::Syscall(s)),
            Line::Note(n) => Some(Item::Note(n)),
            Line::Start(_) | Line::Summary(_) => None,
        }
    }
}

/// Names read back (stage names, hooks, states, flags, calls) kept once each for the life of
/// the process: the model holds them as `&'static str`, for free, for every packet sockpath
/// assembles itself. They are a small vocabulary, so what is kept stays small.
static NAMES: LazyLock<Mutex<FxHashSet<&'static str>>> = LazyLock::new(Mutex::default);

fn intern(s: &str) -> &'static str {
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.get(s) {
        return n;
    }
    let n: &'static str = Box::leak(s.into());
    names.insert(n);
    n
}

/// For `#[serde(deserialize_with)]` on a `&'static str` name.
pub(super) fn name<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    Ok(intern(&String::deserialize(d)?))
}

/// For `#[serde(deserialize_with)]` on an `Option<&'static str>` name.
pub(super) fn opt_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| intern(&s)))
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .and_then(|ns| u64::try_from(ns).ok())
            .map(Timestamp)
            .ok_or_else(|| D::Error::custom(format!("{s:?} is not an RFC 3339 time after 1970")))
    }
}

impl<'de> Deserialize<'de> for Hex {
    /// `0xffff88810a3c2a00`, or the digits alone.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        u64::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a hex address")))
    }
}

impl<'de> Deserialize<'de> for HookKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        [
            HookKind::Fentry,
            HookKind::Fexit,
            HookKind::Kprobe,
            HookKind::Kretprobe,
            HookKind::TpBtf,
            HookKind::Tracepoint,
            HookKind::Inferred,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| D::Error::custom(format!("{s:?} is not a hook kind")))
    }
}

impl<'de> Deserialize<'de> for StageData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StageData::Logged)
    }
}

impl<'de> Deserialize<'de> for OutcomeData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(OutcomeData::Logged)
    }
}

/// The IP protocol number of a name the JSON output uses ("tcp", "ip-proto-47").
pub fn proto_number(name: &str) -> Option<u8> {
    match name {
        "tcp" => Some(IPPROTO_TCP),
        "udp" => Some(IPPROTO_UDP),
        "icmp" => Some(IPPROTO_ICMP),
        "icmpv6" => Some(IPPROTO_ICMPV6),
        other => other.strip_prefix("ip-proto-")?.parse().ok(),
    }
}

/// A journey's header fields, as `Headers`' `Serialize` flattens them into it.
#[derive(Deserialize)]
struct HeaderFields {
    /// Absent: the addresses' version.
    ip_version: Option<u8>,
    src: IpAddr,
    dst: IpAddr,
    proto: String,
    sport: Option<u16>,
    dport: Option<u16>,
    flags: Option<Vec<String>>,
    seq: Option<u32>,
    ack: Option<u32>,
    window: Option<u16>,
    payload_len: u32,
    ip_id: Option<u16>,
}

impl<'de> Deserialize<'de> for Headers {
    /// Read back from a journey's fields. The journey's `Option<Headers>` is `None` when this
    /// fails (a field missing: the headers were not parsed).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = HeaderFields::deserialize(d)?;
        let proto = proto_number(&f.proto)
            .ok_or_else(|| D::Error::custom(format!("{:?} is not a protocol", f.proto)))?;
        let tcp = match (f.flags, f.seq, f.ack, f.window) {
            (Some(flags), Some(seq), Some(ack), Some(window)) => Some(TcpInfo {
                flags: flags.iter().map(|f| intern(f)).collect(),
                seq,
                ack,
                window,
            }),
            _ => None,
        };
        Ok(Headers {
            ip_version: f.ip_version.unwrap_or(if f.src.is_ipv4() { 4 } else { 6 }),
            src: f.src,
            dst: f.dst,
            proto,
            sport: f.sport,
            dport: f.dport,
            tcp,
            payload_len: f.payload_len,
            ip_id: f.ip_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::proto_name;

    /// What a log written by hand (or by another version) may hold: only what identifies the
    /// packet and what became of it.
    #[test]
    fn a_journey_needs_only_its_identity_and_outcome() {
        let j: Journey = serde_json::from_str(
            r#"{"type": "journey", "id": 1, "ts_ns": 5, "src": "127.0.0.1", "dst": "127.0.0.1",
            "proto": "udp", "sport": 1, "dport": 2, "payload_len": 3, "ip_id": 9, "stages": [],
            "socket": {"local": "127.0.0.1:2", "remote": "0.0.0.0:0", "state": "UNCONNECTED",
                       "owner": null},
            "outcome": {"kind": "unknown", "text": "x"}, "complete": true}"#,
        )
        .unwrap();
        let h = j.headers.as_ref().unwrap();
        assert_eq!(
            (h.ip_version, h.proto, h.dport, h.ip_id),
            (4, 17, Some(2), Some(9))
        );
        assert_eq!((j.ts, j.kernel_id, j.iface.as_str()), (Timestamp(0), 0, ""));
        assert_eq!(j.outcome.data, OutcomeData::Logged("x".into()));
        assert_eq!(j.socket.unwrap().sk, Hex(0));
        assert!(serde_json::from_str::<Journey>(r#"{"id": 1, "ts_ns": 5}"#).is_err());
    }

    #[test]
    fn lines_are_read_by_their_type() {
        let start = Line::parse(
            r#"{"type":"start","filter":"port 4000","kernel":"6.18","attach_ms":1.5,"hooks":[]}"#,
        )
        .unwrap();
        assert!(matches!(&start, Line::Start(s) if s.filter == "port 4000"));
        assert!(start.into_item().is_none());
        let note = Line::parse(
            r#"{"type":"note","ts_ns":7,"ts":"1970-01-01T00:00:00.000000007Z","kind":"lost","text":"3 events lost"}"#,
        )
        .unwrap();
        assert!(matches!(note.into_item(), Some(Item::Note(n)) if n.ts == Timestamp(7)));
        assert!(matches!(
            Line::parse(r#"{"type":"summary","journeys":2}"#).unwrap(),
            Line::Summary(s) if s.journeys == 2 && s.dropped == 0
        ));
        assert!(Line::parse(r#"{"type":"mystery"}"#).is_err());
    }

    #[test]
    fn proto_names_round_trip() {
        for p in [1u8, 6, 17, 58, 47, 132] {
            assert_eq!(proto_number(&proto_name(p)), Some(p));
        }
        assert_eq!(proto_number("sctp"), None);
    }
}
