//! What became of the packet: its kind, its fields, and what its sentence needs.

use std::net::SocketAddr;

use super::{
    super::{
        model::{
            AfterReset, Connect, Outcome, OutcomeData, OutcomeKind, TimeWaitAnswer, Transition,
        },
        names,
        sockets::SocketTable,
        Obs, Open, ReadObs,
    },
    facts::{time_wait, Facts, ESTABLISHED, LISTEN, SYN_RECV, SYN_SENT},
};

/// The process fields of the one who read or accepted it.
fn with_reader(mut out: Outcome, r: &ReadObs) -> Outcome {
    out.pid = Some(r.pid);
    out.comm = Some(r.comm.clone());
    out.syscall = r.syscall;
    out.fd = r.fd;
    out
}

pub fn outcome(o: &Open, f: &Facts, sockets: &SocketTable) -> Outcome {
    let Facts {
        h,
        drop,
        reset,
        icmp,
        synack,
        delivered,
        no_socket,
        ..
    } = f.clone();
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
    let transition = |(from, to): (u8, u8)| Transition {
        from: names::tcp_state(from),
        to: names::tcp_state(to),
        time_wait: time_wait(h, from, to),
        fin_wait2: super::facts::fin_wait2(h, from, to),
    };
    let error = o.obs.iter().find_map(|x| match x {
        Obs::ErrorReport { err, .. } => Some(names::errno(*err as i64)),
        _ => None,
    });
    let payload = h.map(|h| h.payload_len as u64).unwrap_or(0);
    let connect = o.obs.iter().find_map(|x| match x {
        Obs::Connected { r, ret } => Some(Connect {
            ret: *ret,
            comm: r.comm.clone(),
            pid: r.pid,
        }),
        _ => None,
    });

    if let (Some(sub), Some(h)) = (o.tw_substate, h) {
        let answer = if let Some((l, _)) = synack {
            TimeWaitAnswer::NewSyn {
                listener: sockets.view_at(l, o.t0),
            }
        } else if reset.is_some() {
            TimeWaitAnswer::Reset
        } else if let Some(flags) = o.obs.iter().find_map(|x| match x {
            Obs::Answer { flags, .. } => Some(*flags),
            _ => None,
        }) {
            TimeWaitAnswer::Sent(crate::packet::tcp_flag_names(flags))
        } else {
            TimeWaitAnswer::Nothing
        };
        let mut out = Outcome::new(
            OutcomeKind::Consumed,
            OutcomeData::TimeWait {
                local: SocketAddr::new(h.dst, h.dport.unwrap_or(0)),
                remote: SocketAddr::new(h.src, h.sport.unwrap_or(0)),
                substate: Some(names::tcp_state(sub)),
                answer,
            },
        );
        out.reason = drop.map(|d| d.0);
        out.reset_sent = reset.is_some();
        out.time_wait_left_ms = super::lookup::tw_left_ms(o);
        return out;
    }
    if let Some(out) = reset_received(o, sockets, connect.clone(), error.clone()) {
        return out;
    }
    // A packet queued on a socket its owner had closed is purged when the kernel destroys the
    // socket: the state change is the story, the purge a footnote.
    if let (Some((reason, _, _)), Some(states)) = (&drop, last_state) {
        if reason == "QUEUE_PURGE" {
            let mut out = Outcome::new(
                OutcomeKind::StateChanged,
                OutcomeData::Purged {
                    change: transition(states),
                },
            );
            out.reason = Some(reason.clone());
            return out;
        }
    }
    if let Some((reason, _, _)) = drop {
        let mut out = Outcome::new(
            OutcomeKind::Dropped,
            OutcomeData::Dropped {
                no_socket,
                dst: h.map(|h| SocketAddr::new(h.dst, h.dport.unwrap_or(0))),
                connect,
            },
        );
        out.reason = Some(reason);
        out.reset_sent = reset.is_some();
        out.icmp_sent = icmp;
        return out;
    }
    if let Some(r) = accepted {
        return with_reader(
            Outcome::new(OutcomeKind::Accepted, OutcomeData::Accepted),
            r,
        );
    }
    if payload > 0 && delivered.is_some() {
        if let Some(last) = reads.last() {
            let mut out = with_reader(
                Outcome::new(OutcomeKind::Read, OutcomeData::Read { payload }),
                last,
            );
            out.bytes = Some(reads.iter().map(|r| r.bytes).sum());
            return out;
        }
        let local = delivered
            .map(|s| sockets.view_at(s, o.t0).local)
            .unwrap_or_default();
        let mut out = Outcome::new(OutcomeKind::Queued, OutcomeData::Unread { payload, local });
        out.bytes = Some(0);
        return out;
    }
    if let Some((SYN_RECV, ESTABLISHED)) = last_state {
        let listener = o.obs.iter().find_map(|x| match x {
            Obs::DataReady { sock, .. } if sock.state == LISTEN => {
                Some(SocketAddr::new(sock.laddr, sock.lport))
            }
            _ => None,
        });
        return Outcome::new(
            OutcomeKind::AcceptQueued,
            OutcomeData::AcceptQueued { listener },
        );
    }
    if let Some(h) = h.filter(|_| super::facts::syn_cookie(o)) {
        return Outcome::new(
            OutcomeKind::SynAckSent,
            OutcomeData::SynCookie {
                listener: super::lookup::listener_for(o, h, sockets)
                    .map(|s| sockets.view_at(&s, o.t0)),
                queue: o.accept_queue,
                syn_queue: o.syn_queue,
            },
        );
    }
    if let Some((l, _)) = synack {
        return Outcome::new(
            OutcomeKind::SynAckSent,
            OutcomeData::SynAck {
                listener: sockets.view_at(l, o.t0),
            },
        );
    }
    if let Some(states) = last_state {
        let out = Outcome::new(
            OutcomeKind::StateChanged,
            OutcomeData::StateChanged {
                change: transition(states),
                connect,
                eof: eof.is_some(),
            },
        );
        return match eof {
            Some(r) => with_reader(out, r),
            None => out,
        };
    }
    if let Some(r) = eof {
        return with_reader(
            Outcome::new(OutcomeKind::StateChanged, OutcomeData::EndOfFile),
            r,
        );
    }
    if o.obs.iter().any(|x| matches!(x, Obs::TcpRcv { .. })) {
        let flags = h
            .and_then(|h| h.tcp.as_ref())
            .map(|t| t.flags.clone())
            .unwrap_or_default();
        return Outcome::new(OutcomeKind::Consumed, OutcomeData::Consumed { flags });
    }
    if let Some(h) = h.filter(|h| super::lookup::syn_not_answered(h, f)) {
        {
            return Outcome::new(
                OutcomeKind::Dropped,
                OutcomeData::SynNotAnswered {
                    listener: super::lookup::listener_for(o, h, sockets)
                        .map(|s| sockets.view_at(&s, o.t0)),
                    queue: o.accept_queue,
                    syn_queue: o.syn_queue,
                    syn_sysctls: o.syn_sysctls,
                    retransmission: None,
                },
            );
        }
    }
    if let Some(location) = &f.consumed {
        return Outcome::new(
            OutcomeKind::Consumed,
            OutcomeData::ConsumedAt {
                location: (!location.is_empty()).then(|| location.clone()),
                why: super::facts::consumed_why(o),
            },
        );
    }
    if let Some(s) = delivered {
        return Outcome::new(
            OutcomeKind::Queued,
            OutcomeData::QueuedOn {
                local: SocketAddr::new(s.laddr, s.lport),
            },
        );
    }
    if let Some((reason, _)) = reset {
        let mut out = Outcome::new(OutcomeKind::Dropped, OutcomeData::ResetSent);
        out.reason = Some(reason);
        out.reset_sent = true;
        return out;
    }
    Outcome::new(OutcomeKind::Unknown, OutcomeData::NothingObserved)
}

