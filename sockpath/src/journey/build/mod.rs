//! A finished journey, from what was observed: the stages in order (observed ones with their
//! time, inferred ones marked, each with what it saw), the socket, and the outcome. Data only:
//! the words are `output::words`'.
//!
//! `facts` gathers what the observations say; `observed` makes a stage of each observation and
//! `lookup` the socket lookup's result; `place` puts the stages in order, with the ones no hook
//! saw where they belong; `outcome` says what became of the packet.

mod facts;
mod lookup;
mod observed;
mod outcome;
mod place;

use super::{
    clock::Clock,
    model::{Journey, Outcome, OutcomeData, OutcomeKind, Timestamp},
    sockets::SocketTable,
    state_change, Obs, Open,
};
use crate::{
    hooks::{HookChoice, StageId},
    kernel::names::KernelNames,
    packet::Headers,
};

/// A TCP segment without data, SYN, FIN or RST: it only acknowledges.
fn pure_ack(h: &Headers) -> bool {
    h.payload_len == 0
        && h.tcp.as_ref().is_some_and(|t| {
            t.flags.contains(&"ACK") && !t.flags.iter().any(|f| matches!(*f, "SYN" | "FIN" | "RST"))
        })
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
    let f = facts::facts(&o, names);
    let stages = place::stages(&o, &f, sockets, names, hooks);
    let state_changes = o
        .obs
        .iter()
        .filter_map(|x| match x {
            Obs::State { sock, from, to, .. } => Some(state_change(sock, *from, *to)),
            _ => None,
        })
        .collect::<Vec<_>>();
    let mut outcome = outcome::outcome(&o, &f, sockets);
    if outcome.kind == OutcomeKind::Unknown
        && !o.lost
        && o.pkt.is_some()
        && f.h.is_some_and(pure_ack)
        && hooks.serves(StageId::Drop)
        && hooks.serves(StageId::Consumed)
    {
        outcome = Outcome::new(OutcomeKind::Consumed, OutcomeData::AckFreedUnseen);
    }
    let socket = f.delivered.map(|s| sockets.view_at(s, o.t0));
    let no_headers = f.h.is_none();
    let sampled_out = o.pkt.as_ref().is_some_and(|p| p.sampled_out);

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
        // The assembler, which knows the session's sampling, says it.
        sampled_one_in: None,
        sampled_out,
        frame,
        mac_len,
    }
}
