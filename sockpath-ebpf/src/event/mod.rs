//! Raw events: what the eBPF programs write into the ring buffer.
//!
//! Every event starts with an [`EventHeader`] naming its kind and total size, so the decoder can
//! check the size before it reads the body (the retis pattern).

mod fib;
mod packet;
mod skb;
mod sock;
mod syscall;
mod tcp_state;

pub use fib::FibEvent;
pub use packet::{PacketEvent, PACKET_EVENT_FIXED, SNAP_MAX};
pub use skb::{
    Hop, QueueFullHook, SkbEvent, SkbWhat, DROP_AT_TIME_WAIT, DROP_REASON_NOT_GIVEN, DROP_TW_LEFT,
};
pub use sock::{CallInfo, LookupTable, SockEvent, SockInfo, SockWhat, SOCK_REUSEPORT};
pub use syscall::{SockAddrRaw, SyscallEvent, SyscallKind};
pub use tcp_state::{reset_error, TcpState};

/// Kinds of raw event, the first field of every event.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A packet at device receive (netif_receive_skb) that passed the filter.
    Packet = 1,
    /// Something that happened to a socket (wake-up, state change, read, ...).
    Sock = 2,
    /// Something that happened to a tracked packet (dropped, copied to a reader, reset, ICMP).
    Skb = 3,
    /// An input route lookup (fib_table_lookup) for a watched flow.
    Fib = 4,
    /// A socket system call of a watched process, with its return value.
    Syscall = 5,
}

impl EventKind {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Packet,
            2 => Self::Sock,
            3 => Self::Skb,
            4 => Self::Fib,
            5 => Self::Syscall,
            _ => return None,
        })
    }
}

/// The event was produced while the CPU was serving the NET_RX softirq, so it belongs to the
/// packet that softirq was processing (the `journey` field is that packet's id).
pub const CTX_NET_RX: u16 = 1;
/// A packet event sent late, by the first hook that saw the packet's end (drop, reset sent, ICMP
/// error, full queue): the packet was matched but not among the one in N followed
/// (`watch --sample N`), so no stage before its end was reported. Its time is still the device
/// receive's, where the kernel kept it.
pub const CTX_SAMPLED_OUT: u16 = 2;

/// Common prefix of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// [`EventKind`] as u16.
    pub kind: u16,
    /// Size of the whole event in bytes, header included.
    pub size: u16,
    /// CPU the event was produced on.
    pub cpu: u16,
    /// `CTX_*` flags.
    pub ctx: u16,
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    pub ts_ns: u64,
    /// bpf_get_current_pid_tgid(): tgid in the high half, thread id in the low half.
    pub pid_tgid: u64,
    /// Journey (packet) id: exact for packet and skb events; for socket events the packet the CPU
    /// was processing in NET_RX softirq (0 when none).
    pub journey: u64,
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
const _: () = assert!(HEADER_SIZE == 32);

/// Copies a NUL-padded kernel string (comm, ifname) into a `&str` view, up to the first NUL.
pub fn c_str(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}
