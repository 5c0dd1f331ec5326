//! The stages of a journey in the order the packet passed them: observed stages by their time,
//! stages no hook saw on this kernel put where they belong and marked inferred; then each
//! observed stage's time since device receive and since the stage before it.
//!
//! The order is worked out on small keys first, and each stage is made once, in its place: a
//! stage is a few hundred bytes, and sorting and inserting whole stages was a good part of the
//! assembly's copying.

use super::{
    super::{
        model::{HookKind, Stage, StageData},
        sockets::SocketTable,
        Obs, Open,
    },
    facts::{transport_fn, Facts},
    lookup,
    observed::{observed, place, stage},
};
use crate::{
    decode::PacketRx,
    hooks::{HookChoice, StageId},
    kernel::names::KernelNames,
    packet::Headers,
};

/// Where a stage belongs on the receive path, for placing inferred stages among observed ones.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Device,
    Ip,
    Route,
    LocalDeliver,
    Transport,
    Lookup,
    Socket,
}

/// What a stage is made from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Device(&'a PacketRx),
    Observed(&'a Obs),
    /// A stage no hook saw here, inferred from the packet's headers and the other stages.
    Inferred(&'a Headers),
}

/// A stage's place: when it was seen (inferred stages were not), where it belongs, what makes it.
struct Placed<'a> {
    ts: Option<u64>,
    phase: Phase,
    from: Source<'a>,
}

/// The phases the packet must have passed that no hook saw here. `early_demux`: the route came
/// from the socket early demux found (see [`early_demux`]).
fn missing(f: &Facts, placed: &[Placed], early_demux: bool) -> Vec<Phase> {
    let has = |ph: Phase| placed.iter().any(|p| p.phase == ph);
    let mut missing = Vec::new();
    if f.reached_ip && !has(Phase::Ip) {
        missing.push(Phase::Ip);
    }
    if early_demux && !has(Phase::Route) {
        missing.push(Phase::Route);
    }
    if f.reached_transport && !has(Phase::Transport) {
        missing.push(Phase::Transport);
    }
    if f.reached_transport && !has(Phase::Lookup) {
        missing.push(Phase::Lookup);
    }
    missing
}

/// The inferred stage of a phase no hook saw.
fn inferred(phase: Phase, h: &Headers, o: &Open, f: &Facts, sockets: &SocketTable) -> Stage {
    let (name, data) = match phase {
        Phase::Ip => {
            let dropped = match &f.drop {
                Some((r, _, _)) if !f.reached_transport => Some(r.clone()),
                _ => None,
            };
            (
                if h.ip_version == 4 {
                    "ip_rcv"
                } else {
                    "ipv6_rcv"
                },
                StageData::InferredIp { dropped },
            )
        }
        Phase::Transport => (transport_fn(h), StageData::InferredTransport),
        Phase::Route => ("early demux", StageData::EarlyDemux),
        _ => (
            "socket lookup",
            StageData::Lookup(lookup::inferred(h, o, f, sockets)),
        ),
    };
    stage(name, (HookKind::Inferred, ""), data)
}

pub fn stages(
    o: &Open,
    f: &Facts,
    sockets: &SocketTable,
    names: &KernelNames,
    hooks: &HookChoice,
) -> Vec<Stage> {
    let mut placed: Vec<Placed> = Vec::with_capacity(o.obs.len() + 4);
    if let Some(pkt) = &o.pkt {
        placed.push(Placed {
            ts: Some(o.t0),
            phase: Phase::Device,
            from: Source::Device(pkt),
        });
    }
    for x in &o.obs {
        let (phase, ts) = place(x);
        placed.push(Placed {
            ts: Some(ts),
            phase,
            from: Source::Observed(x),
        });
    }
    placed.sort_by_key(|p| (p.ts, p.phase));
    // A packet sampled out was not followed until its end: what it passed before is not
    // inferred either, the journey says it was not followed.
    let sampled_out = o.pkt.as_ref().is_some_and(|p| p.sampled_out);
    if let Some(h) = f.h.filter(|_| !sampled_out) {
        for phase in missing(f, &placed, early_demux(o, f, hooks)) {
            let at = placed
                .iter()
                .position(|p| p.phase > phase)
                .unwrap_or(placed.len());
            placed.insert(
                at,
                Placed {
                    ts: None,
                    phase,
                    from: Source::Inferred(h),
                },
            );
        }
    }

    // Time since device receive, and since the previous observed stage (the hop's latency);
    // the IP layer's own time from ip_rcv to the local delivery.
    let ip_entry = placed
        .iter()
        .find(|p| p.phase == Phase::Ip)
        .and_then(|p| p.ts);
    let mut prev: Option<u64> = None;
    let mut stages = Vec::with_capacity(placed.len());
    for p in &placed {
        let mut s = match p.from {
            Source::Device(pkt) => stage(
                "netif_receive_skb",
                hooks.hook(StageId::DeviceReceive),
                StageData::Device {
                    ifname: pkt.ifname.clone(),
                    ifindex: pkt.ifindex,
                    wire_len: pkt.wire_len,
                },
            ),
            Source::Observed(x) => observed(x, o, sockets, names, hooks),
            Source::Inferred(h) => inferred(p.phase, h, o, f, sockets),
        };
        if let Some(ts) = p.ts {
            s.offset_ns = Some(ts.saturating_sub(o.t0));
            s.since_prev_ns = prev.map(|pr| ts.saturating_sub(pr));
            prev = Some(ts);
            if let (Phase::LocalDeliver, Some(ip), StageData::Hop { ip_ns, .. }) =
                (p.phase, ip_entry, &mut s.data)
            {
                *ip_ns = Some(ts.saturating_sub(ip));
            }
        }
        stages.push(s);
    }
    stages
}

/// Whether a TCP segment got its route from the socket IP receive found for it (early demux,
/// `tcp_v4_early_demux()`/`tcp_v6_early_demux()`: the established socket's cached input route,
/// `sk_rx_dst`), so no FIB lookup happened: the route hook is attached here and saw none for a
/// segment that reached a connected socket. Not on loopback, whose packets keep their output
/// route; not for a time-wait socket, which has no cached route.
fn early_demux(o: &Open, f: &Facts, hooks: &HookChoice) -> bool {
    let Some(h) = f.h else { return false };
    h.proto == 6
        && f.reached_transport
        && o.tw_substate.is_none()
        && o.pkt.as_ref().is_some_and(|p| p.ifname != "lo")
        && hooks.hook(StageId::Route).0 != HookKind::Inferred
        && !o.obs.iter().any(|x| matches!(x, Obs::Fib(_)))
        && f.delivered
            .is_some_and(|s| s.rport != 0 && s.state != 12 && s.state != 6)
}
