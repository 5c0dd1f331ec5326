//! A socket lookup's result: what the lookup returned, when a hook saw it, or what the stages
//! after it imply; and, for a listener, why the kernel chose it.

use std::net::{IpAddr, SocketAddr};

use super::SocketView;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Observed, for a packet whose headers could not be parsed: nothing to say.
    Unparsed,
    /// Observed: no established socket for the packet's ends.
    NoEstablished { dst: SocketAddr, src: SocketAddr },
    /// Observed: no listener on the packet's destination.
    NoListener { dst: SocketAddr },
    /// Observed: no UDP socket bound to the packet's destination.
    NoBound { dst: SocketAddr },
    /// Observed: the request socket of a handshake in progress, with these ends.
    Request {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A time-wait socket with these ends, in its substate (FIN_WAIT2 or TIME_WAIT) when the
    /// kernel told it: observed by the lookup, or (where no hook sees the lookup) by the
    /// socket the drop names.
    TimeWait {
        local: SocketAddr,
        remote: SocketAddr,
        substate: Option<&'static str>,
        /// The substate was read once the socket had handled the segment (from the drop),
        /// not when the lookup found it.
        after: bool,
        /// Milliseconds then left of the substate (its timer), where the kernel gave it.
        left_ms: Option<u64>,
    },
    /// Observed: an established socket.
    Established { socket: SocketView },
    /// Observed: the listener or bound UDP socket found, and why it was the one.
    Chosen {
        socket: SocketView,
        why: Vec<ListenerWhy>,
    },
    /// Implied: the listener that answered with a SYN-ACK, and why it was the one.
    ImpliedListener {
        socket: SocketView,
        why: Vec<ListenerWhy>,
    },
    /// Implied: a request socket was made for a connection with these ends.
    ImpliedRequest {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// Implied: the connected socket the packet reached, in the state it found it in.
    ImpliedConnection {
        socket: SocketView,
        state: &'static str,
    },
    /// Implied: the bound (unconnected) socket the packet reached, and why it was the one.
    ImpliedBound {
        socket: SocketView,
        why: Vec<ListenerWhy>,
    },
    /// Implied: no socket for the packet's destination.
    ImpliedNone { dst: SocketAddr },
    /// Nothing after the lookup says what it found.
    NotObserved,
}

/// Why a packet went to the listener it went to, among the others sockpath knows of on its port:
/// the kernel scores listeners (compute_score(): a listener bound to the packet's destination
/// address beats one bound to the wildcard), and within a SO_REUSEPORT group picks a member by a
/// hash of the connection's addresses and ports (reuseport_select_sock()).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerWhy {
    /// It is the only member of its SO_REUSEPORT group.
    OnlyReuseportMember,
    /// The kernel picked it among its SO_REUSEPORT group by hash; the group's other members.
    ReuseportHash { others: Vec<SocketView> },
    /// Bound to the packet's destination address, it beats a listener on the wildcard address.
    BeatsWildcard { dst: IpAddr, wildcard: SocketView },
    /// Another listener on the port is bound to an address other than the packet's destination.
    OtherAddress { other: SocketView, dst: IpAddr },
}
