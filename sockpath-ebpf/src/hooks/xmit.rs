//! Replies sent while a watched packet is processed: the SYN-ACK that names the listener.
//!
//! On a tracepoint-only kernel no hook sees the listener lookup itself, but the SYN-ACK it
//! causes leaves synchronously, inside the SYN's NET_RX softirq, owned by the request socket the
//! listener created; the request socket points back at that listener (rsk_listener). So the
//! listener that got the SYN (the one bound to the more specific address, or the SO_REUSEPORT
//! member chosen) is observed, not guessed.
//!
//! A segment a time-wait socket answers (the ACK of a FIN, or a duplicate's ACK) leaves the same
//! way, from the time-wait socket or from TCP's per-CPU control socket (a raw TCP socket that
//! ip_send_unicast_reply() sends from): that answer is reported too, with its TCP flags.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use sockpath_ebpf::{
    config::KernelOffsets,
    event::{CallInfo, EventKind, SkbEvent, SkbWhat, SockEvent, SockWhat},
    net::IPPROTO_TCP,
};

use crate::{
    emit,
    kernel::{offsets, read, read_ptr, sock},
};

/// `TP_PROTO(struct sk_buff *skb)`: __dev_queue_xmit(), before the qdisc, skb->sk still set
/// (loopback orphans it only later, in loopback_xmit()).
#[btf_tracepoint(function = "net_dev_queue")]
pub fn net_dev_queue(ctx: BtfTracePointContext) -> i32 {
    let (flags, journey) = emit::current_journey();
    if journey == 0 {
        return 0;
    }
    let o = offsets();
    let skb: u64 = ctx.arg(0);
    // skb->sk, which may be NULL (read_ptr() would take that for a failed read).
    let Ok(req) = read::<u64>(skb, o.skb_sk) else {
        return 0;
    };
    if req == 0 {
        // A SYN-ACK carrying a SYN cookie leaves owned by no socket (tcp_make_synack() leaves
        // it unowned under a SYN flood), its request socket freed once it is sent: only a
        // SYN-ACK is reported this way.
        answer(skb, 0, SYN_ACK, flags, journey, o);
        return 0;
    }
    let state = read::<u8>(req, o.skc_state).unwrap_or(0);
    if state != sock::TCP_NEW_SYN_RECV {
        if answered_without_socket(req, state, o) {
            answer(skb, req, 0, flags, journey, o);
        }
        return 0;
    }
    let listener = sock::request_listener(req, o);
    let Some(mut entry) = emit::reserve::<SockEvent>() else {
        return 0;
    };
    // SAFETY: reserved memory; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = emit::header(
        EventKind::Sock,
        core::mem::size_of::<SockEvent>(),
        flags,
        journey,
    );
    ev.what = SockWhat::SynAck as u16;
    ev._pad = 0;
    ev.arg0 = 0;
    ev.arg1 = 0;
    ev.arg2 = 0;
    ev.skb = skb;
    sock::info_into(&mut ev.sock, listener, o);
    sock::info_into(&mut ev.other, req, o);
    ev.comm = emit::comm();
    ev.call = CallInfo::default();
    entry.submit(emit::RB_FLAGS);
    0
}

/// SOCK_RAW: TCP's per-CPU control sockets (inet_ctl_sock_create()) are raw TCP sockets.
const SOCK_RAW: u16 = 3;

/// Whether `sk`, the owner of a segment leaving while a watched packet is processed, is no full
/// socket: a time-wait socket, or TCP's control socket answering for one (or for no socket).
#[inline(always)]
fn answered_without_socket(sk: u64, state: u8, o: &KernelOffsets) -> bool {
    state == sock::TCP_TIME_WAIT
        || (read::<u16>(sk, o.sk_type).unwrap_or(0) == SOCK_RAW
            && read::<u16>(sk, o.sk_protocol).unwrap_or(0) == IPPROTO_TCP as u16)
}

/// TCP's SYN and ACK flags.
const SYN_ACK: u8 = 0x12;

/// Reports the TCP segment `skb` sent by `sk` in answer to the CPU's current packet, if its TCP
/// flags include all of `needs`.
#[inline(always)]
fn answer(skb: u64, sk: u64, needs: u8, flags: u16, journey: u64, o: &KernelOffsets) {
    let Ok(head) = read_ptr(skb, o.skb_head) else {
        return;
    };
    let (Ok(nh), Ok(th)) = (
        read::<u16>(skb, o.skb_network_header),
        read::<u16>(skb, o.skb_transport_header),
    ) else {
        return;
    };
    // IPv4's protocol byte, or IPv6's next header: only TCP answers are told.
    let version = read::<u8>(head, nh as u32).unwrap_or(0) >> 4;
    let proto_at = if version == 6 { 6 } else { 9 };
    if read::<u8>(head + nh as u64, proto_at).unwrap_or(0) != IPPROTO_TCP {
        return;
    }
    let Ok(tcp_flags) = read::<u8>(head + th as u64, 13) else {
        return;
    };
    if tcp_flags & needs != needs {
        return;
    }
    let Some(mut entry) = emit::reserve::<SkbEvent>() else {
        return;
    };
    // SAFETY: reserved memory; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = emit::header(
        EventKind::Skb,
        core::mem::size_of::<SkbEvent>(),
        flags,
        journey,
    );
    ev.what = SkbWhat::Answer as u16;
    ev._pad = 0;
    ev.arg0 = tcp_flags as i32;
    ev.arg1 = 0;
    ev.arg2 = 0;
    ev.skb = skb;
    ev.location = 0;
    ev.sk = sk;
    ev.comm = emit::comm();
    entry.submit(emit::RB_FLAGS);
}
