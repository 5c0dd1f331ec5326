//! A finished journey, from what was observed: the stages in order (observed ones with their
//! time, inferred ones marked), the socket, and the outcome in words.

use super::{
    clock::{self, Clock},
    model::{HookKind, Journey, Outcome, OutcomeKind, SocketView, Stage},
    names::{self, KernelNames},
    sockets::{endpoint, SocketTable},
    state_change, Obs, Open, ReadObs,
};
use crate::{decode::Socket, packet::Headers};

const LISTEN: u8 = 10;
const SYN_RECV: u8 = 3;
const ESTABLISHED: u8 = 1;

fn stage(name: &str, hook: HookKind, target: &str, offset: Option<u64>, detail: String) -> Stage {
    Stage {
        name: name.to_string(),
        hook,
        hook_target: target.to_string(),
        offset_ns: offset,
        detail,
    }
}

fn who(r: &ReadObs) -> String {
    let call = match (&r.syscall, r.fd) {
        (Some(c), Some(fd)) => format!(" via {c}({fd})"),
        (Some(c), None) => format!(" via {c}()"),
        _ => String::new(),
    };
    format!("{}[{}]{call}", r.comm, r.pid)
}

/// `0`, or `-1 ECONNREFUSED`.
fn syscall_result(ret: i64) -> String {
    if ret >= 0 {
        ret.to_string()
    } else {
        format!("-1 {}", names::errno(-ret))
    }
}

/// `127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[123] fd 4)`
fn sock_text(s: &Socket, view: &SocketView) -> String {
    let owner = match &view.owner {
        Some(o) => format!(" ({}[{}] fd {})", o.comm, o.pid, o.fd),
        None => String::new(),
    };
    if s.rport == 0 {
        format!("{} {}{owner}", endpoint(s.laddr, s.lport), view.state)
    } else {
        format!(
            "{} <- {} {}{owner}",
            endpoint(s.laddr, s.lport),
            endpoint(s.raddr, s.rport),
            view.state
        )
    }
}

fn obs_ts(o: &Obs) -> u64 {
    match o {
        Obs::Fib(f) => f.meta.ts_ns,
        Obs::TcpRcv { ts, .. }
        | Obs::SynAck { ts, .. }
        | Obs::State { ts, .. }
        | Obs::DataReady { ts, .. }
        | Obs::ReceiveReset { ts, .. }
        | Obs::ErrorReport { ts, .. }
        | Obs::ResetSent { ts, .. }
        | Obs::Icmp { ts, .. }
        | Obs::Drop { ts, .. }
        | Obs::QueueFail { ts, .. } => *ts,
        Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) | Obs::Connected { r, .. } => r.ts,
    }
}

/// The kernel ends a connection that received the final FIN (or the ACK of ours in CLOSING) by
/// moving it to TCP_CLOSE and leaving a time-wait mini-socket in its place (tcp_time_wait()).
fn time_wait(h: Option<&Headers>, from: u8, to: u8) -> bool {
    const FIN_WAIT1: u8 = 4;
    const FIN_WAIT2: u8 = 5;
    const CLOSING: u8 = 11;
    to == 7
        && (from == CLOSING
            || ((from == FIN_WAIT1 || from == FIN_WAIT2) && h.is_some_and(|h| h.has_flag("FIN"))))
}

/// Drop reasons the kernel gives before the transport layer (IP, netfilter, device).
fn dropped_before_transport(reason: &str) -> bool {
    reason.starts_with("IP_")
        || reason.starts_with("IPV6")
        || matches!(
            reason,
            "OTHERHOST"
                | "NETFILTER_DROP"
                | "PKT_TOO_SMALL"
                | "UNICAST_IN_L2_MULTICAST"
                | "CPU_BACKLOG"
                | "XDP"
                | "TC_INGRESS"
                | "DEV_READY"
                | "UNHANDLED_PROTO"
        )
}

