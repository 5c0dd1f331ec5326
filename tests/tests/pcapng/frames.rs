//! Frames of the files the tests compare: tshark's reading of any capture, the pcap records
//! themselves (pcap-file), and the one-to-one pairing of frames with journeys.

use std::{path::Path, process::Command};

use pcap_file::pcap::PcapReader;
use serde_json::Value;
use sockpath_tests::{bin, sh};

pub fn dump(journeys: &[Value]) -> String {
    journeys
        .iter()
        .map(|j| {
            format!(
                "journey {} {}:{} -> {}:{} {} => {}\n",
                j["id"],
                j["src"],
                j["sport"],
                j["dst"],
                j["dport"],
                j["flags"],
                j["outcome"]["text"]
            )
        })
        .collect()
}

/// How far apart tcpdump's and sockpath's timestamps of one packet may be. Both read
/// CLOCK_REALTIME in the receive path of the same packet, microseconds apart (the test prints
/// what it measured); 5 ms leaves room for softirq work deferred on a busy machine.
pub const TIME_TOLERANCE_NS: i64 = 5_000_000;

/// One frame as tshark reads it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub number: usize,
    pub ts_ns: i64,
    pub iface: String,
    pub key: Key,
    pub comments: Vec<String>,
}

/// What makes a frame and a journey the same packet, apart from time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub src: String,
    pub dst: String,
    pub sport: u64,
    pub dport: u64,
    pub seq: Option<u64>,
    pub ack: Option<u64>,
    pub flags: Option<u64>,
    pub ip_id: Option<u64>,
    pub payload_len: u64,
}

pub const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "frame.interface_name",
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "tcp.srcport",
    "udp.srcport",
    "tcp.dstport",
    "udp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "ip.id",
    "tcp.len",
    "udp.length",
    "frame.comment",
];

pub fn num(s: &str) -> Option<u64> {
    let s = s.split('|').next()?.trim();
    if s.is_empty() {
        return None;
    }
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// "1795241926.480730253" in nanoseconds.
pub fn epoch_ns(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}

pub fn tshark_frames(path: &Path) -> Vec<Frame> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(path)
        .args(["-n", "-T", "fields", "-E", "aggregator=|"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    sh(&mut cmd)
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), FIELDS.len(), "tshark line: {l}");
            let first = |s: &str| s.split('|').next().unwrap_or("").to_string();
            let or = |a: &str, b: &str| if a.is_empty() { first(b) } else { first(a) };
            let is_tcp = !c[7].is_empty();
            Frame {
                number: c[0].parse().unwrap(),
                ts_ns: epoch_ns(c[1]),
                iface: c[2].to_string(),
                key: Key {
                    src: or(c[3], c[4]),
                    dst: or(c[5], c[6]),
                    sport: num(c[7]).or(num(c[8])).unwrap(),
                    dport: num(c[9]).or(num(c[10])).unwrap(),
                    seq: num(c[11]),
                    ack: num(c[12]),
                    flags: num(c[13]),
                    ip_id: num(c[14]),
                    payload_len: if is_tcp {
                        num(c[15]).unwrap()
                    } else {
                        num(c[16]).unwrap() - 8
                    },
                },
                comments: if c[17].is_empty() {
                    vec![]
                } else {
                    c[17].split('|').map(str::to_string).collect()
                },
            }
        })
        .collect()
}

pub fn flag_bits(names: &Value) -> Option<u64> {
    let names = names.as_array()?;
    Some(
        names
            .iter()
            .map(|n| match n.as_str().unwrap() {
                "FIN" => 0x01,
                "SYN" => 0x02,
                "RST" => 0x04,
                "PSH" => 0x08,
                "ACK" => 0x10,
                "URG" => 0x20,
                "ECE" => 0x40,
                "CWR" => 0x80,
                other => panic!("flag {other}"),
            })
            .sum(),
    )
}

pub fn journey_key(j: &Value) -> Key {
    Key {
        src: j["src"].as_str().unwrap().to_string(),
        dst: j["dst"].as_str().unwrap().to_string(),
        sport: j["sport"].as_u64().unwrap(),
        dport: j["dport"].as_u64().unwrap(),
        seq: j["seq"].as_u64(),
        ack: j["ack"].as_u64(),
        flags: flag_bits(&j["flags"]),
        ip_id: j["ip_id"].as_u64(),
        payload_len: j["payload_len"].as_u64().unwrap(),
    }
}

pub fn ts(j: &Value) -> i64 {
    j["ts_ns"].as_i64().unwrap()
}

/// The journey id a frame's first comment names ("sockpath journey 4: ...").
pub fn journey_id(f: &Frame) -> u64 {
    let c = f
        .comments
        .first()
        .unwrap_or_else(|| panic!("frame {} has no comment", f.number));
    c.strip_prefix("sockpath journey ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("frame {}: first comment {c:?}", f.number))
}

/// Frames of a pcap file (tcpdump's, or tshark's conversion): (timestamp ns, bytes, wire length).
pub fn pcap_frames(path: &Path) -> Vec<(i64, Vec<u8>, u32)> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader =
        PcapReader::new(file).unwrap_or_else(|e| panic!("{}: not a pcap: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let p = packet.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // pcap-file reads both timestamp resolutions into a Duration.
        let ts = i64::try_from(p.timestamp.as_nanos()).expect("timestamp fits i64");
        out.push((ts, p.data.into_owned(), p.orig_len));
    }
    out
}

pub fn annotate(capture: &Path, log: &Path, out: &Path) -> Value {
    let o = Command::new(bin())
        .arg("annotate")
        .arg(capture)
        .arg("--journeys")
        .arg(log)
        .arg("-o")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "annotate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Frames and journeys pair up one to one by headers and time, independently of sockpath's
/// own matching; returns capture time minus journey time for each pair.
pub fn pair_one_to_one(frames: &[Frame], journeys: &[Value], what: &str) -> Vec<i64> {
    let near = |f: &Frame, j: &Value| {
        f.key == journey_key(j) && (f.ts_ns - ts(j)).abs() <= TIME_TOLERANCE_NS
    };
    let mut offsets = Vec::new();
    for f in frames {
        let m: Vec<&Value> = journeys.iter().filter(|j| near(f, j)).collect();
        assert_eq!(
            m.len(),
            1,
            "{what} frame {} {:?}: journeys {m:?}",
            f.number,
            f.key
        );
        offsets.push(f.ts_ns - ts(m[0]));
    }
    for j in journeys {
        let n = frames.iter().filter(|f| near(f, j)).count();
        assert_eq!(n, 1, "{what}: journey {} has {n} frames", j["id"]);
    }
    offsets
}

pub fn stats(mut v: Vec<i64>) -> (i64, i64, i64) {
    v.sort_unstable();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}
