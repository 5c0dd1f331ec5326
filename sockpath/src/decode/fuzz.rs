//! No input panics the decoder: a deterministic generator over arbitrary bytes, headers that
//! claim every size for every kind, truncated and extended records of each kind, every code
//! each kind carries, and bit flips of valid records. Runs in `cargo test`; no fuzzing tools
//! needed.

use std::{
    mem::{offset_of, size_of},
    panic::{catch_unwind, AssertUnwindSafe},
};

use sockpath_ebpf::event::{
    EventHeader, EventKind, FibEvent, Hop, QueueFullHook, SkbEvent, SkbWhat, SockEvent, SockWhat,
    SyscallEvent, SyscallKind, TcpState, PACKET_EVENT_FIXED, SNAP_MAX,
};

use super::{decode, fixture, DecodeError, Event};
use crate::packet::fixture::{tcp4, udp6};

/// xorshift64*: reproducible, and enough to spread inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// Decodes `bytes`, failing the test with the input if the decoder panics.
fn decoded(bytes: &[u8]) -> Result<Event, DecodeError> {
    match catch_unwind(AssertUnwindSafe(|| decode(bytes))) {
        Ok(r) => r,
        Err(_) => panic!(
            "the decoder panicked on {} bytes: {:02x?}",
            bytes.len(),
            &bytes[..bytes.len().min(96)]
        ),
    }
}

/// Decodes `bytes`, whatever the result, failing the test if the decoder panics.
fn survives(bytes: &[u8]) {
    let _ = decoded(bytes);
}

fn set_header(b: &mut [u8], kind: u16, size: u16) {
    let k = offset_of!(EventHeader, kind);
    let s = offset_of!(EventHeader, size);
    b[k..k + 2].copy_from_slice(&kind.to_ne_bytes());
    b[s..s + 2].copy_from_slice(&size.to_ne_bytes());
}

fn sized<T>(kind: EventKind) -> EventHeader {
    fixture::header(kind, size_of::<T>(), 1_000, 7)
}

/// A valid record of every kind and code.
fn valid_records() -> Vec<Vec<u8>> {
    let mut out = vec![
        fixture::packet(1, 7, &tcp4(4444, 4000, 1, None, "S", &[])),
        fixture::packet(1, 7, &udp6(4444, 4000, b"hi")),
    ];
    for what in [1u16, 2, 3, 4, 5, 7, 8, 9, 10] {
        let mut e = SockEvent {
            header: sized::<SockEvent>(EventKind::Sock),
            what,
            arg0: 1,
            arg1: TcpState::CloseWait as i32,
            ..Default::default()
        };
        e.sock.sk = 0xabc;
        e.sock.family = libc::AF_INET6 as u16;
        e.call.kind = SyscallKind::Recvmsg as u8;
        out.push(fixture::bytes_of(&e));
    }
    for (what, arg1) in [
        (SkbWhat::Drop, 0),
        (SkbWhat::ResetSent, 0),
        (SkbWhat::IcmpSent, 3),
        (SkbWhat::QueueFail, QueueFullHook::SockRcvqueueFull as i32),
        (SkbWhat::Hop, 0),
        (SkbWhat::Consumed, 0),
        (SkbWhat::Answer, 0),
    ] {
        out.push(fixture::bytes_of(&SkbEvent {
            header: sized::<SkbEvent>(EventKind::Skb),
            what: what as u16,
            arg0: Hop::IpRcv as i32,
            arg1,
            ..Default::default()
        }));
    }
    out.push(fixture::bytes_of(&FibEvent {
        header: sized::<FibEvent>(EventKind::Fib),
        ..Default::default()
    }));
    for kind in SyscallKind::ALL {
        let mut e = SyscallEvent {
            header: sized::<SyscallEvent>(EventKind::Syscall),
            kind: kind as u8,
            ..Default::default()
        };
        e.addr.family = libc::AF_INET as u16;
        out.push(fixture::bytes_of(&e));
    }
    out
}

#[test]
fn the_valid_records_decode() {
    for r in valid_records() {
        assert!(decoded(&r).is_ok(), "{:?}", decoded(&r));
    }
}