fn transport_fn(h: &Headers) -> &'static str {
    match (h.proto, h.ip_version) {
        (6, 4) => "tcp_v4_rcv",
        (6, _) => "tcp_v6_rcv",
        (17, 4) => "udp_rcv",
        (17, _) => "udpv6_rcv",
        (1, _) => "icmp_rcv",
        (58, _) => "icmpv6_rcv",
        _ => "ip_local_deliver",
    }
}

/// The socket the packet was delivered to, most specific first: the connection it created or
/// reached, then the listener.
fn delivery_socket(obs: &[Obs]) -> Option<&Socket> {
    let child = obs.iter().find_map(|o| match o {
        Obs::State { sock, from, to, .. } if *from == SYN_RECV && *to == ESTABLISHED => Some(sock),
        _ => None,
    });
    child
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::TcpRcv { sock, .. } => Some(sock),
                _ => None,
            })
        })
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::DataReady { sock, .. } if sock.state != LISTEN => Some(sock),
                Obs::State { sock, .. } | Obs::ReceiveReset { sock, .. } => Some(sock),
                _ => None,
            })
        })
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::SynAck { listener, .. } => Some(listener),
                Obs::DataReady { sock, .. } => Some(sock),
                _ => None,
            })
        })
}

pub(crate) fn journey(
    o: &Open,
    sockets: &SocketTable,
    names: &KernelNames,
    clock: &Clock,
) -> Journey {
    let t0 = o.t0;
    let off = |ts: u64| Some(ts.saturating_sub(t0));
    let h = o.headers.as_ref();
    let mut obs: Vec<&Obs> = o.obs.iter().collect();
    obs.sort_by_key(|x| obs_ts(x));

    let drop = o.obs.iter().find_map(|x| match x {
        Obs::Drop {
            reason,
            location,
            sk,
            ..
        } => Some((names.drop_reason(*reason), *location, *sk)),
        _ => None,
    });
    let reset = o.obs.iter().find_map(|x| match x {
        Obs::ResetSent { reason, sk, .. } => Some((names.reset_reason(*reason), *sk)),
        _ => None,
    });
    let icmp = o.obs.iter().find_map(|x| match x {
        Obs::Icmp { type_, code, .. } => Some(names::icmp(*type_, *code)),
        _ => None,
    });
    let synack = o.obs.iter().find_map(|x| match x {
        Obs::SynAck { listener, req, .. } => Some((listener, req)),
        _ => None,
    });
    let delivered = delivery_socket(&o.obs);
    let no_socket = drop.as_ref().is_some_and(|d| d.0 == "NO_SOCKET")
        || reset
            .as_ref()
            .is_some_and(|r| r.0 == "NO_SOCKET" && r.1 == 0);

    let socket_observed = o.obs.iter().any(|x| {
        !matches!(
            x,
            Obs::Fib(_) | Obs::Drop { .. } | Obs::ResetSent { .. } | Obs::Icmp { .. }
        )
    });
    let reached_transport = socket_observed
        || reset.is_some()
        || icmp.is_some()
        || drop
            .as_ref()
            .is_some_and(|d| !dropped_before_transport(&d.0));
    let reached_ip = reached_transport || drop.is_some();

    let mut stages = Vec::new();
    if let Some(p) = &o.pkt {
        stages.push(stage(
            "netif_receive_skb",
            HookKind::TpBtf,
            "netif_receive_skb",
            Some(0),
            format!(
                "dev {} (ifindex {}), {} bytes",
                p.ifname, p.ifindex, p.wire_len
            ),
        ));
    }
    for x in &obs {
        if let Obs::Fib(f) = x {
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
            stages.push(stage(
                "fib_table_lookup",
                HookKind::Tracepoint,
                "fib/fib_table_lookup",
                off(f.meta.ts_ns),
                format!("input route {} -> {}: table {table} {result}", f.src, f.dst),
            ));
        }
    }
    if let Some(h) = h {
        if reached_ip {
            let ipf = if h.ip_version == 4 {
                "ip_rcv"
            } else {
                "ipv6_rcv"
            };
            let detail = match &drop {
                Some((r, _, _)) if !reached_transport => format!("dropped here ({r})"),
                _ => "headers valid, local destination".to_string(),
            };
            stages.push(stage(ipf, HookKind::Inferred, "", None, detail));
        }
        if reached_transport {
            stages.push(stage(
                transport_fn(h),
                HookKind::Inferred,
                "",
                None,
                String::new(),
            ));
            let lookup = if let Some(s) =
                delivered.filter(|_| synack.is_none() || delivered.is_some_and(|d| d.rport != 0))
            {
                let created = o.obs.iter().any(|x| matches!(x, Obs::State { from, to, .. } if *from == SYN_RECV && *to == ESTABLISHED));
                if created {
                    format!(
                        "request socket for {} <- {} (handshake in progress)",
                        endpoint(s.laddr, s.lport),
                        endpoint(s.raddr, s.rport)
                    )
                } else if s.rport != 0 {
                    // The state the packet found: before any change it caused.
                    let found = o
                        .obs
                        .iter()
                        .find_map(|x| match x {
                            Obs::State { sock, from, .. } if sock.sk == s.sk => Some(*from),
                            _ => None,
                        })
                        .unwrap_or(s.state);
                    format!(
                        "4-tuple match {} <- {} ({})",
                        endpoint(s.laddr, s.lport),
                        endpoint(s.raddr, s.rport),
                        names::tcp_state(found)
                    )
                } else {
                    format!("bound socket {}", endpoint(s.laddr, s.lport))
                }
            } else if let Some((l, _)) = synack {
                format!("listener {}", endpoint(l.laddr, l.lport))
            } else if no_socket {
                format!("no socket for {}", endpoint(h.dst, h.dport.unwrap_or(0)))
            } else {
                "result not observed".to_string()
            };
            stages.push(stage("socket lookup", HookKind::Inferred, "", None, lookup));
        }
    }
    for x in &obs {
        let s = match x {
            Obs::Fib(_) => continue,
            Obs::TcpRcv { ts, sock } => stage(
                "tcp_rcv_established",
                HookKind::TpBtf,
                "tcp_probe",
                off(*ts),
                format!("on {}", sock_text(sock, &sockets.view_at(sock, o.t0))),
            ),
            Obs::SynAck { ts, listener, req } => stage(
                "SYN-ACK sent",
                HookKind::TpBtf,
                "net_dev_queue",
                off(*ts),
                format!(
                    "by listener {}; request socket {} <- {}",
                    sock_text(listener, &sockets.view_at(listener, o.t0)),
                    endpoint(req.laddr, req.lport),
                    endpoint(req.raddr, req.rport)
                ),
            ),
            Obs::State { ts, sock, from, to } => stage(
                "inet_sock_set_state",
                HookKind::TpBtf,
                "inet_sock_set_state",
                off(*ts),
                format!(
                    "{} -> {} on {} <- {}{}",
                    names::tcp_state(*from),
                    names::tcp_state(*to),
                    endpoint(sock.laddr, sock.lport),
                    endpoint(sock.raddr, sock.rport),
                    if time_wait(h, *from, *to) {
                        " (continues as a TIME_WAIT socket)"
                    } else {
                        ""
                    }
                ),
            ),
            Obs::DataReady { ts, sock } => stage(
                "sk_data_ready",
                HookKind::TpBtf,
                "sk_data_ready",
                off(*ts),
                if sock.state == LISTEN {
                    format!(
                        "connection queued on the accept queue of {}; accept() woken",
                        sock_text(sock, &sockets.view_at(sock, o.t0))
                    )
                } else {
                    format!(
                        "queued on {}; reader woken",
                        sock_text(sock, &sockets.view_at(sock, o.t0))
                    )
                },
            ),
            Obs::ReceiveReset { ts, .. } => stage(
                "tcp_receive_reset",
                HookKind::TpBtf,
                "tcp_receive_reset",
                off(*ts),
                "RST accepted: connection reset".into(),
            ),
            Obs::ErrorReport { ts, err, .. } => stage(
                "inet_sk_error_report",
                HookKind::TpBtf,
                "inet_sk_error_report",
                off(*ts),
                format!(
                    "{} reported to the socket's user",
                    names::errno(*err as i64)
                ),
            ),
            Obs::ResetSent { ts, sk, reason } => stage(
                "tcp_send_reset",
                HookKind::TpBtf,
                "tcp_send_reset",
                off(*ts),
                if *sk == 0 {
                    format!(
                        "RST sent, no socket (reason {})",
                        names.reset_reason(*reason)
                    )
                } else {
                    format!(
                        "RST sent by the socket (reason {})",
                        names.reset_reason(*reason)
                    )
                },
            ),
            Obs::Icmp { ts, type_, code } => stage(
                "icmp_send",
                HookKind::TpBtf,
                "icmp_send",
                off(*ts),
                format!("{} sent", names::icmp(*type_, *code)),
            ),
            Obs::Drop {
                ts,
                reason,
                location,
                ..
            } => stage(
                "kfree_skb",
                HookKind::TpBtf,
                "kfree_skb",
                off(*ts),
                format!(
                    "dropped: {} at {}",
                    names.drop_reason(*reason),
                    names.symbol(*location)
                ),
            ),
            Obs::QueueFail { ts, rc, .. } => stage(
                "queue failed",
                HookKind::TpBtf,
                "udp_fail_queue_rcv_skb",
                off(*ts),
                format!("socket could not queue it (rc {rc})"),
            ),
            Obs::Read(r) => stage(
                "read",
                HookKind::TpBtf,
                "sock_recv_length",
                off(r.ts),
                format!("{} bytes read by {}", r.bytes, who(r)),
            ),
            Obs::Eof(r) => stage(
                "read",
                HookKind::TpBtf,
                "sock_recv_length",
                off(r.ts),
                format!("end of file read by {} = 0", who(r)),
            ),
            Obs::Accepted(r) => stage(
                "accept",
                HookKind::Tracepoint,
                "syscalls/sys_exit_accept4",
                off(r.ts),
                format!(
                    "{}() = {} in {}[{}]",
                    r.syscall.as_deref().unwrap_or("accept"),
                    r.fd.unwrap_or(-1),
                    r.comm,
                    r.pid
                ),
            ),
            Obs::Connected { r, ret } => stage(
                "connect returns",
                HookKind::Tracepoint,
                "syscalls/sys_exit_connect",
                off(r.ts),
                format!(
                    "connect({}) = {} in {}[{}]",
                    r.fd.unwrap_or(-1),
                    syscall_result(*ret),
                    r.comm,
                    r.pid
                ),
            ),
        };
        stages.push(s);
    }

    let state_changes = o
        .obs
        .iter()
        .filter_map(|x| match x {
            Obs::State { sock, from, to, .. } => Some(state_change(sock, *from, *to)),
            _ => None,
        })
        .collect::<Vec<_>>();
    let outcome = outcome(
        o, h, names, sockets, drop, reset, icmp, synack, delivered, no_socket,
    );

    let (complete, reason) = if o.evicted {
        (
            false,
            Some("given up on: too many journeys in flight".to_string()),
        )
    } else if o.pkt.is_none() {
        (false, Some("the device-receive event was lost".to_string()))
    } else if o.lost {
        (
            false,
            Some("events were lost while this packet was in flight".to_string()),
        )
    } else if h.is_none() {
        (
            false,
            Some("packet headers could not be parsed".to_string()),
        )
    } else if outcome.kind == OutcomeKind::Unknown {
        (
            false,
            Some("nothing was observed after device receive".to_string()),
        )
    } else {
        (true, None)
    };

    let wall = clock.wall_ns(t0);
    let (iface, ifindex, netns, wire_len) = match &o.pkt {
        Some(p) => (p.ifname.clone(), p.ifindex, p.netns, p.wire_len),
        None => (String::new(), 0, 0, 0),
    };
    Journey {
        id: o.seq,
        kernel_id: o.kernel_id,
        ts_ns: wall,
        ts: clock::rfc3339(wall),
        cpu: o.cpu,
        iface,
        ifindex,
        netns,
        wire_len,
        headers: o.headers.clone(),
        stages,
        socket: delivered.map(|s| sockets.view_at(s, o.t0)),
        state_changes,
        outcome,
        complete,
        incomplete_reason: reason,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the facts gathered by journey(), passed on as they are"
)]
fn outcome(
    o: &Open,
    h: Option<&Headers>,
    names: &KernelNames,
    sockets: &SocketTable,
    drop: Option<(String, u64, u64)>,
    reset: Option<(String, u64)>,
    icmp: Option<String>,
    synack: Option<(&Socket, &Socket)>,
    delivered: Option<&Socket>,
    no_socket: bool,
) -> Outcome {
    let _ = names;
    let reads: Vec<&ReadObs> = o
        .obs
        .iter()
        .filter_map(|x| match x {
            Obs::Read(r) => Some(r),
            _ => None,
        })
        .collect();
    let eof = o.obs.iter().find_map(|x| match x {
        Obs::Eof(r) => Some(r),
        _ => None,
    });
    let accepted = o.obs.iter().find_map(|x| match x {
        Obs::Accepted(r) => Some(r),
        _ => None,
    });
    let last_state = o.obs.iter().rev().find_map(|x| match x {
        Obs::State { from, to, .. } => Some((*from, *to)),
        _ => None,
    });
    let error = o.obs.iter().find_map(|x| match x {
        Obs::ErrorReport { err, .. } => Some(names::errno(*err as i64)),
        _ => None,
    });
    let payload = h.map(|h| h.payload_len as u64).unwrap_or(0);
    let connected = o.obs.iter().find_map(|x| match x {
        Obs::Connected { r, ret } => Some(format!(
            "; connect() returned {} in {}[{}]",
            syscall_result(*ret),
            r.comm,
            r.pid
        )),
        _ => None,
    });
    let connected = connected.unwrap_or_default();
    let with_reader = |mut out: Outcome, r: &ReadObs| {
        out.pid = Some(r.pid);
        out.comm = Some(r.comm.clone());
        out.syscall = r.syscall.clone();
        out.fd = r.fd;
        out
    };

    // A packet queued on a socket its owner had closed is purged when the kernel destroys the
    // socket: the state change is the story, the purge a footnote.
    if let (Some((reason, _, _)), Some((from, to))) = (&drop, last_state) {
        if reason == "QUEUE_PURGE" {
            let to_name = if time_wait(h, from, to) {
                "TIME_WAIT"
            } else {
                names::tcp_state(to)
            };
            let mut out = Outcome::new(
                OutcomeKind::StateChanged,
                format!(
                    "TCP {} -> {to_name}; the socket had been closed, its queue purged (QUEUE_PURGE)",
                    names::tcp_state(from)
                ),
            );
            out.reason = Some(reason.clone());
            return out;
        }
    }
    if let Some((reason, _, _)) = drop {
        let dst = h
            .map(|h| endpoint(h.dst, h.dport.unwrap_or(0)))
            .unwrap_or_default();
        let mut answers = Vec::new();
        if reset.is_some() {
            answers.push("RST sent".to_string());
        }
        if let Some(i) = &icmp {
            answers.push(format!("{i} sent"));
        }
        let answers = if answers.is_empty() {
            String::new()
        } else {
            format!("{}, ", answers.join(", "))
        };
        let text = if no_socket {
            format!("no socket for {dst}: {answers}dropped ({reason})")
        } else {
            format!("{answers}dropped ({reason})")
        };
        let mut out = Outcome::new(OutcomeKind::Dropped, text);
        out.reason = Some(reason);
        out.reset_sent = reset.is_some();
        out.icmp_sent = icmp;
        return out;
    }
    if let Some(r) = accepted {
        let out = Outcome::new(
            OutcomeKind::Accepted,
            format!(
                "connection accepted: {}() = {} in {}[{}]",
                r.syscall.as_deref().unwrap_or("accept"),
                r.fd.unwrap_or(-1),
                r.comm,
                r.pid
            ),
        );
        let mut out = with_reader(out, r);
        out.fd = r.fd;
        return out;
    }
    if payload > 0 && delivered.is_some() {
        let got: u64 = reads.iter().map(|r| r.bytes).sum();
        if let Some(last) = reads.last() {
            let text = if got >= payload {
                format!("{payload} bytes delivered and read by {}", who(last))
            } else {
                format!(
                    "{got} of {payload} bytes read by {}, the rest still queued",
                    who(last)
                )
            };
            let mut out = with_reader(Outcome::new(OutcomeKind::Read, text), last);
            out.bytes = Some(got);
            return out;
        }
        let s = delivered.map(|s| sockets.view_at(s, o.t0));
        let mut out = Outcome::new(
            OutcomeKind::Queued,
            format!(
                "{payload} bytes queued on {}, not read while sockpath waited",
                s.map(|s| s.local).unwrap_or_default()
            ),
        );
        out.bytes = Some(0);
        return out;
    }
    if let Some((SYN_RECV, ESTABLISHED)) = last_state {
        let listener = o.obs.iter().find_map(|x| match x {
            Obs::DataReady { sock, .. } if sock.state == LISTEN => {
                Some(endpoint(sock.laddr, sock.lport))
            }
            _ => None,
        });
        return Outcome::new(
            OutcomeKind::AcceptQueued,
            format!(
                "handshake complete: connection waits in {}'s accept queue (not accepted while sockpath waited)",
                listener.unwrap_or_else(|| "the listener".into())
            ),
        );
    }
    if let Some((l, _)) = synack {
        let v = sockets.view_at(l, o.t0);
        let owner = v
            .owner
            .as_ref()
            .map(|o| format!(" ({}[{}] fd {})", o.comm, o.pid, o.fd))
            .unwrap_or_default();
        return Outcome::new(
            OutcomeKind::SynAckSent,
            format!("listener {}{owner} answered with SYN-ACK", v.local),
        );
    }
    if o.obs.iter().any(|x| matches!(x, Obs::ReceiveReset { .. })) {
        let mut out = Outcome::new(
            OutcomeKind::ResetReceived,
            match &error {
                Some(e) => {
                    format!("connection reset: {e} reported to the socket's user{connected}")
                }
                None => format!("connection reset{connected}"),
            },
        );
        out.reason = error;
        return out;
    }
    if let Some((from, to)) = last_state {
        let to_name = if time_wait(h, from, to) {
            "TIME_WAIT"
        } else {
            names::tcp_state(to)
        };
        let mut text = format!("TCP {} -> {to_name}{connected}", names::tcp_state(from));
        if let Some(r) = eof {
            text.push_str(&format!("; end of file read by {}", who(r)));
        }
        let out = Outcome::new(OutcomeKind::StateChanged, text);
        return match eof {
            Some(r) => with_reader(out, r),
            None => out,
        };
    }
    if let Some(r) = eof {
        return with_reader(
            Outcome::new(
                OutcomeKind::StateChanged,
                format!("end of file read by {}", who(r)),
            ),
            r,
        );
    }
    if o.obs.iter().any(|x| matches!(x, Obs::TcpRcv { .. })) {
        let flags = h
            .and_then(|h| h.tcp.as_ref())
            .map(|t| t.flags.join(","))
            .unwrap_or_default();
        return Outcome::new(
            OutcomeKind::Consumed,
            format!("{flags} processed by the established socket"),
        );
    }
    if let Some(s) = delivered {
        return Outcome::new(
            OutcomeKind::Queued,
            format!("queued on {}", endpoint(s.laddr, s.lport)),
        );
    }
    if let Some((reason, _)) = reset {
        let mut out = Outcome::new(OutcomeKind::Dropped, format!("RST sent ({reason})"));
        out.reason = Some(reason);
        out.reset_sent = true;
        return out;
    }
    Outcome::new(
        OutcomeKind::Unknown,
        "nothing observed after device receive",
    )
}
