use super::EventHeader;

/// What an [`SkbEvent`] reports about a tracked packet.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbWhat {
    /// kfree_skb: dropped; `arg0` = enum skb_drop_reason value, `sk` = rx_sk, `location` = caller.
    Drop = 1,
    /// tcp_send_reset: a RST was sent in answer to it; `arg0` = enum sk_rst_reason, `arg1` = state,
    /// `sk` = the socket (0 when no socket wanted it).
    ResetSent = 3,
    /// icmp_send: an ICMP error was sent about it; `arg0` = type, `arg1` = code.
    IcmpSent = 4,
    /// udp_fail_queue_rcv_skb / sock_rcvqueue_full: the socket `sk` could not queue it; `arg0` = rc.
    QueueFail = 5,
}

impl SkbWhat {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Drop,
            3 => Self::ResetSent,
            4 => Self::IcmpSent,
            5 => Self::QueueFail,
            _ => return None,
        })
    }
}

/// Something that happened to a packet a `PacketEvent` announced.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SkbEvent {
    pub header: EventHeader,
    /// [`SkbWhat`] as u16.
    pub what: u16,
    pub _pad: u16,
    pub arg0: i32,
    pub arg1: i32,
    pub _pad2: u32,
    pub skb: u64,
    /// Kernel code address (kfree_skb's location).
    pub location: u64,
    /// The socket involved, if any.
    pub sk: u64,
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SkbEvent>() == 88);
