//! Packet-side hooks: what became of a tracked packet (drop, reset, ICMP error, full queue).

use aya_ebpf::{
    macros::{btf_tracepoint, fentry, kprobe},
    programs::{BtfTracePointContext, FEntryContext, ProbeContext},
    EbpfContext,
};
use sockpath_ebpf::{
    config::{counter, FEATURE_CONSUME_LOCATION, FEATURE_KFREE_SKB_RX_SK, FEATURE_RESET_REASON},
    event::{
        EventKind, QueueFullHook, SkbEvent, SkbWhat, DROP_AT_TIME_WAIT, DROP_REASON_NOT_GIVEN,
        DROP_TW_LEFT,
    },
    stats::outcome,
};

use crate::{
    emit,
    hooks::device::send_late_packet,
    kernel::{
        offsets, read,
        skb::{told, tracked_entry, untrack},
        sock,
    },
    maps::{count, SAMPLE_OUT},
    tally,
};

/// Sends an event about `skb` if it is a tracked packet; `more` completes it. Returns whether
/// the packet is one whose journey the event belongs to (its tracking can then be let go of
/// once it is freed).
///
/// A packet sampled out (`watch --sample N`) is reported from its end on: the first drop,
/// reset sent, ICMP error or full queue sends its device-receive event late, then itself; its
/// hops and its consumption are not reported.
#[inline(always)]
pub(crate) fn skb_event(what: SkbWhat, skb: u64, more: impl FnOnce(&mut SkbEvent)) -> bool {
    if !tally::journeys() || emit::softirq_unwatched() {
        return false;
    }
    let o = offsets();
    let Some((slot, t)) = tracked_entry(skb, o) else {
        return false;
    };
    if t.sample == SAMPLE_OUT {
        let end = matches!(
            what,
            SkbWhat::Drop | SkbWhat::ResetSent | SkbWhat::IcmpSent | SkbWhat::QueueFail
        );
        if !end {
            // Freed without an end worth telling: nothing more will name it.
            if matches!(what, SkbWhat::Consumed) {
                untrack(skb, o);
            }
            return false;
        }
        told(skb, slot);
        if send_late_packet(skb, &t).is_err() {
            count(counter::READ_ERRORS);
        }
    }
    let journey = t.journey;
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
    ev.arg2 = 0;
    ev.skb = skb;
    ev.location = 0;
    ev.sk = 0;
    ev.comm = emit::comm();
    more(ev);
    entry.submit(emit::RB_FLAGS);
    true
}

/// Argument `n` of a BTF-typed hook, read only if `present`: the verifier rejects reading past
/// a kernel's prototype, and prunes this read when `present` comes from the read-only
/// features global. Volatile so the compiler cannot hoist the read above the check.
#[inline(always)]
pub(crate) fn arg_if<C: EbpfContext>(ctx: &C, n: usize, present: bool) -> u64 {
    if present {
        // SAFETY: BTF-typed programs get their arguments as an array of u64.
        unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u64).add(n)) }
    } else {
        0
    }
}

/// `TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason[, struct sock *rx_sk])`
/// (rx_sk only on recent kernels): every drop with its reason; consumed packets go to
/// consume_skb instead.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    let reason: u32 = ctx.arg(2);
    tally::skb_outcome(outcome::DROPPED, skb, reason as u64);
    let rx_sk = offsets().features & FEATURE_KFREE_SKB_RX_SK != 0;
    let sent = skb_event(SkbWhat::Drop, skb, |ev| {
        ev.location = ctx.arg(1);
        ev.arg0 = ctx.arg(2);
        ev.sk = arg_if(&ctx, 3, rx_sk);
        // A segment a time-wait socket handled ends here as NOT_SPECIFIED (tcp_v4_rcv's
        // discard_it after tcp_timewait_state_process()): say which socket and substate.
        if ev.sk != 0 {
            let o = offsets();
            if read::<u8>(ev.sk, o.skc_state).unwrap_or(0) == sock::TCP_TIME_WAIT {
                ev.arg1 = DROP_AT_TIME_WAIT | read::<u8>(ev.sk, o.tw_substate).unwrap_or(0) as i32;
                if let Some(left) = sock::tw_jiffies_left(ev.sk, o) {
                    ev.arg1 |= DROP_TW_LEFT;
                    ev.arg2 = left;
                }
            }
        }
    });
    if sent {
        untrack(skb, offsets());
    }
    0
}

