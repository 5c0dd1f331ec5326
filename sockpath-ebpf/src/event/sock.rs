use super::EventHeader;

/// A socket as the kernel held it at the moment of the event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockInfo {
    /// `struct sock` address (0 = no socket).
    pub sk: u64,
    /// Inode number of the socket's file (what /proc/PID/fd shows as socket:[N]); 0 while the
    /// socket has no file yet (a child waiting in a listener's accept queue) or no longer has one.
    pub ino: u64,
    /// Network namespace inode.
    pub netns: u32,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17); 0 when the kernel object has no protocol field
    /// (request and time-wait sockets).
    pub protocol: u16,
    /// Local port, host byte order.
    pub lport: u16,
    /// Remote port, host byte order.
    pub rport: u16,
    /// [`crate::event::TcpState`] as u8; UDP uses CLOSE while unconnected, ESTABLISHED once
    /// connected.
    pub state: u8,
    /// `SOCK_*` flags.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// Local address: IPv4 in the first 4 bytes, or IPv6.
    pub laddr: [u8; 16],
    /// Remote address, same encoding.
    pub raddr: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SockInfo>() == 64);

/// The socket belongs to a SO_REUSEPORT group (sk_reuseport_cb is set).
pub const SOCK_REUSEPORT: u8 = 1;

/// A read-family system call in progress (read, recvfrom, recvmsg), recorded at entry and
/// reported with the read itself: one event per read instead of two.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallInfo {
    pub enter_ns: u64,
    /// The count argument (read, recvfrom) or the flags (recvmsg).
    pub count: u64,
    pub fd: i32,
    /// [`crate::event::SyscallKind`] as u8; 0 = none.
    pub kind: u8,
    pub _pad: [u8; 3],
}

/// What a [`SockEvent`] reports.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockWhat {
    /// sk_data_ready: the socket's reader (or accept()er) was woken: data or a connection queued.
    DataReady = 1,
    /// inet_sock_set_state: `arg0` old state, `arg1` new state ([`crate::event::TcpState`]s).
    StateChange = 2,
    /// tcp_probe: TCP's established-state receive handled packet `skb` on this socket.
    TcpRcv = 3,
    /// A SYN-ACK left while a SYN was being processed: `sock` is the listener that owns the
    /// request socket `other` (so this is the listener the lookup chose).
    SynAck = 4,
    /// sock_recv_length: a reader took `arg0` bytes (or an error); `arg1` = flags, `arg2` = TCP
    /// copied_seq after; `call` = the reader's system call, when its process is followed.
    Recv = 5,
    /// tcp_receive_reset: a RST was accepted on this socket.
    ReceiveReset = 7,
    /// inet_sk_error_report: `arg0` = the error (ECONNREFUSED, ...) reported to the socket's user.
    ErrorReport = 8,
    /// tcp_destroy_sock / UDP release: the socket is gone.
    Destroy = 9,
    /// A socket lookup returned (fexit/kretprobe): `arg0` = [`LookupTable`], `sock` = the socket
    /// found (sk 0: none); `arg1` = a time-wait socket's tw_substate, with `arg2` 1 when `skb`
    /// (no sk_buff is named) holds the jiffies left before its timer fires; or a listener's
    /// accept queue length (sk_ack_backlog) with `arg2` its limit (sk_max_ack_backlog), `skb`
    /// its SYN queue length (icsk_accept_queue.qlen) and, when `call.enter_ns` is 1 (no call is
    /// named), its namespace's net.ipv4.tcp_max_syn_backlog in `call.count` and
    /// net.ipv4.tcp_syncookies in `call.fd`.
    Lookup = 10,
}

/// Which socket table a lookup searched.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupTable {
    /// TCP established (and request/time-wait) sockets, by 4-tuple.
    Established = 1,
    /// TCP listeners, by local address and port (SO_REUSEPORT groups choose a member here).
    Listener = 2,
    /// UDP sockets.
    Udp = 3,
}

impl LookupTable {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => Self::Established,
            2 => Self::Listener,
            3 => Self::Udp,
            _ => return None,
        })
    }
}

impl SockWhat {
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::DataReady,
            2 => Self::StateChange,
            3 => Self::TcpRcv,
            4 => Self::SynAck,
            5 => Self::Recv,
            7 => Self::ReceiveReset,
            8 => Self::ErrorReport,
            9 => Self::Destroy,
            10 => Self::Lookup,
            _ => return None,
        })
    }
}

/// Something that happened to a socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockEvent {
    pub header: EventHeader,
    /// [`SockWhat`] as u16.
    pub what: u16,
    pub _pad: u16,
    pub arg0: i32,
    pub arg1: i32,
    /// TCP copied_seq (what the reader has consumed), for `Recv`.
    pub arg2: u32,
    /// The packet, when the hook names one (tcp_probe).
    pub skb: u64,
    pub sock: SockInfo,
    /// A second socket: the request socket for `SynAck`.
    pub other: SockInfo,
    /// The system call in progress, for `Recv`.
    pub call: CallInfo,
    /// comm of the current task (meaningful in process context).
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SockEvent>() == 224);
