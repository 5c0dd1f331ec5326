//! System-call events: a socket call of a watched process, with its result.

use std::net::IpAddr;

use sockpath_ebpf::event::{SyscallEvent, SyscallKind};

use super::{
    header::{text, Meta},
    socket::{sockaddr, Socket},
    DecodeError,
};

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

pub fn decode(meta: Meta, e: &SyscallEvent) -> Result<SyscallEv, DecodeError> {
    Ok(SyscallEv {
        meta,
        enter_ns: e.enter_ns,
        kind: SyscallKind::from_u8(e.kind).ok_or(DecodeError::Code("syscall", e.kind.into()))?,
        fd: e.fd,
        ret: e.ret,
        args: e.args,
        addr: sockaddr(&e.addr),
        sock: Socket::of(&e.sock),
        other: Socket::of(&e.other),
        comm: text(&e.comm),
    })
}
