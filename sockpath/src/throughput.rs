//! How many events per second user space can take: the bytes the kernel writes for a flood of
//! small UDP datagrams (device receive, socket queue, the read with its call), through the
//! pipeline the live session runs (decoding, assembly, time ordering, JSON or text output into
//! a sink that discards it). No kernel needed:
//! `cargo test --release -p sockpath throughput -- --ignored --nocapture`.
//! Under valgrind --tool=callgrind it shows where the time goes.

use std::{collections::HashMap, time::Instant};

use sockpath_ebpf::event::{CallInfo, EventKind, SockEvent, SockWhat, SyscallKind, CTX_NET_RX};

use crate::{
    decode::fixture,
    filter::WatchFilter,
    journey::{clock::Clock, model::Owner, Config},
    kernel::names::KernelNames,
    live::{BATCH, DRAIN, TICK},
    output::{json::JsonSink, text::TextSink, Sink, StartInfo},
    packet::fixture::udp4,
    pipeline::{Owners, Pipeline},
};

fn sock_event(what: SockWhat, ts: u64, journey: u64, net_rx: bool) -> Vec<u8> {
    let mut e = SockEvent {
        header: fixture::header(
            EventKind::Sock,
            std::mem::size_of::<SockEvent>(),
            ts,
            journey,
        ),
        what: what as u16,
        ..Default::default()
    };
    e.header.ctx = if net_rx { CTX_NET_RX } else { 0 };
    e.sock.sk = 0xffff_8880_0000_1000;
    e.sock.ino = 4242;
    e.sock.family = libc::AF_INET as u16;
    e.sock.protocol = 17;
    e.sock.lport = 4000;
    e.sock.state = 7;
    e.sock.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
    e.comm[..6].copy_from_slice(b"iperf3");
    if what == SockWhat::Recv {
        e.arg0 = 64;
        e.call = CallInfo {
            enter_ns: ts - 500,
            count: 65536,
            fd: 5,
            kind: SyscallKind::Recvfrom as u8,
            _pad: [0; 3],
        };
    }
    fixture::bytes_of(&e)
}

/// The records of `n` datagrams, in the order the ring buffer would hold them, each with the
/// time the kernel took it.
fn flood(n: u64) -> Vec<(u64, Vec<u8>)> {
    let frame = udp4(5000, 4000, &[0u8; 64]);
    let mut out = Vec::new();
    for i in 0..n {
        let ts = START_NS + i * 4_000;
        let id = (1 << 48) | (i + 1);
        out.push((ts, fixture::packet(ts, id, &frame)));
        out.push((
            ts + 1_000,
            sock_event(SockWhat::DataReady, ts + 1_000, id, true),
        ));
        out.push((ts + 2_000, sock_event(SockWhat::Recv, ts + 2_000, 0, false)));
    }
    out
}

/// The kernel's time of the first datagram.
const START_NS: u64 = 1_000_000_000;

/// A benchmark on fixtures searches no /proc.
struct NoOwners;

impl Owners for NoOwners {
    fn scan(&mut self) -> HashMap<u64, Owner> {
        HashMap::new()
    }
}

/// The records through the pipeline on the live loop's schedule, in the fixtures' time (a
/// datagram every 4 µs): every `DRAIN` the records taken by then are read in batches of at
/// most `BATCH`, back to back until one finds none left, and every `TICK` the pipeline ticks.
/// `others` more pipelines, each watching another port, are fed every record too, as a
/// daemon feeds its other watchers.
fn run(json: bool, others: u16) -> f64 {
    let n = std::env::var("THROUGHPUT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let records = flood(n);
    let pipeline = |port: u16| {
        let cfg = Config {
            filter: WatchFilter::port(port),
            ..Config::default()
        };
        let sink: Box<dyn Sink> = if json {
            Box::new(JsonSink::new(std::io::sink()))
        } else {
            Box::new(TextSink::new(std::io::sink()))
        };
        Pipeline::new(cfg, KernelNames::default(), || Clock::fixed(0), vec![sink])
    };
    let mut pipelines: Vec<Pipeline> = std::iter::once(4000)
        .chain((0..others).map(|i| 5001 + i))
        .map(pipeline)
        .collect();
    let info = StartInfo {
        filter: String::new(),
        kernel: String::new(),
        attach_ms: 0.0,
        hooks: Vec::new(),
    };
    let drain_ns = DRAIN.as_nanos() as u64;
    let tick_ns = TICK.as_nanos() as u64;
    let started = Instant::now();
    for p in pipelines.iter_mut() {
        p.start(&info, START_NS).unwrap();
    }
    let (mut now, mut next_tick, mut read) = (START_NS, START_NS, 0);
    while read < records.len() {
        now += drain_ns;
        let taken = read + records[read..].partition_point(|(ts, _)| *ts < now);
        loop {
            let batch = (taken - read).min(BATCH);
            for (_, r) in &records[read..read + batch] {
                for p in pipelines.iter_mut() {
                    p.ingest(r);
                }
            }
            read += batch;
            let emptied = batch < BATCH;
            for p in pipelines.iter_mut() {
                p.drain(emptied.then_some(now)).unwrap();
            }
            if emptied {
                break;
            }
        }
        if now >= next_tick {
            for p in pipelines.iter_mut() {
                p.tick(now, 0, &mut NoOwners).unwrap();
            }
            next_tick += tick_ns;
        }
    }
    let mut summaries = Vec::new();
    for mut p in pipelines {
        let summary = p.finish(now, 0).unwrap();
        p.close(&summary).unwrap();
        summaries.push(summary);
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = &summaries[0];
    assert_eq!(summary.decode_errors, 0, "every fixture decodes");
    assert_eq!(summary.journeys, n);
    assert_eq!(summary.complete, n, "every datagram read");
    for other in &summaries[1..] {
        assert_eq!(other.journeys, 0, "another port's pipeline keeps none");
    }
    n as f64 / secs
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture in release mode"]
fn throughput() {
    for json in [true, false] {
        let per_s = run(json, 0);
        println!(
            "{}: {per_s:.0} datagrams/s ({:.2} µs each: 3 events, a journey and a read call)",
            if json { "json" } else { "text" },
            1e6 / per_s
        );
    }
}

/// A daemon with more watchers: every record goes to every watcher's pipeline, and those of
/// other ports leave the datagrams out.
#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture in release mode"]
fn throughput_with_other_watchers() {
    for others in [0, 4, 19] {
        let per_s = run(true, others);
        println!(
            "json, {} watchers: {per_s:.0} datagrams/s ({:.2} µs each)",
            others + 1,
            1e6 / per_s
        );
    }
}
