//! Socket events: something happened to a socket (a wake-up, a state change, a read, ...).

use sockpath_ebpf::event::{LookupTable, SockEvent, SockWhat, SyscallKind, TcpState};

use super::{
    header::{text, Meta},
    socket::Socket,
    DecodeError,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SockEv {
    pub meta: Meta,
    /// comm of the current task (meaningful in process context).
    pub comm: String,
    pub kind: SockKind,
}

/// What happened, with what the kernel reported of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockKind {
    /// sk_data_ready: the socket's reader (or accept()er) was woken: data or a connection
    /// queued.
    DataReady { sock: Socket },
    /// inet_sock_set_state: `sock`, as it was before the change, goes from `from` to `to`.
    StateChange {
        sock: Socket,
        from: TcpState,
        to: TcpState,
    },
    /// tcp_probe: TCP's established-state receive handled packet `skb` on this socket.
    TcpRcv { sock: Socket, skb: u64 },
    /// A SYN-ACK left while a SYN was being processed: `listener` owns the request socket
    /// `request`, so it is the listener the lookup chose.
    SynAck { listener: Socket, request: Socket },
    /// sock_recv_length: a reader took `ret` bytes (or got -errno) with `flags`; for TCP,
    /// `copied_seq` is how far the stream has been consumed after the read. `call` is the
    /// reader's system call, when its process is followed.
    Recv {
        sock: Socket,
        ret: i32,
        flags: i32,
        copied_seq: u32,
        call: Option<Call>,
    },
    /// tcp_receive_reset: a RST was accepted on this socket.
    ReceiveReset { sock: Socket },
    /// inet_sk_error_report: `err` (ECONNREFUSED, ...) was reported to the socket's user.
    ErrorReport { sock: Socket, err: i32 },
    /// tcp_destroy_sock / UDP release: the socket is gone.
    Destroy { sock: Socket },
    /// A socket lookup in `table` returned `found` (None: no socket); `tw_substate`: the
    /// substate of a time-wait socket found; `accept_queue`: a listener's accept queue
    /// (length, limit) when it was found, `syn_queue` its SYN queue's length (the same limit).
    /// `tw_left`: jiffies left on the time-wait socket's timer; `syn_sysctls`: the listener's
    /// namespace's net.ipv4.tcp_max_syn_backlog and net.ipv4.tcp_syncookies (where read).
    Lookup {
        table: LookupTable,
        found: Option<Socket>,
        tw_substate: Option<u8>,
        tw_left: Option<u32>,
        accept_queue: Option<(u32, u32)>,
        syn_queue: Option<u32>,
        syn_sysctls: Option<(u32, u8)>,
    },
}

/// A read-family system call in progress when a read happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub kind: SyscallKind,
    pub fd: i32,
    pub count: u64,
    pub enter_ns: u64,
}