/// A RST the socket accepted (tcp_receive_reset): the connection it reset and what its user
/// did next. The kernel frees the RST as a drop (TCP_RESET) once it has reset the socket; the
/// reset is the story.
fn reset_received(
    o: &Open,
    sockets: &SocketTable,
    connect: Option<Connect>,
    error: Option<String>,
) -> Option<Outcome> {
    let sock = o.obs.iter().find_map(|x| match x {
        Obs::ReceiveReset { sock, .. } => Some(sock),
        _ => None,
    })?;
    let failed = o.obs.iter().find_map(|x| match x {
        Obs::ReadFailed { r, errno } => Some((r, *errno)),
        _ => None,
    });
    let closed = o.obs.iter().find_map(|x| match x {
        Obs::ClosedAfterReset { comm, pid, .. } => Some((comm, *pid)),
        _ => None,
    });
    // A connection past its handshake (a connect() in progress is told by the connect fields).
    let connection = sock.state != SYN_SENT;
    let after = match (failed, closed) {
        (Some((_, errno)), _) => AfterReset::ReadFailed {
            errno: names::errno(errno as i64),
        },
        (None, Some((comm, pid))) => AfterReset::Closed {
            comm: comm.clone(),
            pid,
        },
        // The journey waited for a read only where one would have told the error.
        (None, None) if super::super::reads::reset_reaches_reader(sock) => AfterReset::NotRead,
        (None, None) => AfterReset::Nothing,
    };
    let mut out = Outcome::new(
        OutcomeKind::ResetReceived,
        OutcomeData::ResetReceived {
            socket: connection.then(|| sockets.view_at(sock, o.t0)),
            connect,
            after,
        },
    );
    out.reason = error.or_else(|| failed.map(|(_, e)| names::errno(e as i64)));
    Some(match failed {
        Some((r, _)) => with_reader(out, r),
        None => out,
    })
}
