//! What a journey's observations say, gathered once for its stages and its outcome: the drop,
//! the answers sent, the socket the packet was delivered to, how far it got.

use super::super::{model::ConsumedWhy, names, LookupTable, Obs, Open};
use crate::{decode::Socket, kernel::names::KernelNames, packet::Headers};

pub const LISTEN: u8 = 10;
pub const SYN_RECV: u8 = 3;
pub const SYN_SENT: u8 = 2;
pub const ESTABLISHED: u8 = 1;

/// What the observations say, gathered once for the stages and the outcome.
#[derive(Clone)]
pub(super) struct Facts<'a> {
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
    /// consume_skb: the symbol where the kernel freed it ("" when the kernel does not say).
    pub consumed: Option<String>,
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

pub(super) fn facts<'a>(o: &'a Open, names: &KernelNames) -> Facts<'a> {
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
                | Obs::Consumed { .. }
                | Obs::ResetSent { .. }
                | Obs::Icmp { .. }
                | Obs::Hop { .. }
        )
    });
    let consumed = o.obs.iter().find_map(|x| match x {
        Obs::Consumed { location: 0, .. } => Some(String::new()),
        Obs::Consumed { location, .. } => Some(names.symbol(*location)),
        _ => None,
    });
    let reached_transport = socket_observed
        || consumed
            .as_ref()
            .is_some_and(|c| consumed_in_transport(c, o.headers.as_ref()))
        || reset.is_some()
        || icmp.is_some()
        || drop
            .as_ref()
            .is_some_and(|d| !dropped_before_transport(&d.0));
    Facts {
        h: o.headers.as_ref(),
        reached_ip: reached_transport || drop.is_some() || consumed.is_some(),
        consumed,
        reached_transport,
        drop,
        reset,
        icmp,
        synack,
        delivered: delivery_socket(&o.obs),
        no_socket,
    }
}

/// The kernel ends a connection that received the final FIN (or the ACK of ours in CLOSING) by
/// moving it to TCP_CLOSE and leaving a time-wait mini-socket in its place (tcp_time_wait()).
pub fn time_wait(h: Option<&Headers>, from: u8, to: u8) -> bool {
    const FIN_WAIT1: u8 = 4;
    const FIN_WAIT2: u8 = 5;
    const CLOSING: u8 = 11;
    to == 7
        && (from == CLOSING
            || ((from == FIN_WAIT1 || from == FIN_WAIT2) && h.is_some_and(|h| h.has_flag("FIN"))))
}

/// An orphaned connection (its owner closed it) that gets the ACK of its FIN in FIN_WAIT1 or
/// FIN_WAIT2 goes to TCP_CLOSE and leaves a time-wait socket in the FIN_WAIT2 substate, which
/// takes the peer's FIN later.
pub fn fin_wait2(h: Option<&Headers>, from: u8, to: u8) -> bool {
    const FIN_WAIT2: u8 = 5;
    to == 7
        && from == FIN_WAIT2
        && h.is_some_and(|h| h.has_flag("ACK") && !h.has_flag("FIN") && !h.has_flag("RST"))
}

/// Whether a packet freed at `symbol` ("function+0x12") had reached its transport's receive
/// function: TCP, UDP and the socket layer free what they processed; IP and the device layer
/// free what they did not pass on. Without a location (kernels before 6.3) a TCP or UDP packet
/// is not assumed to have got that far.
fn consumed_in_transport(symbol: &str, h: Option<&Headers>) -> bool {
    let f = symbol.split('+').next().unwrap_or_default();
    !f.is_empty()
        && h.is_some_and(|h| h.proto == 6 || h.proto == 17)
        && [
            "tcp",
            "udp",
            "__udp",
            "inet",
            "sk_",
            "skb_consume_udp",
            "sock",
            "__sk",
        ]
        .iter()
        .any(|p| f.starts_with(p))
}

/// Why a packet the kernel consumed was freed, as far as its headers and the other stages tell.
/// A SYN answered with a SYN cookie: a SYN-ACK left for it from no socket (the listener kept
/// no request socket).
pub fn syn_cookie(o: &Open) -> bool {
    o.headers
        .as_ref()
        .is_some_and(|h| h.proto == 6 && h.has_flag("SYN") && !h.has_flag("ACK"))
        && o.obs
            .iter()
            .any(|x| matches!(x, Obs::Answer { flags, .. } if flags & SYN_ACK == SYN_ACK))
}

/// TCP's SYN and ACK flag bits.
const SYN_ACK: u8 = 0x12;

pub fn consumed_why(o: &Open) -> Option<ConsumedWhy> {
    let h = o.headers.as_ref()?;
    let synack = o.obs.iter().any(|x| matches!(x, Obs::SynAck { .. })) || syn_cookie(o);
    let read = o.obs.iter().any(|x| matches!(x, Obs::Read(_)));
    let established = o.obs.iter().any(|x| matches!(x, Obs::TcpRcv { .. }));
    if read {
        return Some(ConsumedWhy::Read);
    }
    match h.proto {
        6 if h.has_flag("SYN") && !h.has_flag("ACK") && synack => Some(ConsumedWhy::SynAnswered),
        6 if h.payload_len == 0
            && h.has_flag("ACK")
            && !["SYN", "FIN", "RST"].iter().any(|f| h.has_flag(f)) =>
        {
            Some(ConsumedWhy::PureAck)
        }
        6 if established && h.payload_len == 0 => Some(ConsumedWhy::Processed),
        _ => None,
    }
}

/// Drop reasons the kernel gives before the transport layer (IP, netfilter, device).
pub fn dropped_before_transport(reason: &str) -> bool {
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

/// The transport receive function for the packet's protocol and IP version.
pub fn transport_fn(h: &Headers) -> &'static str {
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
