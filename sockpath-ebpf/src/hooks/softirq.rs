//! NET_RX softirq boundaries.
//!
//! A packet's trip from netif_receive_skb to the socket runs synchronously inside one NET_RX
//! softirq on one CPU (loopback and veth queue to the per-CPU backlog, which this softirq
//! drains). Marking the softirq lets socket hooks that get only a `struct sock` (sk_data_ready,
//! inet_sock_set_state) say which packet the CPU was processing, and keeps process-context
//! events (a connect() changing state) from being taken for packet events.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::emit::rx_ctx;

const NET_RX_SOFTIRQ: u32 = 3;

/// `TP_PROTO(unsigned int vec_nr)`
#[btf_tracepoint(function = "softirq_entry")]
pub fn softirq_entry(ctx: BtfTracePointContext) -> i32 {
    set(ctx, 1)
}

/// `TP_PROTO(unsigned int vec_nr)`
#[btf_tracepoint(function = "softirq_exit")]
pub fn softirq_exit(ctx: BtfTracePointContext) -> i32 {
    set(ctx, 0)
}

#[inline(always)]
fn set(ctx: BtfTracePointContext, on: u32) -> i32 {
    let vec: u32 = ctx.arg(0);
    if vec != NET_RX_SOFTIRQ {
        return 0;
    }
    if let Some(c) = rx_ctx() {
        // SAFETY: per-CPU slot.
        unsafe {
            (*c).in_net_rx = on;
            (*c).journey = 0;
            (*c).watched = 0;
            (*c).sampled_out = 0;
        }
    }
    0
}
