//! A finished journey, from what was observed: the stages in order (observed ones with their
//! time, inferred ones marked), the socket, and the outcome in words.

mod outcome;
mod stages;
mod why;
mod words;

use self::words::{dropped_before_transport, ESTABLISHED, LISTEN, SYN_RECV};
use super::{
    clock::Clock,
    model::{Journey, OutcomeKind},
    names,
    sockets::SocketTable,
    state_change, LookupTable, Obs, Open,
};
use crate::journey::model::Timestamp;
use crate::{decode::Socket, hooks::HookChoice, kernel::names::KernelNames, packet::Headers};

/// What the observations say, gathered once for the stages and the outcome.
#[derive(Clone)]
pub(crate) struct Facts<'a> {
    pub h: Option<&'a Headers>,
    /// (reason name, location, socket)
    pub drop: Option<(String, u64, u64)>,
    /// (reason name, socket)
    pub reset: Option<(String, u64)>,
    pub icmp: Option<String>,
    /// (listener, request socket)
    pub synack: Option<(&'a Socket, &'a Socket)>,
    /// The socket the packet was delivered to.
    pub delivered: Option<&'a Socket>,
    /// No socket wanted it.
    pub no_socket: bool,
    pub reached_ip: bool,
    pub reached_transport: bool,
}

/// The socket the packet was delivered to, most specific first: the connection it created or
/// reached, then the listener.
fn delivery_socket(obs: &[Obs]) -> Option<&Socket> {
    let child = obs.iter().find_map(|o| match o {
        Obs::State { sock, from, to, .. } if *from == SYN_RECV && *to == ESTABLISHED => Some(sock),
        _ => None,
    });
    let lookup = |tables: &[LookupTable]| {
        obs.iter().find_map(|o| match o {
            Obs::Lookup {
                table,
                found: Some(s),
                ..
            } if tables.contains(table) && s.state != 12 && s.state != 6 => Some(s),
            _ => None,
        })
    };
    child
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::TcpRcv { sock, .. } => Some(sock),
                _ => None,
            })
        })
        .or_else(|| lookup(&[LookupTable::Established, LookupTable::Udp]))
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::DataReady { sock, .. } if sock.state != LISTEN => Some(sock),
                Obs::State { sock, .. } | Obs::ReceiveReset { sock, .. } => Some(sock),
                _ => None,
            })
        })
        .or_else(|| lookup(&[LookupTable::Listener]))
        .or_else(|| {
            obs.iter().find_map(|o| match o {
                Obs::SynAck { listener, .. } => Some(listener),
                Obs::DataReady { sock, .. } => Some(sock),
                _ => None,
            })
        })
}

fn facts<'a>(o: &'a Open, names: &KernelNames) -> Facts<'a> {
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
        Obs::ResetSent { reason, sk, .. } => Some((
            if *reason < 0 {
                "reason not given by this kernel".to_string()
            } else {
                names.reset_reason(*reason)
            },
            *sk,
        )),
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
    let lookup_missed = o.obs.iter().any(|x| {
        matches!(
            x,
            Obs::Lookup {
                table: LookupTable::Listener | LookupTable::Udp,
                found: None,
                ..
            }
        )
    });
    let no_socket = drop.as_ref().is_some_and(|d| d.0 == "NO_SOCKET")
        || reset
            .as_ref()
            .is_some_and(|r| r.1 == 0 && r.0 == "NO_SOCKET")
        || (lookup_missed && reset.as_ref().is_some_and(|r| r.1 == 0));
    let socket_observed = o.obs.iter().any(|x| {
        !matches!(
            x,
            Obs::Fib(_)
                | Obs::Drop { .. }
                | Obs::ResetSent { .. }
                | Obs::Icmp { .. }
                | Obs::Hop { .. }
        )
    });
    let reached_transport = socket_observed
        || reset.is_some()
        || icmp.is_some()
        || drop
            .as_ref()
            .is_some_and(|d| !dropped_before_transport(&d.0));
    Facts {
        h: o.headers.as_ref(),
        reached_ip: reached_transport || drop.is_some(),
        reached_transport,
        drop,
        reset,
        icmp,
        synack,
        delivered: delivery_socket(&o.obs),
        no_socket,
    }
}

/// Takes the open journey by value: its frame bytes, interface name and headers move into the
/// journey instead of being copied for every packet.
pub(crate) fn journey(
    o: Open,
    sockets: &SocketTable,
    names: &KernelNames,
    clock: &Clock,
    hooks: &HookChoice,
) -> Journey {
    let f = facts(&o, names);
    let stages = stages::stages(&o, &f, sockets, names, hooks);
    let state_changes = o
        .obs
        .iter()
        .filter_map(|x| match x {
            Obs::State { sock, from, to, .. } => Some(state_change(sock, *from, *to)),
            _ => None,
        })
        .collect::<Vec<_>>();
    let outcome = outcome::outcome(&o, &f, sockets);
    let socket = f.delivered.map(|s| sockets.view_at(s, o.t0));
    let no_headers = f.h.is_none();

    let reason = if o.evicted {
        Some("given up on: too many journeys in flight")
    } else if o.pkt.is_none() {
        Some("the device-receive event was lost")
    } else if o.lost {
        Some("events were lost while this packet was in flight")
    } else if no_headers {
        Some("packet headers could not be parsed")
    } else if outcome.kind == OutcomeKind::Unknown {
        Some("nothing was observed after device receive")
    } else {
        None
    };

    let wall = clock.wall_ns(o.t0);
    let (iface, ifindex, netns, wire_len, frame, mac_len) = match o.pkt {
        Some(p) => (p.ifname, p.ifindex, p.netns, p.wire_len, p.data, p.mac_len),
        None => (String::new(), 0, 0, 0, Vec::new(), 0),
    };
    Journey {
        id: o.seq,
        kernel_id: o.kernel_id,
        ts_ns: wall,
        ts: Timestamp(wall),
        cpu: o.cpu,
        iface,
        ifindex,
        netns,
        wire_len,
        headers: o.headers,
        stages,
        socket,
        state_changes,
        outcome,
        complete: reason.is_none(),
        incomplete_reason: reason.map(str::to_string),
        frame,
        mac_len,
    }
}
