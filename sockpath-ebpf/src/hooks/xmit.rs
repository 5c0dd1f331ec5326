//! Replies sent while a watched packet is processed: the SYN-ACK that names the listener.
//!
//! On a tracepoint-only kernel no hook sees the listener lookup itself, but the SYN-ACK it
//! causes leaves synchronously, inside the SYN's NET_RX softirq, owned by the request socket the
//! listener created; the request socket points back at that listener (rsk_listener). So the
//! listener that got the SYN (the one bound to the more specific address, or the SO_REUSEPORT
//! member chosen) is observed, not guessed.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use sockpath_ebpf::event::{CallInfo, EventKind, SockEvent, SockWhat};

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
    let Ok(req) = read_ptr(skb, o.skb_sk) else {
        return 0;
    };
    if read::<u8>(req, o.skc_state).unwrap_or(0) != sock::TCP_NEW_SYN_RECV {
        return 0;
    }
    let listener = sock::request_listener(req, &o);
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
    sock::info_into(&mut ev.sock, listener, &o);
    sock::info_into(&mut ev.other, req, &o);
    ev.comm = emit::comm();
    ev.call = CallInfo::default();
    entry.submit(emit::RB_FLAGS);
    0
}
