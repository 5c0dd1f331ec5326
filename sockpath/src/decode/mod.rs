//! Raw ring-buffer bytes -> typed events. Pure functions: every size is checked before a read,
//! and a malformed record is an error value, never a panic.
//!
//! One file per kind of event; `wire` is the only place that reads the kernel's structs.

mod fib;
#[cfg(test)]
pub mod fixture;
#[cfg(test)]
mod fuzz;
mod header;
mod packet;
mod skb;
mod sock;
mod socket;
mod syscall;
mod wire;

use sockpath_ebpf::event::{EventHeader, EventKind, HEADER_SIZE};

use self::wire::{exact, read};
pub use self::{
    fib::FibEv,
    header::Meta,
    packet::PacketRx,
    skb::{SkbEv, SkbKind},
    sock::{Call, SockEv, SockKind},
    socket::Socket,
    syscall::SyscallEv,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than an event header")]
    Short(usize),
    #[error("record says it is {claimed} bytes but {actual} arrived")]
    Size { claimed: usize, actual: usize },
    #[error("unknown event kind {0}")]
    Kind(u16),
    #[error("{kind:?} event of {size} bytes, expected {expected}")]
    BodySize {
        kind: EventKind,
        size: usize,
        expected: usize,
    },
    #[error("unknown {0} code {1}")]
    Code(&'static str, i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Packet(PacketRx),
    Sock(SockEv),
    Skb(SkbEv),
    Fib(FibEv),
    Syscall(SyscallEv),
}

impl Event {
    /// When the kernel took it (monotonic nanoseconds).
    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Packet(e) => e.meta.ts_ns,
            Event::Sock(e) => e.meta.ts_ns,
            Event::Skb(e) => e.meta.ts_ns,
            Event::Fib(e) => e.meta.ts_ns,
            Event::Syscall(e) => e.meta.ts_ns,
        }
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let h: EventHeader = read(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let claimed = usize::from(h.size);
    // The ring buffer rounds records up to 8 bytes; the header carries the real size.
    let bytes = bytes
        .get(..claimed)
        .filter(|_| claimed >= HEADER_SIZE)
        .ok_or(DecodeError::Size {
            claimed,
            actual: bytes.len(),
        })?;
    let kind = EventKind::from_u16(h.kind).ok_or(DecodeError::Kind(h.kind))?;
    let meta = Meta::of(&h);
    Ok(match kind {
        EventKind::Packet => Event::Packet(packet::decode(meta, bytes)?),
        EventKind::Sock => Event::Sock(sock::decode(meta, &exact(kind, bytes)?)?),
        EventKind::Skb => Event::Skb(skb::decode(meta, &exact(kind, bytes)?)?),
        EventKind::Fib => Event::Fib(fib::decode(meta, &exact(kind, bytes)?)),
        EventKind::Syscall => Event::Syscall(syscall::decode(meta, &exact(kind, bytes)?)?),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use sockpath_ebpf::event::{
        PacketEvent, SockEvent, SockWhat, SyscallEvent, SyscallKind, PACKET_EVENT_FIXED, SNAP_MAX,
    };

    use super::{fixture::*, *};

    #[test]
    fn short_and_oversized_records_are_errors() {
        assert_eq!(decode(&[0u8; 8]), Err(DecodeError::Short(8)));
        let mut h = bytes_of(&header(EventKind::Sock, 4096, 1, 0));
        h.resize(64, 0);
        assert!(matches!(
            decode(&h),
            Err(DecodeError::Size { claimed: 4096, .. })
        ));
        let h = bytes_of(&header(EventKind::Sock, 16, 1, 0));
        assert!(matches!(
            decode(&h),
            Err(DecodeError::Size { claimed: 16, .. })
        ));
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let h = header(EventKind::Sock, HEADER_SIZE, 1, 0);
        let mut b = bytes_of(&h);
        b[0] = 99;
        assert_eq!(decode(&b), Err(DecodeError::Kind(99)));
    }

    #[test]
    fn sock_event_with_wrong_size_is_rejected() {
        let e = SockEvent {
            header: header(EventKind::Sock, 100, 5, 7),
            what: SockWhat::DataReady as u16,
            ..Default::default()
        };
        let b = bytes_of(&e);
        assert!(matches!(
            decode(&b),
            Err(DecodeError::BodySize { size: 100, .. })
        ));
    }

    #[test]
    fn packet_keeps_only_captured_bytes() {
        let frame = [0xaa; 54];
        let b = packet(10, 1, &frame);
        let Event::Packet(p) = decode(&b).unwrap() else {
            panic!("not a packet")
        };
        assert_eq!(p.data.len(), 54);
        assert_eq!(p.ifname, "lo");
        assert_eq!(p.mac_len, 14);
    }

    #[test]
    fn packet_with_inconsistent_cap_len_is_rejected() {
        let mut b = packet(10, 1, &[0u8; 54]);
        b.truncate(b.len() - 4);
        // The header still claims the full size.
        assert!(decode(&b).is_err());
    }

    /// A record that claims more than a packet event can hold is an error. It used to be copied
    /// into a buffer of the event's size first, which panicked.
    #[test]
    fn packet_longer_than_a_packet_event_is_an_error() {
        let max = PACKET_EVENT_FIXED + SNAP_MAX;
        for size in [max, max + 1, max + 400, usize::from(u16::MAX)] {
            let mut b = packet(10, 1, &[0u8; 54]);
            b[2..4].copy_from_slice(&(size as u16).to_ne_bytes());
            // cap_len claims it too.
            let cap = std::mem::offset_of!(PacketEvent, cap_len);
            b[cap..cap + 2].copy_from_slice(&((size - PACKET_EVENT_FIXED) as u16).to_ne_bytes());
            b.resize(size, 0);
            let got = decode(&b);
            if size == max {
                assert!(got.is_ok(), "{got:?}");
            } else {
                assert!(
                    matches!(got, Err(DecodeError::BodySize { .. })),
                    "{size}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn syscall_decodes_address_and_kind() {
        let mut e = SyscallEvent {
            header: header(
                EventKind::Syscall,
                std::mem::size_of::<SyscallEvent>(),
                9,
                0,
            ),
            kind: SyscallKind::Connect as u8,
            fd: 3,
            ret: -111,
            ..Default::default()
        };
        e.addr.family = libc::AF_INET as u16;
        e.addr.port = 4000;
        e.addr.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let Event::Syscall(s) = decode(&bytes_of(&e)).unwrap() else {
            panic!("not a syscall")
        };
        assert_eq!(s.kind, SyscallKind::Connect);
        assert_eq!(s.addr, Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 4000)));
        assert_eq!(s.ret, -111);
    }

    #[test]
    fn bad_syscall_kind_is_an_error() {
        let e = SyscallEvent {
            header: header(
                EventKind::Syscall,
                std::mem::size_of::<SyscallEvent>(),
                9,
                0,
            ),
            kind: 200,
            ..Default::default()
        };
        assert_eq!(
            decode(&bytes_of(&e)),
            Err(DecodeError::Code("syscall", 200))
        );
    }
}
