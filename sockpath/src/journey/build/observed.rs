//! The stage each observation makes: its place on the receive path and its time, then its
//! name, the hook that saw it on this kernel, and what it saw.

use sockpath_ebpf::event::{Hop, SyscallKind};

use super::{
    super::{
        model::{Caller, HookKind, Queue, RouteResult, Stage, StageData, Transition},
        names,
        sockets::SocketTable,
        Obs, Open, ReadObs,
    },
    facts::{self, time_wait, LISTEN},
    lookup,
    place::Phase,
};
use crate::{
    decode::Socket,
    hooks::{HookChoice, StageId},
    kernel::names::KernelNames,
};

pub fn stage(
    name: &'static str,
    (hook, target): (HookKind, &'static str),
    data: StageData,
) -> Stage {
    Stage {
        name,
        hook,
        hook_target: target,
        offset_ns: None,
        since_prev_ns: None,
        data,
    }
}

fn hop_phase(hop: Hop) -> Phase {
    match hop {
        Hop::IpRcv | Hop::Ipv6Rcv => Phase::Ip,
        Hop::IpLocalDeliver | Hop::Ip6Input => Phase::LocalDeliver,
        _ => Phase::Transport,
    }
}

/// The call that returned an accepted connection, by the name it was recorded under.
fn accept_call(name: &str) -> SyscallKind {
    match name {
        "accept4" => SyscallKind::Accept4,
        _ => SyscallKind::Accept,
    }
}

fn caller(r: &ReadObs) -> Caller {
    Caller {
        comm: r.comm.clone(),
        pid: r.pid,
        syscall: r.syscall,
        fd: r.fd,
    }
}

/// Where an observation's stage belongs on the receive path, and when it was seen.
pub fn place(x: &Obs) -> (Phase, u64) {
    match x {
        Obs::Fib(f) => (Phase::Route, f.meta.ts_ns),
        Obs::Hop { ts, hop } => (hop_phase(*hop), *ts),
        Obs::Lookup { ts, .. } => (Phase::Lookup, *ts),
        Obs::TcpRcv { ts, .. }
        | Obs::SynAck { ts, .. }
        | Obs::State { ts, .. }
        | Obs::DataReady { ts, .. }
        | Obs::ReceiveReset { ts, .. }
        | Obs::ErrorReport { ts, .. }
        | Obs::ResetSent { ts, .. }
        | Obs::Icmp { ts, .. }
        | Obs::Drop { ts, .. }
        | Obs::Consumed { ts, .. }
        | Obs::Answer { ts, .. }
        | Obs::QueueFail { ts, .. }
        | Obs::ClosedAfterReset { ts, .. } => (Phase::Socket, *ts),
        Obs::Read(r)
        | Obs::Eof(r)
        | Obs::Accepted(r)
        | Obs::Connected { r, .. }
        | Obs::ReadFailed { r, .. } => (Phase::Socket, r.ts),
    }
}

/// The stage an observation makes (its times are `place`'s to set).
pub fn observed(
    x: &Obs,
    o: &Open,
    sockets: &SocketTable,
    names: &KernelNames,
    hooks: &HookChoice,
) -> Stage {
    let view = |s: &Socket| sockets.view_at(s, o.t0);
    let h = o.headers.as_ref();
    match x {
        Obs::Fib(f) => stage(
            "fib_table_lookup",
            hooks.hook(StageId::Route),
            StageData::Route {
                src: f.src.into(),
                dst: f.dst.into(),
                table: f.table,
                result: if f.err == 0 {
                    RouteResult::Device(f.dev.clone())
                } else {
                    RouteResult::NoRoute { err: f.err }
                },
            },
        ),
        Obs::Hop { hop, .. } => stage(
            hop.function(),
            hooks.hop(*hop),
            StageData::Hop {
                hop: *hop,
                ip_ns: None,
            },
        ),
        Obs::Lookup { table, found, .. } => stage(
            "socket lookup",
            hooks.lookup(*table, h.map(|h| h.ip_version).unwrap_or(4)),
            StageData::Lookup(lookup::observed(*table, found.as_ref(), o, sockets)),
        ),
        Obs::TcpRcv { sock, .. } => stage(
            "tcp_rcv_established",
            hooks.hook(StageId::EstablishedReceive),
            StageData::EstablishedReceive { socket: view(sock) },
        ),
        Obs::SynAck { listener, req, .. } => stage(
            "SYN-ACK sent",
            hooks.hook(StageId::SynAck),
            StageData::SynAck {
                listener: view(listener),
                local: std::net::SocketAddr::new(req.laddr, req.lport),
                remote: std::net::SocketAddr::new(req.raddr, req.rport),
            },
        ),
        Obs::State { sock, from, to, .. } => stage(
            "inet_sock_set_state",
            hooks.hook(StageId::TcpState),
            StageData::StateChange {
                socket: view(sock),
                change: Transition {
                    from: names::tcp_state(*from),
                    to: names::tcp_state(*to),
                    time_wait: time_wait(h, *from, *to),
                    fin_wait2: facts::fin_wait2(h, *from, *to),
                },
            },
        ),
        Obs::DataReady { sock, .. } => stage(
            "sk_data_ready",
            hooks.hook(StageId::Queue),
            StageData::Queued {
                socket: view(sock),
                queue: if sock.state == LISTEN {
                    Queue::Accept
                } else {
                    Queue::Receive
                },
            },
        ),
        Obs::ReceiveReset { .. } => stage(
            "tcp_receive_reset",
            hooks.reset_received(),
            StageData::ResetReceived,
        ),
        Obs::ErrorReport { err, .. } => stage(
            "inet_sk_error_report",
            hooks.error_report(),
            StageData::ErrorReported {
                errno: names::errno(*err as i64),
            },
        ),
        Obs::ResetSent { sk, reason, .. } => stage(
            "tcp_send_reset",
            hooks.hook(StageId::ResetSent),
            StageData::ResetSent {
                by_socket: *sk != 0,
                reason: (*reason >= 0).then(|| names.reset_reason(*reason)),
            },
        ),
        Obs::Icmp { type_, code, .. } => stage(
            "icmp_send",
            hooks.hook(StageId::IcmpSent),
            StageData::IcmpSent {
                icmp: names::icmp(*type_, *code),
            },
        ),
        Obs::Drop {
            reason, location, ..
        } => stage(
            "kfree_skb",
            hooks.hook(StageId::Drop),
            StageData::Dropped {
                reason: names.drop_reason(*reason),
                location: names.symbol(*location),
            },
        ),
        Obs::Answer { .. } if facts::syn_cookie(o) => stage(
            "SYN-ACK sent",
            hooks.hook(StageId::SynAck),
            StageData::SynCookieSent,
        ),
        Obs::Answer { flags, .. } => stage(
            "answer sent",
            hooks.hook(StageId::SynAck),
            StageData::Answered {
                flags: crate::packet::tcp_flag_names(*flags),
                time_wait: o.tw_substate.map(names::tcp_state),
            },
        ),
        Obs::Consumed { location, .. } => stage(
            "consume_skb",
            hooks.hook(StageId::Consumed),
            StageData::Consumed {
                location: (*location != 0).then(|| names.symbol(*location)),
                why: facts::consumed_why(o),
            },
        ),
        Obs::QueueFail { rc, by, .. } => stage(
            "queue failed",
            hooks.queue_full(*by),
            StageData::QueueFull { rc: *rc },
        ),
        Obs::Read(r) => stage(
            "read",
            hooks.hook(StageId::Read),
            StageData::Read {
                bytes: r.bytes,
                reader: caller(r),
            },
        ),
        Obs::Eof(r) => stage(
            "read",
            hooks.hook(StageId::Read),
            StageData::EndOfFile { reader: caller(r) },
        ),
        Obs::ReadFailed { r, errno } => stage(
            "read fails",
            hooks.hook(StageId::Read),
            StageData::ReadFailed {
                reader: caller(r),
                errno: names::errno(*errno as i64),
            },
        ),
        Obs::ClosedAfterReset { comm, pid, .. } => stage(
            "tcp_destroy_sock",
            hooks.hook(StageId::Destroyed),
            StageData::ClosedAfterReset {
                comm: comm.clone(),
                pid: *pid,
            },
        ),
        Obs::Accepted(r) => stage(
            "accept",
            hooks.syscall_exit(accept_call(r.syscall.unwrap_or("accept"))),
            StageData::Accepted { caller: caller(r) },
        ),
        Obs::Connected { r, ret } => stage(
            "connect returns",
            hooks.syscall_exit(SyscallKind::Connect),
            StageData::ConnectReturned {
                caller: caller(r),
                ret: *ret,
            },
        ),
    }
}
