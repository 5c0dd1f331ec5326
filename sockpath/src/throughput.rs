//! How many events per second user space can take: the bytes the kernel writes for a flood of
//! small UDP datagrams (device receive, socket queue, the read with its call), through
//! decoding, assembly and JSON or text output into a sink that discards it. No kernel needed:
//! `cargo test --release -p sockpath throughput -- --ignored --nocapture`.
//! Under valgrind --tool=callgrind it shows where the time goes.

use std::time::Instant;

use sockpath_ebpf::event::{CallInfo, EventKind, SockEvent, SockWhat, SyscallKind, CTX_NET_RX};

use crate::{
    decode::{self, fixture},
    filter::WatchFilter,
    journey::{clock::Clock, Assembler, Config},
    kernel::names::KernelNames,
    output::{json::JsonSink, text::TextSink, timeline::Timeline, Sink},
    packet::fixture::udp4,
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

/// The records of `n` datagrams, in the order the ring buffer would hold them.
fn flood(n: u64) -> Vec<Vec<u8>> {
    let frame = udp4(5000, 4000, &[0u8; 64]);
    let mut out = Vec::new();
    for i in 0..n {
        let ts = 1_000_000_000 + i * 4_000;
        let id = (1 << 48) | (i + 1);
        out.push(fixture::packet(ts, id, &frame));
        out.push(sock_event(SockWhat::DataReady, ts + 1_000, id, true));
        out.push(sock_event(SockWhat::Recv, ts + 2_000, 0, false));
    }
    out
}

fn run(json: bool) -> f64 {
    let n = std::env::var("THROUGHPUT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let records = flood(n);
    let cfg = Config {
        filter: WatchFilter {
            port: Some(4000),
            ..WatchFilter::default()
        },
        ..Config::default()
    };
    let mut asm = Assembler::new(cfg, KernelNames::default(), Clock::fixed(0));
    let mut timeline = Timeline::default();
    let mut sink: Box<dyn Sink> = if json {
        Box::new(JsonSink::new(std::io::sink()))
    } else {
        Box::new(TextSink::new(std::io::sink()))
    };
    let started = Instant::now();
    for (i, r) in records.iter().enumerate() {
        asm.push(decode::decode(r).expect("fixture decodes"));
        // A tick every 200 datagrams, as the live loop ticks every 25 ms.
        if i % 600 == 0 {
            let now = 1_000_000_000 + (i as u64 / 3) * 4_000;
            asm.tick(now);
            for item in asm.take_ready() {
                timeline.push(item);
            }
            for item in timeline.release(now.saturating_sub(asm_settle())) {
                sink.item(&item).unwrap();
            }
        }
    }
    asm.finish();
    for item in asm.take_ready() {
        timeline.push(item);
    }
    for item in timeline.release(u64::MAX) {
        sink.item(&item).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = asm.summary();
    assert_eq!(summary.journeys, n);
    assert_eq!(summary.complete, n, "every datagram read");
    n as f64 / secs
}

fn asm_settle() -> u64 {
    Config::default().settle_ns
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture in release mode"]
fn throughput() {
    for json in [true, false] {
        let per_s = run(json);
        println!(
            "{}: {per_s:.0} datagrams/s ({:.2} µs each: 3 events, a journey and a read call)",
            if json { "json" } else { "text" },
            1e6 / per_s
        );
    }
}
