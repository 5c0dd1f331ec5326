//! The daemon's local API, version 1: JSON Lines over its Unix socket, one request a line from
//! the client, one reply object a line from the daemon. The README documents it; a person can
//! try it with `socat - UNIX-CONNECT:/run/sockpath/sockpath.sock` and `jq`.
//!
//! Requests (`api` may be given and must then be 1):
//! - `{"request":"hello"}`: `{"type":"hello","api":1,"version":..,"attached":..,"watchers":..}`
//! - `{"request":"watch","filter":{..},"hold_ms":2000,"frames":false}`: the lines `sockpath
//!   watch --json` prints (`start`, `journey`, `syscall`, `note`, then `summary`), with
//!   `{"type":"missed","items":N}` where N items were dropped because the client read too slowly,
//!   and, with `frames`, a `{"type":"frame",..}` line after each journey (its bytes, for pcapng).
//!   `{"request":"stop"}` on the same connection ends it: held journeys are finished, the
//!   summary follows, and the daemon closes the connection.
//! - `{"request":"probes"}`: `{"type":"probes","kernel":..,"attach_ms":..,"stages":[..]}`, what
//!   `sockpath probes --json` prints.
//! - `{"request":"stats"}`: `{"type":"stats",..}`, the in-kernel statistics in words, for every
//!   port the daemon counts, since it attached.
//! - `{"request":"count","filter":{..}}`: what `sockpath stats` asks. The filter's ports are
//!   counted in the kernel while the connection lasts; the reply is `{"type":"counting",
//!   "kernel":..,"attach_ms":..,"hooks":[..],"attached":N,"drop_reasons":[..]}` (the kernel's
//!   name of each drop reason slot). Then `{"request":"reading"}`, as
//!   often as wanted, gets `{"type":"reading","events_lost":N,"stats_full":N,"totals":{"ports":
//!   [{"key":..,"counts":[..],"drops":[[reason,n],..],"hist":[{"buckets":[[bucket,n],..],
//!   "sum_ns":..,"max_ns":..},..]},..]}}`: the raw counters of the filter's ports since the count
//!   began (`counts::wire`), from which the client takes differences and percentiles.
//!
//! A request that is not JSON, not an object, of another version, unknown, or with fields the
//! request does not have, gets `{"type":"error","error":"..."}` and the connection stays open.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::counts::wire::WireTotals;

/// The version of the API this daemon speaks.
pub const API_VERSION: u32 = 1;
/// Longest request line taken; a longer one is an error and ends the connection.
pub const MAX_REQUEST: usize = 64 << 10;

const REQUESTS: &str = "hello, watch, stop, probes, stats, count, reading";

#[derive(Debug, PartialEq)]
pub enum Request {
    Hello,
    Watch(WatchRequest),
    Stop,
    Probes,
    Stats,
    Count(CountRequest),
    Reading,
}

/// What `sockpath stats` asks the daemon to count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    #[serde(default)]
    pub filter: FilterSpec,
}

/// What a watcher asks for: `sockpath watch`'s filter and output options that the daemon serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    #[serde(default)]
    pub filter: FilterSpec,
    /// How long a journey waits for its data to be read or its connection accepted, in ms.
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
    /// Send each journey's frame bytes too (for the client's --pcapng).
    #[serde(default)]
    pub frames: bool,
}

fn default_hold_ms() -> u64 {
    2000
}

/// `sockpath watch`'s filter options, as the API carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// "4000" or "8000-8010".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    /// "tcp" or "udp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comms: Vec<String>,
}

/// Why a request was not taken: the text of the error reply.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

