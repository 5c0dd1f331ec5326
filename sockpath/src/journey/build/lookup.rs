//! The socket lookup's result: what the lookup returned, when a hook saw it, or what the later
//! stages imply; and why the kernel chose the listener it chose.

use std::net::{IpAddr, SocketAddr};

use sockpath_ebpf::event::LookupTable;

use super::{
    super::{
        model::{ListenerWhy, Lookup},
        names,
        sockets::SocketTable,
        Obs, Open,
    },
    facts::Facts,
};
use crate::{decode::Socket, packet::Headers};

fn local(s: &Socket) -> SocketAddr {
    SocketAddr::new(s.laddr, s.lport)
}

fn remote(s: &Socket) -> SocketAddr {
    SocketAddr::new(s.raddr, s.rport)
}

fn dst(h: &Headers) -> SocketAddr {
    SocketAddr::new(h.dst, h.dport.unwrap_or(0))
}

/// What an observed lookup returned.
pub fn observed(
    table: LookupTable,
    found: Option<&Socket>,
    o: &Open,
    sockets: &SocketTable,
) -> Lookup {
    let Some(h) = o.headers.as_ref() else {
        return Lookup::Unparsed;
    };
    match (table, found) {
        (LookupTable::Established, None) => Lookup::NoEstablished {
            dst: dst(h),
            src: SocketAddr::new(h.src, h.sport.unwrap_or(0)),
        },
        (LookupTable::Established, Some(s)) if s.state == 12 => Lookup::Request {
            local: local(s),
            remote: remote(s),
        },
        (LookupTable::Established, Some(s)) if s.state == 6 => Lookup::TimeWait {
            local: local(s),
            remote: remote(s),
            substate: o.tw_substate.map(names::tcp_state),
            after: false,
            left_ms: tw_left_ms(o),
        },
        (LookupTable::Established, Some(s)) => Lookup::Established {
            socket: sockets.view_at(s, o.t0),
        },
        (LookupTable::Listener, None) => Lookup::NoListener { dst: dst(h) },
        (LookupTable::Udp, None) => Lookup::NoBound { dst: dst(h) },
        (LookupTable::Listener | LookupTable::Udp, Some(s)) => Lookup::Chosen {
            socket: sockets.view_at(s, o.t0),
            why: listener_choice(s, h.dst, sockets, o.t0),
        },
    }
}

/// The lookup no hook saw here: the result the later stages imply.
pub fn inferred(h: &Headers, o: &Open, f: &Facts, sockets: &SocketTable) -> Lookup {
    if let Some(sub) = o.tw_substate {
        // The drop named the time-wait socket (rx_sk); the established table matched it by the
        // packet's four addresses and ports.
        return Lookup::TimeWait {
            local: dst(h),
            remote: SocketAddr::new(h.src, h.sport.unwrap_or(0)),
            substate: Some(names::tcp_state(sub)),
            after: true,
            left_ms: tw_left_ms(o),
        };
    }
    if let Some((l, _)) = f.synack {
        return Lookup::ImpliedListener {
            socket: sockets.view_at(l, o.t0),
            why: listener_choice(l, h.dst, sockets, o.t0),
        };
    }
    if let Some(s) = f.delivered {
        let created = o
            .obs
            .iter()
            .any(|x| matches!(x, Obs::State { from: 3, to: 1, .. }));
        if created {
            return Lookup::ImpliedRequest {
                local: local(s),
                remote: remote(s),
            };
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
            return Lookup::ImpliedConnection {
                socket: sockets.view_at(s, o.t0),
                state: names::tcp_state(found),
            };
        }
        return Lookup::ImpliedBound {
            socket: sockets.view_at(s, o.t0),
            why: listener_choice(s, h.dst, sockets, o.t0),
        };
    }
    if f.no_socket {
        return Lookup::ImpliedNone { dst: dst(h) };
    }
    if syn_not_answered(h, f) {
        if let Some(l) = listener_for(o, h, sockets) {
            return Lookup::ImpliedListener {
                socket: sockets.view_at(&l, o.t0),
                why: listener_choice(&l, h.dst, sockets, o.t0),
            };
        }
    }
    Lookup::NotObserved
}

/// The time left on the time-wait socket's timer when it was seen, in milliseconds (HZ known).
pub fn tw_left_ms(o: &Open) -> Option<u64> {
    o.tw_left.and_then(crate::kernel::hz::jiffies_to_ms)
}

/// Why the packet for `dst` went to `chosen`: the other listeners sockpath knows of on its port
/// at time `ts`, and the kernel's rule that picked `chosen` over them (see `ListenerWhy`).
fn listener_choice(
    chosen: &Socket,
    dst: IpAddr,
    sockets: &SocketTable,
    ts: u64,
) -> Vec<ListenerWhy> {
    let others: Vec<Socket> = sockets
        .listeners_at(chosen.netns, chosen.lport, chosen.protocol, ts)
        .into_iter()
        .filter(|s| s.sk != chosen.sk)
        .collect();
    let mut why = Vec::new();
    if chosen.reuseport {
        let group: Vec<_> = others
            .iter()
            .filter(|s| s.reuseport && s.laddr == chosen.laddr)
            .map(|s| sockets.view_at(s, ts))
            .collect();
        why.push(if group.is_empty() {
            ListenerWhy::OnlyReuseportMember
        } else {
            ListenerWhy::ReuseportHash { others: group }
        });
    }
    let exact = !chosen.laddr.is_unspecified();
    for o in others
        .iter()
        .filter(|s| !(s.reuseport && chosen.reuseport && s.laddr == chosen.laddr))
    {
        if exact && o.laddr.is_unspecified() {
            why.push(ListenerWhy::BeatsWildcard {
                dst,
                wildcard: sockets.view_at(o, ts),
            });
        } else if !exact && !o.laddr.is_unspecified() {
            why.push(ListenerWhy::OtherAddress {
                other: sockets.view_at(o, ts),
                dst,
            });
        }
    }
    why
}

/// The listener a SYN reached: the one its lookup returned, where a hook saw it; else the one
/// sockpath knows listening on its destination (the address itself before the wildcard).
pub fn listener_for(o: &Open, h: &Headers, sockets: &SocketTable) -> Option<Socket> {
    let looked_up = o.obs.iter().find_map(|x| match x {
        Obs::Lookup { found: Some(s), .. } if s.state == 10 => Some(s.clone()),
        _ => None,
    });
    looked_up.or_else(|| {
        let netns = o.pkt.as_ref()?.netns;
        let all = sockets.listeners_at(netns, h.dport?, 6, o.t0);
        all.iter()
            .find(|s| s.laddr == h.dst)
            .or_else(|| all.iter().find(|s| s.laddr.is_unspecified()))
            .cloned()
    })
}

/// A SYN the listener took in and freed without answering (its queue was full).
pub fn syn_not_answered(h: &Headers, f: &Facts) -> bool {
    h.proto == 6
        && h.has_flag("SYN")
        && !h.has_flag("ACK")
        && f.consumed.is_some()
        && f.synack.is_none()
        && f.reset.is_none()
        && f.drop.is_none()
}
