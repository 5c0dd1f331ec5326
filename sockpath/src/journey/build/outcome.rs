//! What became of the packet, in one sentence and a kind.

use super::{
    super::{
        model::{Outcome, OutcomeKind},
        names,
        sockets::{endpoint, SocketTable},
        Obs, Open, ReadObs,
    },
    words::{syscall_result, time_wait, who, ESTABLISHED, LISTEN, SYN_RECV},
    Facts,
};
use crate::text::{cat, uint};

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
        out.syscall = r.syscall;
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
            format!("no socket for {dst}: {answers}dropped ({reason}){connected}")
        } else {
            format!("{answers}dropped ({reason}){connected}")
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
                r.syscall.unwrap_or("accept"),
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
                cat(&[
                    uint(payload).as_str(),
                    " bytes delivered and read by ",
                    &who(last),
                ])
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