/// Reads one request line.
pub fn parse(line: &str) -> Result<Request, ApiError> {
    let v: Value = serde_json::from_str(line).map_err(|e| {
        ApiError(format!(
            "not JSON ({e}): a request is one JSON object a line, e.g. {{\"request\":\"hello\"}}"
        ))
    })?;
    let Value::Object(mut obj) = v else {
        return Err(ApiError(
            "a request is a JSON object, e.g. {\"request\":\"hello\"}".into(),
        ));
    };
    match obj.remove("api") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(API_VERSION)) => {}
        Some(other) => {
            return Err(ApiError(format!(
                "api version {other} is not served: this daemon speaks version {API_VERSION}"
            )))
        }
    }
    let name = match obj.remove("request") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(ApiError(format!(
                "\"request\" is a name ({REQUESTS}), not {other}"
            )))
        }
        None => {
            return Err(ApiError(format!(
                "no \"request\" field: the requests are {REQUESTS}"
            )))
        }
    };
    let no_fields = |obj: &serde_json::Map<String, Value>| match obj.keys().next() {
        Some(k) => Err(ApiError(format!(
            "the {name} request has no field {k:?}",
            name = name.as_str()
        ))),
        None => Ok(()),
    };
    match name.as_str() {
        "hello" => no_fields(&obj).map(|()| Request::Hello),
        "stop" => no_fields(&obj).map(|()| Request::Stop),
        "probes" => no_fields(&obj).map(|()| Request::Probes),
        "stats" => no_fields(&obj).map(|()| Request::Stats),
        "reading" => no_fields(&obj).map(|()| Request::Reading),
        "count" => serde_json::from_value(Value::Object(obj))
            .map(Request::Count)
            .map_err(|e| ApiError(format!("invalid count request: {e}"))),
        "watch" => serde_json::from_value(Value::Object(obj))
            .map(Request::Watch)
            .map_err(|e| ApiError(format!("invalid watch request: {e}"))),
        other => Err(ApiError(format!(
            "unknown request {other:?}: the requests are {REQUESTS}"
        ))),
    }
}

impl Request {
    /// The request as a line, for the client.
    pub fn to_line(&self) -> String {
        let mut v = match self {
            Request::Watch(w) => serde_json::to_value(w).unwrap_or_default(),
            Request::Count(c) => serde_json::to_value(c).unwrap_or_default(),
            _ => Value::Object(serde_json::Map::new()),
        };
        if let Value::Object(o) = &mut v {
            let name = match self {
                Request::Hello => "hello",
                Request::Watch(_) => "watch",
                Request::Stop => "stop",
                Request::Probes => "probes",
                Request::Stats => "stats",
                Request::Count(_) => "count",
                Request::Reading => "reading",
            };
            o.insert("api".into(), API_VERSION.into());
            o.insert("request".into(), name.into());
        }
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

/// The daemon's replies other than the lines of `watch --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Hello {
        api: u32,
        version: String,
        /// Programs are attached now.
        attached: bool,
        watchers: usize,
    },
    Error {
        error: String,
    },
    /// This many items (journeys, syscalls, notes) were dropped here: the client read too
    /// slowly and its queue was full.
    Missed {
        items: u64,
    },
    /// The frame of the journey just sent: its bytes from the link-layer header on, in hex.
    Frame {
        mac_len: u16,
        data: String,
    },
    /// The answer to `count`: the filter's ports are counted from now.
    Counting {
        kernel: String,
        attach_ms: f64,
        /// One line per stage, as `sockpath probes` describes it.
        hooks: Vec<String>,
        /// Stages with a hook attached.
        attached: usize,
        /// The kernel's name of each drop reason slot of the readings.
        drop_reasons: Vec<String>,
    },
    /// The answer to `reading`: the raw counters since the count began.
    Reading {
        events_lost: u64,
        stats_full: u64,
        totals: WireTotals,
    },
}

impl Reply {
    pub fn line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn error(e: impl std::fmt::Display) -> Self {
        Reply::Error {
            error: e.to_string(),
        }
    }
}

