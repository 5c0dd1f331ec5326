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
    /// udp_fail_queue_rcv_skb / sock_rcvqueue_full: the socket `sk` could not queue it; `arg0` = rc,
    /// `arg1` = the [`QueueFullHook`] that saw it.
    QueueFail = 5,
    /// It entered a receive-path function (`arg0` = [`Hop`]), seen by fentry or kprobe.
    Hop = 6,
    /// consume_skb: freed after the kernel was done with it, not dropped; `location` = the
    /// caller (0 on kernels before 6.3, whose tracepoint does not pass it).
    Consumed = 7,
    /// A TCP segment the kernel sent in answer while processing the packet, from no full
    /// socket (a time-wait socket, TCP's per-CPU control socket, or none at all: a SYN-ACK
    /// carrying a SYN cookie): `arg0` = its TCP flags byte, `sk` = the sending socket (0: none),
    /// `skb` = the segment sent.
    Answer = 8,
}

/// `SkbEvent::arg1` of a drop whose rx_sk was a time-wait socket: this bit, and the socket's
/// tw_substate in the low byte.
pub const DROP_AT_TIME_WAIT: i32 = 0x100;
/// With [`DROP_AT_TIME_WAIT`]: `SkbEvent::arg2` holds the jiffies left before the time-wait
/// socket's timer fires.
pub const DROP_TW_LEFT: i32 = 0x200;

/// `SkbEvent::arg0` of a drop on a kernel whose kfree_skb tracepoint passes no reason (before
/// 5.17): enum skb_drop_reason has no negative values.
pub const DROP_REASON_NOT_GIVEN: i32 = -1;

/// Receive-path functions whose entry a journey records (kernels with fentry or kprobes).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    IpRcv = 1,
    Ipv6Rcv = 2,
    IpLocalDeliver = 3,
    Ip6Input = 4,
    TcpV4Rcv = 5,
    TcpV6Rcv = 6,
    UdpRcv = 7,
    Udpv6Rcv = 8,
}

impl Hop {
    pub const ALL: [Hop; 8] = [
        Hop::IpRcv,
        Hop::Ipv6Rcv,
        Hop::IpLocalDeliver,
        Hop::Ip6Input,
        Hop::TcpV4Rcv,
        Hop::TcpV6Rcv,
        Hop::UdpRcv,
        Hop::Udpv6Rcv,
    ];

    pub fn from_u16(v: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|h| *h as u16 == v)
    }

    /// The kernel function (const: the hook table attaches the hop's programs to it).
    pub const fn function(self) -> &'static str {
        match self {
            Hop::IpRcv => "ip_rcv",
            Hop::Ipv6Rcv => "ipv6_rcv",
            Hop::IpLocalDeliver => "ip_local_deliver",
            Hop::Ip6Input => "ip6_input",
            Hop::TcpV4Rcv => "tcp_v4_rcv",
            Hop::TcpV6Rcv => "tcp_v6_rcv",
            Hop::UdpRcv => "udp_rcv",
            Hop::Udpv6Rcv => "udpv6_rcv",
        }
    }
}

/// Which tracepoint saw a full receive queue: the two fire in different places, and a journey
/// names the one that did.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueFullHook {
    /// sock_rcvqueue_full: sock_queue_rcv_skb() found the receive buffer full.
    SockRcvqueueFull = 1,
    /// udp_fail_queue_rcv_skb: UDP could not queue the datagram.
    UdpFailQueueRcvSkb = 2,
}

impl QueueFullHook {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => Self::SockRcvqueueFull,
            2 => Self::UdpFailQueueRcvSkb,
            _ => return None,
        })
    }
}

impl SkbWhat {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Drop,
            3 => Self::ResetSent,
            4 => Self::IcmpSent,
            5 => Self::QueueFail,
            6 => Self::Hop,
            7 => Self::Consumed,
            8 => Self::Answer,
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
    /// A drop at a time-wait socket: the jiffies left on its timer (see [`DROP_TW_LEFT`]).
    pub arg2: u32,
    pub skb: u64,
    /// Kernel code address (kfree_skb's location).
    pub location: u64,
    /// The socket involved, if any.
    pub sk: u64,
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SkbEvent>() == 88);
