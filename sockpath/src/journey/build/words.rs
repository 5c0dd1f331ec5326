//! Small pieces of text the journey is told with.

use super::super::{model::SocketView, names, ReadObs};
use crate::{
    decode::Socket,
    packet::Headers,
    text::{int, uint},
};

pub const LISTEN: u8 = 10;
pub const SYN_RECV: u8 = 3;
pub const ESTABLISHED: u8 = 1;

/// `nc[123] via read(4)`
pub fn who(r: &ReadObs) -> String {
    let mut s = String::with_capacity(40);
    s.push_str(&r.comm);
    s.push('[');
    s.push_str(uint(r.pid).as_str());
    s.push(']');
    if let Some(c) = &r.syscall {
        s.push_str(" via ");
        s.push_str(c);
        s.push('(');
        if let Some(fd) = r.fd {
            s.push_str(int(fd).as_str());
        }
        s.push(')');
    }
    s
}

/// `0`, or `-1 ECONNREFUSED`.
pub fn syscall_result(ret: i64) -> String {
    if ret >= 0 {
        ret.to_string()
    } else {
        format!("-1 {}", names::errno(-ret))
    }
}

/// ` (nc[123] fd 4)`, or nothing when the owner is unknown.
pub fn owner(view: &SocketView) -> String {
    let mut s = String::new();
    push_owner(&mut s, view);
    s
}

fn push_owner(s: &mut String, view: &SocketView) {
    if let Some(o) = &view.owner {
        s.push_str(" (");
        s.push_str(&o.comm);
        s.push('[');
        s.push_str(uint(o.pid).as_str());
        s.push_str("] fd ");
        s.push_str(int(o.fd).as_str());
        s.push(')');
    }
}

/// `127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[123] fd 4)`. `view` is `s` as the socket
/// table shows it, endpoints already in text.
pub fn sock_text(s: &Socket, view: &SocketView) -> String {
    let mut t = String::with_capacity(96);
    t.push_str(&view.local);
    if s.rport != 0 {
        t.push_str(" <- ");
        t.push_str(&view.remote);
    }
    t.push(' ');
    t.push_str(view.state);
    push_owner(&mut t, view);
    t
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
