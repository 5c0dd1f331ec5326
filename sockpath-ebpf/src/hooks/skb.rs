//! Packet-side hooks: what became of a tracked packet (drop, reset, ICMP error, full queue).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use sockpath_ebpf::event::{EventKind, SkbEvent, SkbWhat};

use crate::{
    emit,
    kernel::{offsets, skb::tracked},
    maps::TRACKED,
};

/// Sends an event about `skb` if it is a tracked packet; `more` completes it.
#[inline(always)]
fn skb_event(what: SkbWhat, skb: u64, more: impl FnOnce(&mut SkbEvent)) -> bool {
    let Some(journey) = tracked(skb, &offsets()) else {
        return false;
    };
    let Some(mut entry) = emit::reserve::<SkbEvent>() else {
        return true;
    };
    // SAFETY: reserved memory; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let (flags, _) = emit::current_journey();
    ev.header = emit::header(
        EventKind::Skb,
        core::mem::size_of::<SkbEvent>(),
        flags,
        journey,
    );
    ev.what = what as u16;
    ev._pad = 0;
    ev.arg0 = 0;
    ev.arg1 = 0;
    ev._pad2 = 0;
    ev.skb = skb;
    ev.location = 0;
    ev.sk = 0;
    ev.comm = emit::comm();
    more(ev);
    entry.submit(0);
    true
}

/// `TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)`
/// (the rx_sk argument is recent; older kernels pass three): every drop with its reason;
/// consumed packets go to consume_skb instead.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let sent = skb_event(SkbWhat::Drop, skb, |ev| {
        ev.location = ctx.arg(1);
        ev.arg0 = ctx.arg(2);
        ev.sk = ctx.arg(3);
    });
    if sent {
        let _ = TRACKED.remove(skb);
    }
    0
}

/// `TP_PROTO(const struct sock *sk, const struct sk_buff *skb, const enum sk_rst_reason reason)`:
/// a RST answering `skb`; sk is NULL when no socket wanted the packet.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    skb_event(SkbWhat::ResetSent, ctx.arg(1), |ev| {
        ev.sk = ctx.arg(0);
        ev.arg0 = ctx.arg(2);
    });
    0
}

/// `TP_PROTO(const struct sk_buff *skb, int type, int code)`: an ICMPv4 error about `skb`, e.g.
/// port unreachable for a UDP datagram no socket wanted.
#[btf_tracepoint(function = "icmp_send")]
pub fn icmp_send(ctx: BtfTracePointContext) -> i32 {
    skb_event(SkbWhat::IcmpSent, ctx.arg(0), |ev| {
        ev.arg0 = ctx.arg(1);
        ev.arg1 = ctx.arg(2);
    });
    0
}

/// `TP_PROTO(int rc, struct sock *sk, struct sk_buff *skb)`: UDP could not queue the datagram.
#[btf_tracepoint(function = "udp_fail_queue_rcv_skb")]
pub fn udp_fail_queue_rcv_skb(ctx: BtfTracePointContext) -> i32 {
    skb_event(SkbWhat::QueueFail, ctx.arg(2), |ev| {
        ev.arg0 = ctx.arg(0);
        ev.sk = ctx.arg(1);
    });
    0
}

/// `TP_PROTO(struct sock *sk, struct sk_buff *skb)`: the socket's receive buffer is full.
#[btf_tracepoint(function = "sock_rcvqueue_full")]
pub fn sock_rcvqueue_full(ctx: BtfTracePointContext) -> i32 {
    skb_event(SkbWhat::QueueFail, ctx.arg(1), |ev| {
        ev.sk = ctx.arg(0);
        // -ENOMEM: what sock_queue_rcv_skb() returns when the buffer is full.
        ev.arg0 = -12;
    });
    0
}
