//! The stages of a journey, in the order the packet passed them: observed stages by their time,
//! stages no hook saw on this kernel put where they belong and marked inferred.

use std::{borrow::Cow, fmt::Write};

use sockpath_ebpf::event::{Hop, LookupTable, SyscallKind};

use super::{
    super::{
        model::{HookKind, Stage},
        names,
        sockets::{endpoint, SocketTable},
        Obs, Open,
    },
    why::listener_choice,
    words::{sock_text, syscall_result, time_wait, transport_fn, who, LISTEN},
    Facts,
};
use crate::{
    decode::Socket,
    hooks::{HookChoice, Stage as StageId},
    kernel::names::KernelNames,
    text::{cat, uint},
};

/// Where a stage belongs on the receive path, for placing inferred stages among observed ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Device,
    Ip,
    Route,
    LocalDeliver,
    Transport,
    Lookup,
    Socket,
}

struct Placed {
    phase: Phase,
    ts: Option<u64>,
    stage: Stage,
}

fn stage(
    name: &'static str,
    (hook, target): (HookKind, &'static str),
    detail: impl Into<Cow<'static, str>>,
) -> Stage {
    Stage {
        name,
        hook,
        hook_target: target,
        offset_ns: None,
        since_prev_ns: None,
        detail: detail.into(),
    }
}

fn inferred(name: &'static str, detail: impl Into<Cow<'static, str>>) -> Stage {
    stage(name, (HookKind::Inferred, ""), detail)
}

fn hop_detail(hop: Hop) -> &'static str {
    match hop {
        Hop::IpRcv => "IPv4 receive: header checks",
        Hop::Ipv6Rcv => "IPv6 receive: header checks",
        Hop::IpLocalDeliver | Hop::Ip6Input => "the route says local: on to the transport",
        Hop::TcpV4Rcv | Hop::TcpV6Rcv => "TCP receive",
        Hop::UdpRcv | Hop::Udpv6Rcv => "UDP receive",
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

/// What a lookup found, in words.
fn lookup_detail(
    table: LookupTable,
    found: Option<&Socket>,
    o: &Open,
    sockets: &SocketTable,
) -> String {
    let Some(h) = o.headers.as_ref() else {
        return String::new();
    };
    let dst = endpoint(h.dst, h.dport.unwrap_or(0));
    let src = endpoint(h.src, h.sport.unwrap_or(0));
    match (table, found) {
        (LookupTable::Established, None) => format!("no established socket for {dst} <- {src}"),
        (LookupTable::Established, Some(s)) if s.state == 12 => format!(
            "request socket {} <- {} (handshake in progress)",
            endpoint(s.laddr, s.lport),
            endpoint(s.raddr, s.rport)
        ),
        (LookupTable::Established, Some(s)) if s.state == 6 => format!(
            "time-wait socket {} <- {}",
            endpoint(s.laddr, s.lport),
            endpoint(s.raddr, s.rport)
        ),
        (LookupTable::Established, Some(s)) => format!(
            "established match: {}",
            sock_text(s, &sockets.view_at(s, o.t0))
        ),
        (LookupTable::Listener, None) => format!("no listener for {dst}"),
        (LookupTable::Udp, None) => format!("no socket bound to {dst}"),
        (LookupTable::Listener | LookupTable::Udp, Some(s)) => {
            let mut d = sock_text(s, &sockets.view_at(s, o.t0));
            let why = listener_choice(s, h, sockets, o.t0);
            if !why.is_empty() {
                d.push_str(": ");
                d.push_str(&why);
            }
            d
        }
    }
}

/// The inferred lookup stage: the result the later hooks imply.
fn inferred_lookup(o: &Open, f: &Facts, sockets: &SocketTable) -> String {
    let Some(h) = f.h else {
        return String::new();
    };
    let created = o
        .obs
        .iter()
        .any(|x| matches!(x, Obs::State { from: 3, to: 1, .. }));
    if let Some((l, _)) = f.synack {
        let mut d = format!("listener {}", sock_text(l, &sockets.view_at(l, o.t0)));
        let why = listener_choice(l, h, sockets, o.t0);
        if !why.is_empty() {
            d.push_str(": ");
            d.push_str(&why);
        }
        return d;
    }
    if let Some(s) = f.delivered {
        if created {
            return format!(
                "request socket for {} <- {} (handshake in progress)",
                endpoint(s.laddr, s.lport),
                endpoint(s.raddr, s.rport)
            );
        }
        if s.rport != 0 {
            // The state the packet found: before any change it caused.
            let found = o
                .obs
                .iter()
                .find_map(|x| match x {
                    Obs::State { sock, from, .. } if sock.sk == s.sk => Some(*from),
                    _ => None,
                })
                .unwrap_or(s.state);
            let v = sockets.view_at(s, o.t0);
            return cat(&[
                "4-tuple match ",
                &v.local,
                " <- ",
                &v.remote,
                " (",
                names::tcp_state(found),
                ")",
            ]);
        }
        let mut d = cat(&["bound socket ", &sockets.view_at(s, o.t0).local]);
        let why = listener_choice(s, h, sockets, o.t0);
        if !why.is_empty() {
            d.push_str(": ");
            d.push_str(&why);
        }
        return d;
    }
    if f.no_socket {
        return format!("no socket for {}", endpoint(h.dst, h.dport.unwrap_or(0)));
    }
    "result not observed".to_string()
}

/// The observed stage for one observation, with its place.
fn observed(
    x: &Obs,
    o: &Open,
    sockets: &SocketTable,
    names: &KernelNames,
    hooks: &HookChoice,
) -> Option<(Phase, u64, Stage)> {
    let view = |s: &Socket| sock_text(s, &sockets.view_at(s, o.t0));
    let h = o.headers.as_ref();
    Some(match x {
        Obs::Fib(f) => {
            let table = match f.table {
                255 => "local".to_string(),
                254 => "main".to_string(),
                n => n.to_string(),
            };
            let result = if f.err == 0 {
                format!("-> dev {}", f.dev)
            } else {
                format!("no route (err {})", f.err)
            };
            (
                Phase::Route,
                f.meta.ts_ns,
                stage(
                    "fib_table_lookup",
                    hooks.hook(StageId::Route),
                    format!("input route {} -> {}: table {table} {result}", f.src, f.dst),
                ),
            )
        }
        Obs::Hop { ts, hop } => (
            hop_phase(*hop),
            *ts,
            stage(hop.function(), hooks.hop(*hop), hop_detail(*hop)),
        ),
        Obs::Lookup { ts, table, found } => (
            Phase::Lookup,
            *ts,
            stage(
                "socket lookup",
                hooks.lookup(*table, h.map(|h| h.ip_version).unwrap_or(4)),
                lookup_detail(*table, found.as_ref(), o, sockets),
            ),
        ),
        Obs::TcpRcv { ts, sock } => (
            Phase::Socket,
            *ts,
            stage(
                "tcp_rcv_established",
                hooks.hook(StageId::EstablishedReceive),
                cat(&["on ", &view(sock)]),
            ),
        ),
        Obs::SynAck { ts, listener, req } => (
            Phase::Socket,
            *ts,
            stage(
                "SYN-ACK sent",
                hooks.hook(StageId::SynAck),
                format!(
                    "by listener {}; request socket {} <- {}",
                    view(listener),
                    endpoint(req.laddr, req.lport),
                    endpoint(req.raddr, req.rport)
                ),
            ),
        ),
        Obs::State { ts, sock, from, to } => (
            Phase::Socket,
            *ts,
            stage("inet_sock_set_state", hooks.hook(StageId::TcpState), {
                let v = sockets.view_at(sock, o.t0);
                cat(&[
                    names::tcp_state(*from),
                    " -> ",
                    names::tcp_state(*to),
                    " on ",
                    &v.local,
                    " <- ",
                    &v.remote,
                    if time_wait(h, *from, *to) {
                        " (continues as a TIME_WAIT socket)"
                    } else {
                        ""
                    },
                ])
            }),
        ),
        Obs::DataReady { ts, sock } => (
            Phase::Socket,
            *ts,
            stage(
                "sk_data_ready",
                hooks.hook(StageId::Queue),
                if sock.state == LISTEN {
                    cat(&[
                        "connection queued on the accept queue of ",
                        &view(sock),
                        "; accept() woken",
                    ])
                } else {
                    cat(&["queued on ", &view(sock), "; reader woken"])
                },
            ),
        ),
        Obs::ReceiveReset { ts, .. } => (
            Phase::Socket,
            *ts,
            stage(
                "tcp_receive_reset",
                hooks.reset_received(),
                "RST accepted: connection reset",
            ),
        ),
        Obs::ErrorReport { ts, err } => (
            Phase::Socket,
            *ts,
            stage(
                "inet_sk_error_report",
                hooks.error_report(),
                format!(
                    "{} reported to the socket's user",
                    names::errno(*err as i64)
                ),
            ),
        ),
        Obs::ResetSent { ts, sk, reason } => {
            let why = if *reason < 0 {
                String::new()
            } else {
                format!(" (reason {})", names.reset_reason(*reason))
            };
            (
                Phase::Socket,
                *ts,
                stage(
                    "tcp_send_reset",
                    hooks.hook(StageId::ResetSent),
                    if *sk == 0 {
                        format!("RST sent, no socket{why}")
                    } else {
                        format!("RST sent by the socket{why}")
                    },
                ),
            )
        }
        Obs::Icmp { ts, type_, code } => (
            Phase::Socket,
            *ts,
            stage(
                "icmp_send",
                hooks.hook(StageId::IcmpSent),
                format!("{} sent", names::icmp(*type_, *code)),
            ),
        ),
        Obs::Drop {
            ts,
            reason,
            location,
            ..
        } => (
            Phase::Socket,
            *ts,
            stage(
                "kfree_skb",
                hooks.hook(StageId::Drop),
                format!(
                    "dropped: {} at {}",
                    names.drop_reason(*reason),
                    names.symbol(*location)
                ),
            ),
        ),
        Obs::QueueFail { ts, rc, by } => (
            Phase::Socket,
            *ts,
            stage(
                "queue failed",
                hooks.queue_full(*by),
                format!("socket could not queue it (rc {rc})"),
            ),
        ),
        Obs::Read(r) => (
            Phase::Socket,
            r.ts,
            stage(
                "read",
                hooks.hook(StageId::Read),
                cat(&[uint(r.bytes).as_str(), " bytes read by ", &who(r)]),
            ),
        ),
        Obs::Eof(r) => (
            Phase::Socket,
            r.ts,
            stage(
                "read",
                hooks.hook(StageId::Read),
                cat(&["end of file read by ", &who(r), " = 0"]),
            ),
        ),
        Obs::Accepted(r) => {
            let call = r.syscall.unwrap_or("accept");
            (
                Phase::Socket,
                r.ts,
                stage(
                    "accept",
                    hooks.syscall_exit(accept_call(call)),
                    format!("{call}() = {} in {}[{}]", r.fd.unwrap_or(-1), r.comm, r.pid),
                ),
            )
        }
        Obs::Connected { r, ret } => (
            Phase::Socket,
            r.ts,
            stage(
                "connect returns",
                hooks.syscall_exit(SyscallKind::Connect),
                format!(
                    "connect({}) = {} in {}[{}]",
                    r.fd.unwrap_or(-1),
                    syscall_result(*ret),
                    r.comm,
                    r.pid
                ),
            ),
        ),
    })
}

pub fn stages(
    o: &Open,
    f: &Facts,
    sockets: &SocketTable,
    names: &KernelNames,
    hooks: &HookChoice,
) -> Vec<Stage> {
    let mut placed: Vec<Placed> = Vec::with_capacity(o.obs.len() + 4);
    if let Some(p) = &o.pkt {
        placed.push(Placed {
            phase: Phase::Device,
            ts: Some(o.t0),
            stage: stage(
                "netif_receive_skb",
                hooks.hook(StageId::DeviceReceive),
                cat(&[
                    "dev ",
                    &p.ifname,
                    " (ifindex ",
                    uint(p.ifindex).as_str(),
                    "), ",
                    uint(p.wire_len).as_str(),
                    " bytes",
                ]),
            ),
        });
    }
    for x in &o.obs {
        if let Some((phase, ts, stage)) = observed(x, o, sockets, names, hooks) {
            placed.push(Placed {
                phase,
                ts: Some(ts),
                stage,
            });
        }
    }
    placed.sort_by_key(|p| (p.ts, p.phase));

    // Stages the packet must have passed that no hook saw here.
    let has = |ph: Phase| placed.iter().any(|p| p.phase == ph);
    let mut missing: Vec<(Phase, Stage)> = Vec::new();
    if let Some(h) = f.h {
        if f.reached_ip && !has(Phase::Ip) {
            let name = if h.ip_version == 4 {
                "ip_rcv"
            } else {
                "ipv6_rcv"
            };
            let detail: Cow<'static, str> = match &f.drop {
                Some((r, _, _)) if !f.reached_transport => format!("dropped here ({r})").into(),
                _ => "headers valid, local destination".into(),
            };
            missing.push((Phase::Ip, inferred(name, detail)));
        }
        if f.reached_transport && !has(Phase::Transport) {
            missing.push((Phase::Transport, inferred(transport_fn(h), "")));
        }
        if f.reached_transport && !has(Phase::Lookup) {
            missing.push((
                Phase::Lookup,
                inferred("socket lookup", inferred_lookup(o, f, sockets)),
            ));
        }
    }
    for (phase, stage) in missing {
        let at = placed
            .iter()
            .position(|p| p.phase > phase)
            .unwrap_or(placed.len());
        placed.insert(
            at,
            Placed {
                phase,
                ts: None,
                stage,
            },
        );
    }

    // Time since device receive, and since the previous observed stage (the hop's latency);
    // the IP layer's own time from ip_rcv to the local delivery.
    let ip_entry = placed
        .iter()
        .find(|p| p.phase == Phase::Ip)
        .and_then(|p| p.ts);
    let mut prev: Option<u64> = None;
    placed
        .into_iter()
        .map(|p| {
            let mut s = p.stage;
            if let Some(ts) = p.ts {
                s.offset_ns = Some(ts.saturating_sub(o.t0));
                s.since_prev_ns = prev.map(|pr| ts.saturating_sub(pr));
                prev = Some(ts);
                if let (Phase::LocalDeliver, Some(ip)) = (p.phase, ip_entry) {
                    let us = ts.saturating_sub(ip) as f64 / 1e3;
                    let _ = write!(s.detail.to_mut(), " ({us:.1}µs in IP)");
                }
            }
            s
        })
        .collect()
}
