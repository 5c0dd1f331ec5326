//! Raw ring-buffer bytes -> typed events. Pure functions: every size is checked before a read,
//! and a malformed record is an error value, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sockpath_ebpf::event::{
    c_str, EventHeader, EventKind, FibEvent, PacketEvent, SkbEvent, SkbWhat, SockAddrRaw,
    SockEvent, SockInfo, SockWhat, SyscallEvent, SyscallKind, CTX_NET_RX, HEADER_SIZE,
    PACKET_EVENT_FIXED, SOCK_REUSEPORT,
};
use sockpath_ebpf::net::{AF_INET, AF_INET6};

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
    Code(&'static str, u32),
}

/// Fields every event has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub cpu: u16,
    /// Produced while the CPU served the NET_RX softirq.
    pub net_rx: bool,
    pub pid: u32,
    pub tid: u32,
    /// Exact journey id for packet/skb events, the CPU's current packet for socket events.
    pub journey: u64,
}

/// A socket as an event saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub sk: u64,
    pub ino: u64,
    pub netns: u32,
    pub family: u16,
    pub protocol: u16,
    pub lport: u16,
    pub rport: u16,
    pub state: u8,
    /// Member of a SO_REUSEPORT group.
    pub reuseport: bool,
    pub laddr: IpAddr,
    pub raddr: IpAddr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRx {
    pub meta: Meta,
    pub skb: u64,
    pub len: u32,
    pub wire_len: u32,
    pub ifindex: u32,
    pub netns: u32,
    pub ifname: String,
    pub mac_len: u16,
    pub ethertype: u16,
    /// From the link-layer header on, up to the snap length.
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockEv {
    pub meta: Meta,
    pub what: SockWhat,
    pub arg0: i32,
    pub arg1: i32,
    pub arg2: u32,
    pub skb: u64,
    pub sock: Socket,
    pub other: Socket,
    pub comm: String,
    /// For reads: the reader's system call, when its process is followed.
    pub call: Option<Call>,
}

/// A read-family system call in progress when a read happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub kind: SyscallKind,
    pub fd: i32,
    pub count: u64,
    pub enter_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbEv {
    pub meta: Meta,
    pub what: SkbWhat,
    pub arg0: i32,
    pub arg1: i32,
    pub skb: u64,
    pub location: u64,
    pub sk: u64,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibEv {
    pub meta: Meta,
    pub table: u32,
    pub err: i32,
    pub oif: i32,
    pub iif: i32,
    pub sport: u16,
    pub dport: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub gw: Ipv4Addr,
    pub dev: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallEv {
    /// `ts_ns` is the time of return.
    pub meta: Meta,
    pub enter_ns: u64,
    pub kind: SyscallKind,
    pub fd: i32,
    pub ret: i64,
    pub args: [u64; 4],
    pub addr: Option<(IpAddr, u16)>,
    pub sock: Socket,
    pub other: Socket,
    pub comm: String,
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

/// Reads a `T` from the start of `bytes`, which the caller has checked is long enough.
fn read<T: Copy>(bytes: &[u8]) -> T {
    assert!(bytes.len() >= std::mem::size_of::<T>());
    // SAFETY: length checked above; T is a repr(C) plain-data event type, valid for any bytes
    // (enums are carried as integers and converted after).
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

fn exact<T: Copy>(kind: EventKind, bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() != expected {
        return Err(DecodeError::BodySize {
            kind,
            size: bytes.len(),
            expected,
        });
    }
    Ok(read(bytes))
}

fn meta(h: &EventHeader) -> Meta {
    Meta {
        ts_ns: h.ts_ns,
        cpu: h.cpu,
        net_rx: h.ctx & CTX_NET_RX != 0,
        pid: (h.pid_tgid >> 32) as u32,
        tid: h.pid_tgid as u32,
        journey: h.journey,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(c_str(bytes)).into_owned()
}

pub fn ip(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    }
}

pub fn socket(si: &SockInfo) -> Socket {
    Socket {
        sk: si.sk,
        ino: si.ino,
        netns: si.netns,
        family: si.family,
        protocol: si.protocol,
        lport: si.lport,
        rport: si.rport,
        state: si.state,
        reuseport: si.flags & SOCK_REUSEPORT != 0,
        laddr: ip(si.family, &si.laddr),
        raddr: ip(si.family, &si.raddr),
    }
}

fn sockaddr(a: &SockAddrRaw) -> Option<(IpAddr, u16)> {
    (a.family == AF_INET || a.family == AF_INET6).then(|| (ip(a.family, &a.addr), a.port))
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() < HEADER_SIZE {
        return Err(DecodeError::Short(bytes.len()));
    }
    let h: EventHeader = read(bytes);
    let claimed = h.size as usize;
    // The ring buffer rounds records up to 8 bytes; the header carries the real size.
    if claimed < HEADER_SIZE || claimed > bytes.len() {
        return Err(DecodeError::Size {
            claimed,
            actual: bytes.len(),
        });
    }
    let bytes = &bytes[..claimed];
    let kind = EventKind::from_u16(h.kind).ok_or(DecodeError::Kind(h.kind))?;
    Ok(match kind {
        EventKind::Packet => {
            if bytes.len() < PACKET_EVENT_FIXED {
                return Err(DecodeError::BodySize {
                    kind,
                    size: bytes.len(),
                    expected: PACKET_EVENT_FIXED,
                });
            }
            // Read the fixed part through a zero-padded copy: only cap_len data bytes were sent.
            // On the stack: this runs for every packet.
            let mut full = [0u8; std::mem::size_of::<PacketEvent>()];
            full[..bytes.len()].copy_from_slice(bytes);
            let p: PacketEvent = read(&full);
            let cap = p.cap_len as usize;
            if PACKET_EVENT_FIXED + cap != bytes.len() {
                return Err(DecodeError::BodySize {
                    kind,
                    size: bytes.len(),
                    expected: PACKET_EVENT_FIXED + cap,
                });
            }
            Event::Packet(PacketRx {
                meta: meta(&h),
                skb: p.skb,
                len: p.len,
                wire_len: p.wire_len,
                ifindex: p.ifindex,
                netns: p.netns,
                ifname: text(&p.ifname),
                mac_len: p.mac_len,
                ethertype: p.ethertype,
                data: bytes[PACKET_EVENT_FIXED..].to_vec(),
            })
        }
        EventKind::Sock => {
            let e: SockEvent = exact(kind, bytes)?;
            let what =
                SockWhat::from_u16(e.what).ok_or(DecodeError::Code("sock", e.what.into()))?;
            Event::Sock(SockEv {
                meta: meta(&h),
                what,
                arg0: e.arg0,
                arg1: e.arg1,
                arg2: e.arg2,
                skb: e.skb,
                sock: socket(&e.sock),
                other: socket(&e.other),
                comm: text(&e.comm),
                call: SyscallKind::from_u8(e.call.kind).map(|kind| Call {
                    kind,
                    fd: e.call.fd,
                    count: e.call.count,
                    enter_ns: e.call.enter_ns,
                }),
            })
        }
        EventKind::Skb => {
            let e: SkbEvent = exact(kind, bytes)?;
            let what = SkbWhat::from_u16(e.what).ok_or(DecodeError::Code("skb", e.what.into()))?;
            Event::Skb(SkbEv {
                meta: meta(&h),
                what,
                arg0: e.arg0,
                arg1: e.arg1,
                skb: e.skb,
                location: e.location,
                sk: e.sk,
                comm: text(&e.comm),
            })
        }
        EventKind::Fib => {
            let e: FibEvent = exact(kind, bytes)?;
            Event::Fib(FibEv {
                meta: meta(&h),
                table: e.table,
                err: e.err,
                oif: e.oif,
                iif: e.iif,
                sport: e.sport,
                dport: e.dport,
                src: Ipv4Addr::from(e.src),
                dst: Ipv4Addr::from(e.dst),
                gw: Ipv4Addr::from(e.gw4),
                dev: text(&e.dev),
            })
        }
        EventKind::Syscall => {
            let e: SyscallEvent = exact(kind, bytes)?;
            let k =
                SyscallKind::from_u8(e.kind).ok_or(DecodeError::Code("syscall", e.kind.into()))?;
            Event::Syscall(SyscallEv {
                meta: meta(&h),
                enter_ns: e.enter_ns,
                kind: k,
                fd: e.fd,
                ret: e.ret,
                args: e.args,
                addr: sockaddr(&e.addr),
                sock: socket(&e.sock),
                other: socket(&e.other),
                comm: text(&e.comm),
            })
        }
    })
}

/// Builders for byte fixtures: the exact bytes the kernel writes, for tests without a kernel.
#[cfg(test)]
pub mod fixture {
    use super::*;

    pub fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: T is a repr(C) plain-data event type without implicit padding.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    pub fn header(kind: EventKind, size: usize, ts_ns: u64, journey: u64) -> EventHeader {
        EventHeader {
            kind: kind as u16,
            size: size as u16,
            cpu: 0,
            ctx: CTX_NET_RX,
            ts_ns,
            pid_tgid: (100u64 << 32) | 101,
            journey,
        }
    }

    pub fn packet(ts_ns: u64, journey: u64, frame: &[u8]) -> Vec<u8> {
        let mut ev: PacketEvent = unsafe { std::mem::zeroed() };
        ev.header = header(
            EventKind::Packet,
            PACKET_EVENT_FIXED + frame.len(),
            ts_ns,
            journey,
        );
        ev.skb = 0xffff_0000_0000_1000;
        ev.len = (frame.len() - 14) as u32;
        ev.wire_len = frame.len() as u32;
        ev.ifindex = 1;
        ev.netns = 4026531840;
        ev.ifname[..2].copy_from_slice(b"lo");
        ev.mac_len = 14;
        ev.cap_len = frame.len() as u16;
        ev.ethertype = 0x0800;
        ev.data[..frame.len()].copy_from_slice(frame);
        let mut out = bytes_of(&ev);
        out.truncate(PACKET_EVENT_FIXED + frame.len());
        out
    }
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let h = header(EventKind::Sock, HEADER_SIZE, 1, 0);
        let mut b = bytes_of(&h);
        b[0] = 99;
        assert_eq!(decode(&b), Err(DecodeError::Kind(99)));
    }

    #[test]
    fn sock_event_round_trips() {
        let mut e = SockEvent {
            header: header(EventKind::Sock, std::mem::size_of::<SockEvent>(), 5, 7),
            what: SockWhat::StateChange as u16,
            arg0: 3,
            arg1: 1,
            ..Default::default()
        };
        e.sock.family = libc::AF_INET as u16;
        e.sock.lport = 4000;
        e.sock.rport = 4444;
        e.sock.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.comm[..2].copy_from_slice(b"nc");
        let Event::Sock(s) = decode(&bytes_of(&e)).unwrap() else {
            panic!("not a sock event")
        };
        assert_eq!(s.what, SockWhat::StateChange);
        assert_eq!((s.arg0, s.arg1), (3, 1));
        assert_eq!(s.sock.laddr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(s.sock.lport, 4000);
        assert_eq!(s.comm, "nc");
        assert_eq!(s.meta.pid, 100);
        assert_eq!(s.meta.tid, 101);
        assert!(s.meta.net_rx);
        assert_eq!(s.meta.journey, 7);
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
