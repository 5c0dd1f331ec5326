use super::EventHeader;

/// Most bytes of a packet one event can carry (from the link-layer header on). Covers a full
/// Ethernet frame at the usual 1500-byte MTU; larger packets are truncated and keep their
/// original length in `wire_len`.
pub const SNAP_MAX: usize = 1536;

/// A packet seen at device receive (`netif_receive_skb`), written by the kernel with only
/// `PACKET_EVENT_FIXED + cap_len` bytes (the rest of `data` is not sent).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PacketEvent {
    pub header: EventHeader,
    /// The `struct sk_buff` address: later hooks name the packet by it.
    pub skb: u64,
    /// skb->len at device receive: bytes from the network header on.
    pub len: u32,
    /// Original frame length (len + link-layer header), as a capture's "original length".
    pub wire_len: u32,
    pub ifindex: u32,
    /// Inode number of the device's network namespace (ifindex is only unique within one).
    pub netns: u32,
    pub ifname: [u8; 16],
    /// Bytes of link-layer header at the start of `data` (14 for Ethernet, 0 when none).
    pub mac_len: u16,
    /// Bytes of `data` that are valid.
    pub cap_len: u16,
    /// skb->protocol (EtherType), host byte order.
    pub ethertype: u16,
    pub _pad: u16,
    pub data: [u8; SNAP_MAX],
}

/// Size of a packet event without its data.
pub const PACKET_EVENT_FIXED: usize = core::mem::size_of::<PacketEvent>() - SNAP_MAX;
const _: () = assert!(PACKET_EVENT_FIXED == 80);
