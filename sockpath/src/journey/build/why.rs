//! Why a packet went to the listener it went to: the candidates on its port that sockpath knows
//! of, and the kernel's rule that picked one.
//!
//! The kernel scores listeners (compute_score(): a listener bound to the packet's destination
//! address beats one bound to the wildcard), and within a SO_REUSEPORT group picks a member by
//! a hash of the connection's addresses and ports (reuseport_select_sock()).

use super::super::sockets::{endpoint, SocketTable};
use super::words::owner;
use crate::{decode::Socket, packet::Headers};

pub fn listener_choice(chosen: &Socket, h: &Headers, sockets: &SocketTable, ts: u64) -> String {
    let others: Vec<Socket> = sockets
        .listeners_at(chosen.netns, chosen.lport, chosen.protocol, ts)
        .into_iter()
        .filter(|s| s.sk != chosen.sk)
        .collect();
    let name = |s: &Socket| {
        format!(
            "{}{}",
            endpoint(s.laddr, s.lport),
            owner(&sockets.view_at(s, ts))
        )
    };
    let mut why = Vec::new();
    if chosen.reuseport {
        let group: Vec<String> = others
            .iter()
            .filter(|s| s.reuseport && s.laddr == chosen.laddr)
            .map(name)
            .collect();
        if group.is_empty() {
            why.push("the only member of its SO_REUSEPORT group".to_string());
        } else {
            why.push(format!(
                "the SO_REUSEPORT group member the kernel picked by the hash of the connection's addresses and ports (the other member{}: {})",
                if group.len() > 1 { "s" } else { "" },
                group.join(", ")
            ));
        }
    }
    let exact = !chosen.laddr.is_unspecified();
    for o in others
        .iter()
        .filter(|s| !(s.reuseport && chosen.reuseport && s.laddr == chosen.laddr))
    {
        if exact && o.laddr.is_unspecified() {
            why.push(format!(
                "bound to the destination address {}, it beats the wildcard listener {}",
                h.dst,
                name(o)
            ));
        } else if !exact && !o.laddr.is_unspecified() {
            why.push(format!(
                "{} is bound to another address than {}",
                name(o),
                h.dst
            ));
        }
    }
    why.join("; ")
}
