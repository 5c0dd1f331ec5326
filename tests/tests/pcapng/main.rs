//! Side by side with tcpdump and Wireshark: `watch --pcapng` and `annotate`, checked with the
//! real tcpdump and tshark capturing the same traffic at the same time.

mod capture;
mod frames;
mod traffic;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use sockpath_tests::{bin, free_port, sh, Netns, VethPair};

use capture::{require_tshark, temp_path, FileCapture, Recording};
use frames::{
    annotate, dump, journey_id, journey_key, pair_one_to_one, pcap_frames, stats, ts,
    tshark_frames, TIME_TOLERANCE_NS,
};
use traffic::traffic;

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
