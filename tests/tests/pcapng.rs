//! Side by side with tcpdump and Wireshark: `watch --pcapng` and `annotate`, checked with the
//! real tcpdump and tshark capturing the same traffic at the same time.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sockpath_tests::{bin, connect_from, free_port, require_root, sh, unique, Netns, VethPair};

/// The tests read files with the real tshark; without it they fail and say why (rather than
/// pass having checked nothing).
fn require_tshark() {
    let found = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "tshark is not installed: `cargo xtask setup` installs it (Debian package tshark)"
    );
}

fn temp_path(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sockpath-pcapng-{}-{}.{ext}",
        std::process::id(),
        unique()
    ))
}

fn interrupt(child: &mut Child, what: &str) -> Option<i32> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "{what} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A capture program writing a file: tcpdump (pcap) or tshark (pcapng, through dumpcap).
struct FileCapture {
    child: Child,
    path: PathBuf,
}

impl FileCapture {
    fn tcpdump(ns: &Netns, iface: &str, filter: &str) -> Self {
        let path = temp_path("pcap");
        let mut cmd = ns.command("tcpdump");
        cmd.args(["-i", iface, "-n", "-U", "--time-stamp-precision=nano", "-w"])
            .arg(&path)
            .arg(filter);
        Self::spawn(cmd, path, "listening on")
    }

    fn tshark(ns: &Netns, iface: &str, filter: &str) -> Self {
        let path = temp_path("pcapng");
        let mut cmd = ns.command("tshark");
        cmd.args(["-i", iface, "-n", "-q", "-f", filter, "-w"])
            .arg(&path);
        Self::spawn(cmd, path, "Capturing on")
    }

    /// Starts `cmd` and waits until its stderr says `ready` (the filter is attached).
    fn spawn(mut cmd: Command, path: PathBuf, ready: &str) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains(ready) => break,
                Some(Ok(_)) => continue,
                _ => panic!("{cmd:?} did not start"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        FileCapture { child, path }
    }

    fn stop(mut self) -> PathBuf {
        std::thread::sleep(Duration::from_millis(200));
        interrupt(&mut self.child, "the capture");
        self.path.clone()
    }
}

/// `sockpath watch --json ... > LOG`: the journey log exactly as sockpath printed it.
struct Recording {
    child: Child,
    log: PathBuf,
}

