//! Builders for byte fixtures: the exact bytes the kernel writes, for tests without a kernel.

use sockpath_ebpf::event::{EventHeader, EventKind, PacketEvent, CTX_NET_RX, PACKET_EVENT_FIXED};

pub use super::wire::bytes_of;
use super::wire::read_prefix;

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

/// A packet event for an Ethernet frame, as many bytes as the kernel sends for it.
pub fn packet(ts_ns: u64, journey: u64, frame: &[u8]) -> Vec<u8> {
    let mut ev: PacketEvent = read_prefix(&[]).expect("an empty prefix fits any type");
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