#[test]
fn headers_claiming_every_size_for_every_kind() {
    let mut rng = Rng::new(1);
    let mut buf = vec![0u8; usize::from(u16::MAX) + 16];
    rng.fill(&mut buf);
    for kind in 0..=6u16 {
        for claimed in 0..=u16::MAX {
            set_header(&mut buf, kind, claimed);
            let c = usize::from(claimed);
            // Exactly the claimed size, the ring buffer's rounding up to 8, and fewer bytes
            // than claimed.
            for len in [c, c.next_multiple_of(8), c.saturating_sub(1), 40] {
                let len = len.min(buf.len());
                let got = decoded(&buf[..len]);
                if c > len {
                    assert!(got.is_err(), "{claimed} claimed, {len} came: {got:?}");
                }
            }
        }
    }
}

#[test]
fn truncated_and_extended_records_of_each_kind() {
    for r in valid_records() {
        let full = r.len();
        for len in 0..full + 24 {
            let mut b = r.clone();
            b.resize(len, 0xee);
            // As the kernel would size it, and still claiming the original size.
            survives(&b);
            if len >= size_of::<EventHeader>() {
                let kind = u16::from_ne_bytes([b[0], b[1]]);
                set_header(&mut b, kind, len.min(usize::from(u16::MAX)) as u16);
                let got = decoded(&b);
                if len != full && kind != EventKind::Packet as u16 {
                    assert!(got.is_err(), "{len} of {full}: {got:?}");
                }
            }
        }
    }
}

#[test]
fn every_code_of_each_kind() {
    let interesting = [
        i32::MIN,
        -65536,
        -1,
        0,
        1,
        2,
        3,
        5,
        6,
        8,
        9,
        12,
        13,
        255,
        256,
        65535,
        65536 + 1,
        i32::MAX,
    ];
    for what in 0..=u16::MAX {
        // Every argument that matters for the codes the kinds know, one for the others.
        let args: &[i32] = if what <= 16 { &interesting } else { &[1] };
        for &arg in args {
            let e = SockEvent {
                header: sized::<SockEvent>(EventKind::Sock),
                what,
                arg0: arg,
                arg1: arg.wrapping_add(1),
                ..Default::default()
            };
            survives(&fixture::bytes_of(&e));
            let e = SkbEvent {
                header: sized::<SkbEvent>(EventKind::Skb),
                what,
                arg0: arg,
                arg1: arg,
                ..Default::default()
            };
            survives(&fixture::bytes_of(&e));
        }
    }
    for kind in 0..=u8::MAX {
        let mut s = SyscallEvent {
            header: sized::<SyscallEvent>(EventKind::Syscall),
            kind,
            ..Default::default()
        };
        for family in [0, 2, 10, 0xffff] {
            s.addr.family = family;
            survives(&fixture::bytes_of(&s));
        }
        let mut e = SockEvent {
            header: sized::<SockEvent>(EventKind::Sock),
            what: SockWhat::Recv as u16,
            ..Default::default()
        };
        e.call.kind = kind;
        e.sock.state = kind;
        assert!(decoded(&fixture::bytes_of(&e)).is_ok(), "any call kind");
    }
    // A packet's cap_len, every value, against the bytes that came.
    let base = fixture::packet(1, 7, &tcp4(4444, 4000, 1, None, "S", &[]));
    let at = offset_of!(sockpath_ebpf::event::PacketEvent, cap_len);
    let mut b = base.clone();
    b.resize(PACKET_EVENT_FIXED + SNAP_MAX + 8, 0);
    for cap in 0..=u16::MAX {
        b[at..at + 2].copy_from_slice(&cap.to_ne_bytes());
        for len in [base.len(), PACKET_EVENT_FIXED + SNAP_MAX, b.len()] {
            set_header(&mut b, EventKind::Packet as u16, len as u16);
            let got = decoded(&b[..len]);
            assert_eq!(
                got.is_ok(),
                usize::from(cap) == len - PACKET_EVENT_FIXED
                    && len <= PACKET_EVENT_FIXED + SNAP_MAX,
                "cap {cap} in {len} bytes: {got:?}"
            );
        }
    }
}

#[test]
fn arbitrary_bytes_and_bit_flips() {
    let mut rng = Rng::new(0x5eed);
    let mut buf = vec![0u8; 2048];
    for i in 0..50_000 {
        let len = rng.below(buf.len());
        rng.fill(&mut buf[..len]);
        if i % 2 == 0 && len >= size_of::<EventHeader>() {
            // A plausible header, so the bodies are reached.
            set_header(&mut buf, 1 + rng.below(5) as u16, len as u16);
        }
        survives(&buf[..len]);
    }
    let valid = valid_records();
    for _ in 0..50_000 {
        let mut b = valid[rng.below(valid.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] ^= 1 << rng.below(8);
        }
        survives(&b);
    }
}