impl Recording {
    fn start(args: &[&str]) -> Self {
        require_root();
        let log = temp_path("jsonl");
        let child = Command::new(bin())
            .args(["watch", "--json"])
            .args(args)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains(r#""type":"start""#)
        {
            assert!(Instant::now() < deadline, "sockpath did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Recording { child, log }
    }

    /// Stops sockpath; returns the log's path and its journeys.
    fn stop(mut self) -> (PathBuf, Vec<Value>) {
        // Let the last journeys settle (sockpath waits for reads and accepts).
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(interrupt(&mut self.child, "sockpath"), Some(0));
        let journeys = std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "journey")
            .collect();
        (self.log.clone(), journeys)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dump(journeys: &[Value]) -> String {
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
const TIME_TOLERANCE_NS: i64 = 5_000_000;

/// One frame as tshark reads it.
#[derive(Clone, Debug)]
struct Frame {
    number: usize,
    ts_ns: i64,
    iface: String,
    key: Key,
    comments: Vec<String>,
}

/// What makes a frame and a journey the same packet, apart from time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    src: String,
    dst: String,
    sport: u64,
    dport: u64,
    seq: Option<u64>,
    ack: Option<u64>,
    flags: Option<u64>,
    ip_id: Option<u64>,
    payload_len: u64,
}

const FIELDS: &[&str] = &[
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

fn num(s: &str) -> Option<u64> {
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
fn epoch_ns(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac[..9].parse::<i64>().unwrap()
}

fn tshark_frames(path: &Path) -> Vec<Frame> {
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

fn flag_bits(names: &Value) -> Option<u64> {
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

fn journey_key(j: &Value) -> Key {
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

fn ts(j: &Value) -> i64 {
    j["ts_ns"].as_i64().unwrap()
}

/// The journey id a frame's first comment names ("sockpath journey 4: ...").
fn journey_id(f: &Frame) -> u64 {
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
fn pcap_frames(path: &Path) -> Vec<(i64, Vec<u8>, u32)> {
    let b = std::fs::read(path).unwrap();
    let le = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let nanos = match le(0) {
        0xa1b2c3d4 => false,
        0xa1b23c4d => true,
        m => panic!("{}: magic {m:#x}", path.display()),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let (sec, frac, incl, orig) = (le(at), le(at + 4), le(at + 8) as usize, le(at + 12));
        let frac = if nanos { frac } else { frac * 1000 };
        let data = b[at + 16..at + 16 + incl].to_vec();
        out.push((i64::from(sec) * 1_000_000_000 + i64::from(frac), data, orig));
        at += 16 + incl;
    }
    out
}

fn annotate(capture: &Path, log: &Path, out: &Path) -> Value {
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
fn pair_one_to_one(frames: &[Frame], journeys: &[Value], what: &str) -> Vec<i64> {
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

fn stats(mut v: Vec<i64>) -> (i64, i64, i64) {
    v.sort_unstable();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

struct Done {
    accepted_fd: i32,
}

/// TCP handshake, 6 bytes read, close, a refused connection; UDP over IPv4 and IPv6, read and
/// to a closed port.
fn traffic(ns: &Netns, port: u16, cport: u16) -> Done {
    ns.run(move || {
        let server_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(server_addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let fd = s.as_raw_fd();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"salam\n");
            fd
        });
        let local: SocketAddr = format!("127.0.0.1:{cport}").parse().unwrap();
        let mut c = connect_from(local, server_addr).unwrap();
        c.write_all(b"salam\n").unwrap();
        drop(c);
        let accepted_fd = server.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let refused = TcpStream::connect(server_addr).unwrap_err().kind();
        assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);
        for (server, client) in [("127.0.0.1", "127.0.0.1:0"), ("[::1]", "[::1]:0")] {
            let addr: SocketAddr = format!("{server}:{port}").parse().unwrap();
            let rx = UdpSocket::bind(addr).unwrap();
            let tx = UdpSocket::bind(client).unwrap();
            tx.send_to(b"hello", addr).unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(rx.recv_from(&mut buf).unwrap().0, 5);
            drop(rx);
            tx.send_to(b"anyone?", addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        Done { accepted_fd }
    })
}

#[test]
fn loopback_export_and_annotation_agree_with_tcpdump_and_tshark() {
    require_tshark();
    let ns = Netns::new("pcapng");
    let port = free_port();
    let cport = free_port();
    let filter = format!("port {port}");
    let tcpdump = FileCapture::tcpdump(&ns, "lo", &filter);
    let dumpcap = FileCapture::tshark(&ns, "lo", &filter);
    let export = temp_path("pcapng");
    let watch = Recording::start(&[
        "--port",
        &port.to_string(),
        "--pcapng",
        export.to_str().unwrap(),
    ]);
    let done = traffic(&ns, port, cport);
    let (log, journeys) = watch.stop();
    let tcpdump = tcpdump.stop();
    let dumpcap = dumpcap.stop();
    let dump = dump(&journeys);
    let me = std::process::id();
    // The connection's segments (8 or so), SYN and RST of the refused one, 4 datagrams.
    assert!(journeys.len() >= 12, "{dump}");

    // sockpath's own pcapng, as tshark reads it: one frame per journey, in order, on the same
    // clock to the nanosecond, with the journey as comments.
    let exported = tshark_frames(&export);
    assert_eq!(exported.len(), journeys.len(), "{dump}");
    for (f, j) in exported.iter().zip(&journeys) {
        assert_eq!(journey_id(f), j["id"].as_u64().unwrap());
        assert_eq!(f.ts_ns, ts(j), "frame {}", f.number);
        assert_eq!(f.iface, "lo");
        assert_eq!(f.key, journey_key(j), "frame {}", f.number);
        assert!(f.comments.len() > 2, "stages as comments: {:?}", f.comments);
        assert!(f.comments.iter().any(|c| c.contains("netif_receive_skb")));
    }
    let data = journeys
        .iter()
        .position(|j| j["payload_len"] == 6 && j["dport"] == port)
        .unwrap_or_else(|| panic!("no data journey\n{dump}"));
    let o = &journeys[data]["outcome"];
    assert_eq!(o["pid"], me, "{dump}");
    assert_eq!(o["fd"], done.accepted_fd, "{dump}");
    let headline = format!(
        "sockpath journey {}: delivered to {} (pid {me}) fd {}, read by {}() 6 bytes",
        journeys[data]["id"],
        o["comm"].as_str().unwrap(),
        done.accepted_fd,
        o["syscall"].as_str().unwrap()
    );
    assert_eq!(exported[data].comments[0], headline);
    let refused = journeys
        .iter()
        .position(|j| j["flags"] == serde_json::json!(["SYN"]) && j["outcome"]["kind"] == "dropped")
        .unwrap_or_else(|| panic!("no refused SYN\n{dump}"));
    assert!(
        exported[refused].comments[0].ends_with(": dropped: NO_SOCKET, reset sent"),
        "{:?}",
        exported[refused].comments
    );
    let closed_udp = exported
        .iter()
        .filter(|f| f.comments[0].contains("dropped: NO_SOCKET"))
        .count();
    assert_eq!(
        closed_udp, 3,
        "refused SYN and two datagrams to a closed port"
    );
    let verbose = sh(Command::new("tshark").arg("-r").arg(&export).arg("-V"));
    assert!(verbose.contains("Packet comments"));
    assert!(verbose.contains(&headline), "tshark -V shows the comment");

    // tcpdump saw the same packets: each of its frames has exactly one journey and the
    // reverse, by headers and time; sockpath's bytes are what tcpdump captured.
    let captured = tshark_frames(&tcpdump);
    let offsets = pair_one_to_one(&captured, &journeys, "tcpdump");
    let (min, median, max) = stats(offsets.clone());
    eprintln!(
        "tcpdump minus sockpath timestamps over {} packets: min {min} ns, median {median} ns, max {max} ns",
        offsets.len()
    );
    let converted = temp_path("pcap");
    sh(Command::new("tshark")
        .arg("-r")
        .arg(&export)
        .args(["-F", "nsecpcap", "-w"])
        .arg(&converted));
    let ours = pcap_frames(&converted);
    let theirs = pcap_frames(&tcpdump);
    for (ts_ns, bytes, wire) in &ours {
        let t = theirs
            .iter()
            .find(|(t, b, _)| (t - ts_ns).abs() <= TIME_TOLERANCE_NS && b.starts_with(bytes))
            .unwrap_or_else(|| panic!("no tcpdump frame has sockpath's bytes {bytes:02x?}"));
        assert_eq!(*wire, t.2, "wire length");
        assert!(bytes.len() >= 14 + 20 + 8, "headers always captured");
    }

    // annotate: tcpdump's capture with the journeys as comments.
    let annotated = temp_path("pcapng");
    let rep = annotate(&tcpdump, &log, &annotated);
    eprintln!("annotate report: {rep}");
    assert_eq!(rep["frames"], captured.len());
    assert_eq!(rep["journeys"], journeys.len());
    assert_eq!(rep["matched"], journeys.len());
    assert_eq!(rep["frames_without_journey"], 0);
    assert_eq!(rep["journeys_without_frame"], 0);
    assert_eq!(rep["offset_ns"]["min"], min);
    assert_eq!(rep["offset_ns"]["max"], max);
    let frames = tshark_frames(&annotated);
    assert_eq!(frames.len(), captured.len());
    let mut ids = Vec::new();
    for (f, c) in frames.iter().zip(&captured) {
        assert_eq!(f.ts_ns, c.ts_ns, "annotating keeps timestamps");
        let id = journey_id(f);
        let j = journeys.iter().find(|j| j["id"] == id).unwrap();
        assert_eq!(f.key, journey_key(j), "frame {} got journey {id}", f.number);
        let mine = &exported[journeys.iter().position(|x| x["id"] == id).unwrap()];
        assert_eq!(f.comments, mine.comments, "same words as watch --pcapng");
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        journeys.len(),
        "every journey on exactly one frame"
    );

    // The same with Wireshark's capture engine (pcapng, microsecond timestamps): its blocks
    // are kept (the interface name), its frames get the same journeys.
    let annotated2 = temp_path("pcapng");
    let rep2 = annotate(&dumpcap, &log, &annotated2);
    assert_eq!(rep2["matched"], journeys.len(), "{rep2}");
    assert_eq!(rep2["frames_without_journey"], 0, "{rep2}");
    let frames2 = tshark_frames(&annotated2);
    assert_eq!(frames2.len(), frames.len());
    for (a, b) in frames2.iter().zip(&frames) {
        assert_eq!(a.iface, "lo");
        assert_eq!(journey_id(a), journey_id(b));
    }

    for p in [
        export, tcpdump, dumpcap, converted, log, annotated, annotated2,
    ] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn veth_export_has_an_interface_per_receiving_interface_and_annotation_covers_both_ways() {
    require_tshark();
    let pair = VethPair::new();
    let port = free_port();
    let filter = format!("tcp port {port}");
    // On b's side of the pair tcpdump sees both directions: what b receives and what it sends
    // (which a receives).
    let cap = FileCapture::tcpdump(&pair.b, &pair.b_if, &filter);
    let export = temp_path("pcapng");
    let watch = Recording::start(&[
        "--port",
        &port.to_string(),
        "--pcapng",
        export.to_str().unwrap(),
    ]);
    let server_addr: SocketAddr = format!("{}:{port}", pair.b_addr).parse().unwrap();
    let server = pair.b.spawn(move || {
        let l = TcpListener::bind(server_addr).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    pair.a.run(move || {
        let mut c = TcpStream::connect(server_addr).unwrap();
        c.write_all(b"salam\n").unwrap();
    });
    assert_eq!(server.join().unwrap(), b"salam\n");
    let (log, journeys) = watch.stop();
    let capture = cap.stop();
    let dump = dump(&journeys);
    assert!(journeys.len() >= 8, "{dump}");

    let exported = tshark_frames(&export);
    assert_eq!(exported.len(), journeys.len());
    let mut names: Vec<&str> = exported.iter().map(|f| f.iface.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, [pair.a_if.as_str(), pair.b_if.as_str()], "{dump}");
    for (f, j) in exported.iter().zip(&journeys) {
        assert_eq!(f.iface, j["iface"].as_str().unwrap());
    }

    let captured = tshark_frames(&capture);
    pair_one_to_one(&captured, &journeys, "tcpdump on veth");
    let annotated = temp_path("pcapng");
    let rep = annotate(&capture, &log, &annotated);
    assert_eq!(rep["matched"], journeys.len(), "{rep}");
    assert_eq!(rep["frames_without_journey"], 0, "{rep}");
    assert_eq!(rep["journeys_without_frame"], 0, "{rep}");
    for p in [export, capture, log, annotated] {
        let _ = std::fs::remove_file(p);
    }
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn annotate_reports_the_unmatched_and_refuses_bad_input_with_exit_code_2() {
    require_tshark();
    let dir = temp_path("d");
    std::fs::create_dir_all(&dir).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // An empty pcap (Ethernet, microseconds) and a log with one journey.
    let mut pcap = Vec::new();
    for v in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        pcap.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(p("empty.pcap"), &pcap).unwrap();
    let journey = serde_json::json!({"type": "journey", "id": 1, "ts_ns": 5u64,
        "src": "127.0.0.1", "dst": "127.0.0.1", "proto": "udp", "sport": 1, "dport": 2,
        "payload_len": 3, "ip_id": 9, "stages": [], "socket": null,
        "outcome": {"kind": "unknown", "reason": null, "text": "x", "pid": null, "comm": null,
            "syscall": null, "fd": null, "bytes": null, "reset_sent": false, "icmp_sent": null},
        "complete": true, "incomplete_reason": null});
    std::fs::write(p("log.jsonl"), format!("{journey}\n")).unwrap();
    std::fs::write(p("bad.jsonl"), format!("{journey}\n{{\"type\": \"jour\n")).unwrap();
    std::fs::write(p("text.jsonl"), "sockpath: watching port 4000\n").unwrap();
    std::fs::write(p("notes.txt"), "hello\n").unwrap();
    std::fs::write(p("c.pcap.gz"), [0x1f, 0x8b, 8, 0, 0]).unwrap();
    let (empty, log, out) = (p("empty.pcap"), p("log.jsonl"), p("o.pcapng"));

    let (code, stdout, err) = run(&["annotate", &empty, "--journeys", &log, "-o", &out]);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("0 frames in"), "{stdout}");
    assert!(stdout.contains("1 journeys with no frame"), "{stdout}");
    assert!(
        stdout.contains("journey 1 ") && stdout.contains("no frame has the same headers"),
        "{stdout}"
    );
    let o = sh(Command::new("tshark").arg("-r").arg(&out));
    assert!(o.is_empty(), "an empty capture stays empty: {o}");

    let annotate_with = |capture: &str, journeys: &str, output: &str| {
        vec![
            "annotate".to_string(),
            capture.to_string(),
            "--journeys".into(),
            journeys.to_string(),
            "-o".into(),
            output.to_string(),
        ]
    };
    let mut cases = vec![
        (
            annotate_with(&p("missing.pcap"), &log, &out),
            "cannot read the capture",
        ),
        (
            annotate_with(&p("notes.txt"), &log, &out),
            "is not a pcap or pcapng capture",
        ),
        (
            annotate_with(&p("c.pcap.gz"), &log, &out),
            "gzip-compressed",
        ),
        (
            annotate_with(&empty, &p("missing.jsonl"), &out),
            "cannot read the journey log",
        ),
        (
            annotate_with(&empty, &p("bad.jsonl"), &out),
            "bad.jsonl line 2: not JSON",
        ),
        (
            annotate_with(&empty, &p("text.jsonl"), &out),
            "watch --json",
        ),
        (annotate_with(&empty, &empty, &out), "line 1: not JSON"),
        (
            annotate_with(&empty, &log, &p("nodir/o")),
            "cannot write -o",
        ),
        (annotate_with(&empty, &log, &empty), "is the capture itself"),
        (
            vec![
                "annotate".into(),
                empty.clone(),
                "--journeys".into(),
                log.clone(),
            ],
            "--output",
        ),
        (
            vec!["watch".into(), "--pcapng".into(), p("nodir/x.pcapng")],
            "cannot write --pcapng",
        ),
    ];
    let mut negative = annotate_with(&empty, &log, &out);
    negative.push("--tolerance-ms=-1".into());
    cases.push((negative, "tolerance"));
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