/// `TP_PROTO(struct sk_buff *skb, void *location)`: kfree_skb on kernels before 5.17, which pass
/// no drop reason. Every kfree_skb() there is a drop (consume_skb() frees the rest); the
/// location says where.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb_no_reason(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    // Counted in the statistics' first slot, which a kernel with reasons never uses (0 is
    // SKB_NOT_DROPPED_YET there): user space names it "reason not given by this kernel".
    tally::skb_outcome(outcome::DROPPED, skb, 0);
    let sent = skb_event(SkbWhat::Drop, skb, |ev| {
        ev.location = ctx.arg(1);
        ev.arg0 = DROP_REASON_NOT_GIVEN;
    });
    if sent {
        untrack(skb, offsets());
    }
    0
}

/// `TP_PROTO(struct sk_buff *skb[, void *location])` (location since 6.3): a packet freed once
/// the kernel was done with it (a SYN answered, a pure ACK processed, a segment a time-wait
/// socket answered, a datagram read). It fires for every sk_buff freed on the machine, so it
/// returns after one per-CPU lookup inside an unwatched softirq, and otherwise after the
/// tracked-packet slot of the buffer's head says it is not a followed packet.
#[btf_tracepoint(function = "consume_skb")]
pub fn consume_skb(ctx: BtfTracePointContext) -> i32 {
    let skb: u64 = ctx.arg(0);
    // Counted first: the journey's event below lets go of the packet's tracking slot.
    tally::consumed(skb);
    let with_location = offsets().features & FEATURE_CONSUME_LOCATION != 0;
    let sent = skb_event(SkbWhat::Consumed, skb, |ev| {
        ev.location = arg_if(&ctx, 1, with_location);
    });
    if sent {
        untrack(skb, offsets());
    }
    0
}

/// `TP_PROTO(const struct sock *sk, const struct sk_buff *skb[, const enum sk_rst_reason reason])`:
/// a RST answering `skb`; sk is NULL when no socket wanted the packet (traced only since the
/// reason was added; older kernels need the tcp_v4/v6_send_reset hooks).
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    reset_sent(&ctx);
    0
}

/// `void tcp_v4_send_reset(const struct sock *sk, struct sk_buff *skb[, enum sk_rst_reason reason])`
#[fentry]
pub fn fentry_tcp_v4_send_reset(ctx: FEntryContext) -> u32 {
    reset_sent(&ctx);
    0
}

/// `void tcp_v6_send_reset(const struct sock *sk, struct sk_buff *skb[, enum sk_rst_reason reason])`
#[fentry]
pub fn fentry_tcp_v6_send_reset(ctx: FEntryContext) -> u32 {
    reset_sent(&ctx);
    0
}

#[inline(always)]
fn reset_sent<C: EbpfContext>(ctx: &C) {
    let with_reason = offsets().features & FEATURE_RESET_REASON != 0;
    let sk = arg_if(ctx, 0, true);
    let skb = arg_if(ctx, 1, true);
    tally::skb_outcome(outcome::RESET_SENT, skb, 0);
    skb_event(SkbWhat::ResetSent, skb, |ev| {
        ev.sk = sk;
        // -1: this kernel does not say why.
        ev.arg0 = if with_reason {
            arg_if(ctx, 2, true) as i32
        } else {
            -1
        };
    });
}

#[kprobe]
pub fn kprobe_tcp_v4_send_reset(ctx: ProbeContext) -> u32 {
    kprobe_reset_sent(&ctx);
    0
}