pub fn decode(meta: Meta, e: &SockEvent) -> Result<SockEv, DecodeError> {
    let what = SockWhat::from_u16(e.what).ok_or(DecodeError::Code("sock", e.what.into()))?;
    let sock = Socket::of(&e.sock);
    let state = |n: i32| {
        u8::try_from(n)
            .ok()
            .and_then(TcpState::from_u8)
            .ok_or(DecodeError::Code("TCP state", n.into()))
    };
    let kind = match what {
        SockWhat::DataReady => SockKind::DataReady { sock },
        SockWhat::StateChange => SockKind::StateChange {
            sock,
            from: state(e.arg0)?,
            to: state(e.arg1)?,
        },
        SockWhat::TcpRcv => SockKind::TcpRcv { sock, skb: e.skb },
        SockWhat::SynAck => SockKind::SynAck {
            listener: sock,
            request: Socket::of(&e.other),
        },
        SockWhat::Recv => SockKind::Recv {
            sock,
            ret: e.arg0,
            flags: e.arg1,
            copied_seq: e.arg2,
            // Kind 0: no call recorded; an unknown kind is no call either (the read still
            // happened).
            call: SyscallKind::from_u8(e.call.kind).map(|kind| Call {
                kind,
                fd: e.call.fd,
                count: e.call.count,
                enter_ns: e.call.enter_ns,
            }),
        },
        SockWhat::ReceiveReset => SockKind::ReceiveReset { sock },
        SockWhat::ErrorReport => SockKind::ErrorReport { sock, err: e.arg0 },
        SockWhat::Destroy => SockKind::Destroy { sock },
        SockWhat::Lookup => SockKind::Lookup {
            table: LookupTable::from_i32(e.arg0)
                .ok_or(DecodeError::Code("lookup table", e.arg0.into()))?,
            tw_substate: (sock.sk != 0 && sock.in_state(TcpState::TimeWait))
                .then_some(e.arg1 as u8),
            accept_queue: (sock.sk != 0 && sock.in_state(TcpState::Listen))
                .then_some((e.arg1 as u32, e.arg2)),
            syn_queue: (sock.sk != 0 && sock.in_state(TcpState::Listen)).then_some(e.skb as u32),
            tw_left: (sock.sk != 0 && sock.in_state(TcpState::TimeWait) && e.arg2 == 1)
                .then_some(e.skb as u32),
            syn_sysctls: (sock.sk != 0 && sock.in_state(TcpState::Listen) && e.call.enter_ns == 1)
                .then_some((e.call.count as u32, e.call.fd as u8)),
            found: (sock.sk != 0).then_some(sock),
        },
    };
    Ok(SockEv {
        meta,
        comm: text(&e.comm),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use sockpath_ebpf::event::EventKind;

    use super::{super::fixture::header, *};

    fn event(what: SockWhat, arg0: i32, arg1: i32) -> SockEvent {
        let mut e = SockEvent {
            header: header(EventKind::Sock, std::mem::size_of::<SockEvent>(), 5, 7),
            what: what as u16,
            arg0,
            arg1,
            ..Default::default()
        };
        e.sock.sk = 0xabc;
        e.sock.family = libc::AF_INET as u16;
        e.sock.lport = 4000;
        e.sock.rport = 4444;
        e.sock.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        e.comm[..2].copy_from_slice(b"nc");
        e
    }

    fn kind(e: &SockEvent) -> Result<SockKind, DecodeError> {
        decode(Meta::of(&e.header), e).map(|s| s.kind)
    }

    #[test]
    fn a_state_change_names_its_states() {
        let e = event(SockWhat::StateChange, 3, 1);
        let s = decode(Meta::of(&e.header), &e).unwrap();
        let SockKind::StateChange { sock, from, to } = s.kind else {
            panic!("not a state change: {:?}", s.kind)
        };
        assert_eq!((from, to), (TcpState::SynRecv, TcpState::Established));
        assert_eq!(sock.laddr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(sock.lport, 4000);
        assert_eq!(s.comm, "nc");
        assert_eq!((s.meta.pid, s.meta.tid, s.meta.journey), (100, 101, 7));
        assert!(s.meta.net_rx);
    }

    #[test]
    fn unknown_codes_are_errors() {
        let mut e = event(SockWhat::DataReady, 0, 0);
        e.what = 6;
        assert_eq!(kind(&e), Err(DecodeError::Code("sock", 6)));
        for (from, to) in [(0, 1), (1, 13), (-1, 1), (256 + 1, 1)] {
            let e = event(SockWhat::StateChange, from, to);
            assert!(
                matches!(kind(&e), Err(DecodeError::Code("TCP state", _))),
                "{from} -> {to}"
            );
        }
        let e = event(SockWhat::Lookup, 4, 0);
        assert_eq!(kind(&e), Err(DecodeError::Code("lookup table", 4)));
    }

    #[test]
    fn a_lookup_without_a_socket_found_none() {
        let mut e = event(SockWhat::Lookup, LookupTable::Listener as i32, 0);
        assert!(matches!(
            kind(&e),
            Ok(SockKind::Lookup { table: LookupTable::Listener, found: Some(s), .. }) if s.sk == 0xabc
        ));
        e.sock.sk = 0;
        assert_eq!(
            kind(&e),
            Ok(SockKind::Lookup {
                table: LookupTable::Listener,
                found: None,
                tw_substate: None,
                tw_left: None,
                accept_queue: None,
                syn_queue: None,
                syn_sysctls: None,
            })
        );
    }

    #[test]
    fn a_read_carries_its_call_and_sequence() {
        let mut e = event(SockWhat::Recv, 6, libc::MSG_PEEK);
        e.arg2 = 1006;
        e.call.kind = SyscallKind::Recvfrom as u8;
        e.call.fd = 4;
        let Ok(SockKind::Recv {
            ret,
            flags,
            copied_seq,
            call: Some(call),
            ..
        }) = kind(&e)
        else {
            panic!("not a read with its call")
        };
        assert_eq!((ret, flags, copied_seq), (6, libc::MSG_PEEK, 1006));
        assert_eq!((call.kind, call.fd), (SyscallKind::Recvfrom, 4));
    }
}
