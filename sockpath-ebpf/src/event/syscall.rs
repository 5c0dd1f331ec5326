use super::{EventHeader, SockInfo};

/// The socket system calls sockpath follows, as strace names them.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallKind {
    Socket = 1,
    Bind = 2,
    Listen = 3,
    Accept = 4,
    Accept4 = 5,
    Connect = 6,
    Setsockopt = 7,
    Shutdown = 8,
    Close = 9,
    Read = 10,
    Recvfrom = 12,
    Recvmsg = 14,
}

impl SyscallKind {
    pub const ALL: [SyscallKind; 12] = [
        Self::Socket,
        Self::Bind,
        Self::Listen,
        Self::Accept,
        Self::Accept4,
        Self::Connect,
        Self::Setsockopt,
        Self::Shutdown,
        Self::Close,
        Self::Read,
        Self::Recvfrom,
        Self::Recvmsg,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| *k as u8 == v)
    }

    /// The syscall's name, which is also its tracepoint's suffix (syscalls/sys_enter_NAME).
    pub fn name(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Bind => "bind",
            Self::Listen => "listen",
            Self::Accept => "accept",
            Self::Accept4 => "accept4",
            Self::Connect => "connect",
            Self::Setsockopt => "setsockopt",
            Self::Shutdown => "shutdown",
            Self::Close => "close",
            Self::Read => "read",
            Self::Recvfrom => "recvfrom",
            Self::Recvmsg => "recvmsg",
        }
    }

    /// Calls among the most frequent on any machine: the kernel follows them only for
    /// processes known to own a watched socket.
    pub fn is_hot(self) -> bool {
        matches!(
            self,
            Self::Close | Self::Read | Self::Recvfrom | Self::Recvmsg
        )
    }

    /// Reads: not hooked as system calls; a read (SockWhat::Recv) names the call it was made in,
    /// from the reader's registers.
    pub fn is_read(self) -> bool {
        matches!(self, Self::Read | Self::Recvfrom | Self::Recvmsg)
    }
}

/// A socket address read from the caller's memory (bind, connect).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockAddrRaw {
    /// AF_INET, AF_INET6, or 0 when none was read.
    pub family: u16,
    /// Port, host byte order.
    pub port: u16,
    pub _pad: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}

/// One socket system call of a watched process, written at its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallEvent {
    /// `ts_ns` is the time of return.
    pub header: EventHeader,
    /// Time of entry.
    pub enter_ns: u64,
    /// [`SyscallKind`] as u8.
    pub kind: u8,
    pub _pad: [u8; 3],
    /// The fd argument (or -1 for socket()).
    pub fd: i32,
    /// Return value: an fd, a byte count, 0, or -errno.
    pub ret: i64,
    /// The other arguments as strace shows them: socket(family, type, protocol),
    /// setsockopt(level, optname, *optval as int, optlen), listen(backlog), shutdown(how),
    /// bind/connect(addrlen), accept/accept4(address pointer, flags in args[2]).
    pub args: [u64; 4],
    /// bind/connect address argument.
    pub addr: SockAddrRaw,
    /// The socket the call acted on, as it was at return (socket/accept: the new socket).
    pub sock: SockInfo,
    /// accept: the listening socket.
    pub other: SockInfo,
    pub comm: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SyscallEvent>() == 256);
