//! Packet events: a packet at device receive, with the bytes the kernel captured of it.

use sockpath_ebpf::event::{EventKind, PacketEvent, CTX_SAMPLED_OUT, PACKET_EVENT_FIXED, SNAP_MAX};

use super::{
    header::{text, Meta},
    wire::read_prefix,
    DecodeError,
};

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
    /// Matched but not followed (`watch --sample N`): sent late by the hook that saw the
    /// packet's end, the stages before which were not reported (`CTX_SAMPLED_OUT`).
    pub sampled_out: bool,
}

/// `bytes` is the whole record: the fixed part, then `cap_len` bytes of the packet (the kernel
/// sends no more of `PacketEvent::data` than that).
pub fn decode(meta: Meta, bytes: &[u8]) -> Result<PacketRx, DecodeError> {
    let body_size = |expected| DecodeError::BodySize {
        kind: EventKind::Packet,
        size: bytes.len(),
        expected,
    };
    let (fixed, data) = bytes
        .split_at_checked(PACKET_EVENT_FIXED)
        .ok_or(body_size(PACKET_EVENT_FIXED))?;
    // The fixed part only: the data is taken from the record as it is, never copied into the
    // event's SNAP_MAX-byte array (a record claiming more would not fit).
    let p: PacketEvent = read_prefix(fixed).ok_or(body_size(PACKET_EVENT_FIXED))?;
    let cap = usize::from(p.cap_len);
    if cap > SNAP_MAX || data.len() != cap {
        return Err(body_size(PACKET_EVENT_FIXED + cap));
    }
    Ok(PacketRx {
        meta,
        skb: p.skb,
        len: p.len,
        wire_len: p.wire_len,
        ifindex: p.ifindex,
        netns: p.netns,
        ifname: text(&p.ifname),
        mac_len: p.mac_len,
        ethertype: p.ethertype,
        data: data.to_vec(),
        sampled_out: p.header.ctx & CTX_SAMPLED_OUT != 0,
    })
}