#[kprobe]
pub fn kprobe_tcp_v6_send_reset(ctx: ProbeContext) -> u32 {
    kprobe_reset_sent(&ctx);
    0
}

#[inline(always)]
fn kprobe_reset_sent(ctx: &ProbeContext) {
    let with_reason = offsets().features & FEATURE_RESET_REASON != 0;
    let (Some(sk), Some(skb)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let reason = if with_reason {
        ctx.arg::<u64>(2).unwrap_or(0) as i32
    } else {
        -1
    };
    tally::skb_outcome(outcome::RESET_SENT, skb, 0);
    skb_event(SkbWhat::ResetSent, skb, |ev| {
        ev.sk = sk;
        ev.arg0 = reason;
    });
}

/// `TP_PROTO(const struct sk_buff *skb, int type, int code)`: an ICMPv4 error about `skb`, e.g.
/// port unreachable for a UDP datagram no socket wanted.
#[btf_tracepoint(function = "icmp_send")]
pub fn icmp_send(ctx: BtfTracePointContext) -> i32 {
    tally::skb_outcome(outcome::ICMP_SENT, ctx.arg(0), 0);
    skb_event(SkbWhat::IcmpSent, ctx.arg(0), |ev| {
        ev.arg0 = ctx.arg(1);
        ev.arg1 = ctx.arg(2);
    });
    0
}

/// `void __icmp_send(struct sk_buff *skb_in, int type, int code, __be32 info, const struct
/// ip_options *opt)`: what icmp_send() (an inline wrapper) calls.
#[fentry]
pub fn fentry_icmp_send(ctx: FEntryContext) -> u32 {
    let (type_, code): (i32, i32) = (ctx.arg(1), ctx.arg(2));
    tally::skb_outcome(outcome::ICMP_SENT, ctx.arg(0), 0);
    skb_event(SkbWhat::IcmpSent, ctx.arg(0), |ev| {
        ev.arg0 = type_;
        ev.arg1 = code;
    });
    0
}

#[kprobe]
pub fn kprobe_icmp_send(ctx: ProbeContext) -> u32 {
    let (Some(skb), Some(type_), Some(code)) =
        (ctx.arg::<u64>(0), ctx.arg::<i32>(1), ctx.arg::<i32>(2))
    else {
        return 0;
    };
    tally::skb_outcome(outcome::ICMP_SENT, skb, 0);
    skb_event(SkbWhat::IcmpSent, skb, |ev| {
        ev.arg0 = type_;
        ev.arg1 = code;
    });
    0
}

/// `TP_PROTO(int rc, struct sock *sk, struct sk_buff *skb)`: UDP could not queue the datagram.
#[btf_tracepoint(function = "udp_fail_queue_rcv_skb")]
pub fn udp_fail_queue_rcv_skb(ctx: BtfTracePointContext) -> i32 {
    tally::skb_outcome(outcome::QUEUE_FULL, ctx.arg(2), 0);
    skb_event(SkbWhat::QueueFail, ctx.arg(2), |ev| {
        ev.arg0 = ctx.arg(0);
        ev.arg1 = QueueFullHook::UdpFailQueueRcvSkb as i32;
        ev.sk = ctx.arg(1);
    });
    0
}

/// `TP_PROTO(struct sock *sk, struct sk_buff *skb)`: the socket's receive buffer is full.
#[btf_tracepoint(function = "sock_rcvqueue_full")]
pub fn sock_rcvqueue_full(ctx: BtfTracePointContext) -> i32 {
    tally::skb_outcome(outcome::QUEUE_FULL, ctx.arg(1), 0);
    skb_event(SkbWhat::QueueFail, ctx.arg(1), |ev| {
        ev.sk = ctx.arg(0);
        // -ENOMEM: what sock_queue_rcv_skb() returns when the buffer is full.
        ev.arg0 = -12;
        ev.arg1 = QueueFullHook::SockRcvqueueFull as i32;
    });
    0
}