/// `{"type":KIND,` then the fields of `v` (an object), as one line.
pub fn typed_line(kind: &str, v: &impl Serialize) -> Vec<u8> {
    let mut body = serde_json::to_value(v).unwrap_or_default();
    let mut out = serde_json::Map::new();
    out.insert("type".into(), kind.into());
    if let Value::Object(o) = &mut body {
        out.append(o);
    }
    let mut line = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        parse(line).unwrap_err().0
    }

    #[test]
    fn requests_parse() {
        assert_eq!(parse(r#"{"request":"hello"}"#), Ok(Request::Hello));
        assert_eq!(
            parse(r#"{"api":1,"request":"probes"}"#),
            Ok(Request::Probes)
        );
        assert_eq!(parse(r#"{"request":"stop"}"#), Ok(Request::Stop));
        let Ok(Request::Watch(w)) =
            parse(r#"{"request":"watch","filter":{"ports":["4000","8000-8010"],"pids":[1]}}"#)
        else {
            panic!()
        };
        assert_eq!(w.filter.ports, ["4000", "8000-8010"]);
        assert_eq!(w.filter.pids, [1]);
        assert_eq!(w.hold_ms, 2000);
        assert!(!w.frames);
    }

    #[test]
    fn malformed_and_unknown_requests_are_errors_that_say_why() {
        assert!(err("").contains("not JSON"));
        assert!(err("{\"request\":").contains("not JSON"));
        assert!(err("[1,2]").contains("a JSON object"));
        assert!(err("\"hello\"").contains("a JSON object"));
        assert!(err("{}").contains("no \"request\" field"));
        assert!(err(r#"{"request":7}"#).contains("is a name"));
        assert!(err(r#"{"request":"reboot"}"#).contains("unknown request \"reboot\""));
        assert!(err(r#"{"api":2,"request":"hello"}"#).contains("version 2 is not served"));
        assert!(err(r#"{"api":"1","request":"hello"}"#).contains("not served"));
        assert!(err(r#"{"request":"hello","x":1}"#).contains("no field \"x\""));
        assert!(err(r#"{"request":"watch","port":80}"#).contains("invalid watch request"));
        assert!(err(r#"{"request":"watch","filter":{"ports":80}}"#).contains("invalid watch"));
        assert!(err(r#"{"request":"watch","filter":{"addr":"nowhere"}}"#).contains("invalid"));
        assert!(err(r#"{"request":"watch","hold_ms":-1}"#).contains("invalid"));
        assert!(err(r#"{"request":"count","hold_ms":1}"#).contains("invalid count request"));
        assert!(err(r#"{"request":"reading","filter":{}}"#).contains("no field \"filter\""));
    }

    #[test]
    fn a_request_written_by_the_client_reads_back() {
        let w = WatchRequest {
            filter: FilterSpec {
                ports: vec!["4000".into()],
                addr: Some("::1".parse().unwrap()),
                proto: Some("udp".into()),
                iface: Some("lo".into()),
                pids: vec![12],
                comms: vec!["nginx".into()],
            },
            hold_ms: 500,
            frames: true,
        };
        let c = CountRequest {
            filter: FilterSpec {
                ports: vec!["53".into(), "8000-8010".into()],
                proto: Some("udp".into()),
                ..FilterSpec::default()
            },
        };
        for r in [
            Request::Hello,
            Request::Stop,
            Request::Probes,
            Request::Stats,
            Request::Reading,
            Request::Count(CountRequest::default()),
            Request::Count(c),
            Request::Watch(w),
        ] {
            let line = r.to_line();
            assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
            assert_eq!(parse(line.trim_end()), Ok(r));
        }
    }

    #[test]
    fn replies_are_typed_lines() {
        assert_eq!(
            Reply::Missed { items: 3 }.line(),
            b"{\"type\":\"missed\",\"items\":3}\n"
        );
        assert_eq!(
            Reply::error("no").line(),
            b"{\"type\":\"error\",\"error\":\"no\"}\n"
        );
        #[derive(Serialize)]
        struct S {
            a: u8,
        }
        assert_eq!(
            typed_line("probes", &S { a: 1 }),
            b"{\"a\":1,\"type\":\"probes\"}\n".to_vec()
        );
    }
}
