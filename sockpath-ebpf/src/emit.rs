//! Filling event headers and writing events to the ring buffer, counting what does not fit.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id, bpf_ktime_get_ns,
    },
    maps::ring_buf::RingBufEntry,
};
use sockpath_ebpf::{
    config::counter,
    event::{EventHeader, EventKind, CTX_NET_RX},
};

use crate::maps::{count, RxCtx, EVENTS, RX_CTX};

/// Ring buffer writes never wake the reader (BPF_RB_NO_WAKEUP): user space drains the ring on
/// a short timer instead. With the default, every event written after the reader caught up
/// queues an irq_work and wakes it, which at tens of thousands of packets a second cost more
/// than reading the events themselves, on both sides.
pub const RB_FLAGS: u64 = 1;

/// The CPU's receive context: whether it serves NET_RX now, and which journey.
#[inline(always)]
pub fn rx_ctx() -> Option<*mut RxCtx> {
    RX_CTX.get_ptr_mut(0)
}

/// `(CTX_NET_RX, journey)` while the CPU processes a followed packet in NET_RX; `(0, 0)` outside
/// NET_RX; `(CTX_NET_RX, 0)` while it processes an unwatched one, or a watched one sampled out
/// (`watch --sample N`).
#[inline(always)]
pub fn current_journey() -> (u16, u64) {
    match rx_ctx() {
        // SAFETY: per-CPU slot, read on the CPU that owns it.
        Some(c) => unsafe {
            if (*c).in_net_rx != 0 {
                if (*c).sampled_out != 0 {
                    (CTX_NET_RX, 0)
                } else {
                    (CTX_NET_RX, (*c).journey)
                }
            } else {
                (0, 0)
            }
        },
        None => (0, 0),
    }
}

/// Whether the CPU serves a NET_RX softirq for a watched packet that is not followed
/// (`watch --sample N`): the socket hooks send nothing for it.
#[inline(always)]
pub fn softirq_sampled_out() -> bool {
    match rx_ctx() {
        // SAFETY: per-CPU slot, read on the CPU that owns it.
        Some(c) => unsafe { (*c).in_net_rx != 0 && (*c).sampled_out != 0 },
        None => false,
    }
}

/// Whether the CPU serves a NET_RX softirq in which no watched packet came by yet: whatever a
/// socket or packet hook sees then belongs to unwatched traffic. The first check of those hooks,
/// so that traffic on other ports costs them one per-CPU lookup.
#[inline(always)]
pub fn softirq_unwatched() -> bool {
    match rx_ctx() {
        // SAFETY: per-CPU slot, read on the CPU that owns it.
        Some(c) => unsafe { (*c).in_net_rx != 0 && (*c).watched == 0 },
        None => false,
    }
}

#[inline(always)]
pub fn header(kind: EventKind, size: usize, ctx: u16, journey: u64) -> EventHeader {
    EventHeader {
        kind: kind as u16,
        size: size as u16,
        // SAFETY: helpers without preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() } as u16,
        ctx,
        // SAFETY: a helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        pid_tgid: bpf_get_current_pid_tgid(),
        journey,
    }
}

#[inline(always)]
pub fn comm() -> [u8; 16] {
    bpf_get_current_comm().unwrap_or([0; 16])
}

/// Room for one event in the ring buffer, filled in place (events are too big to build on the
/// 512-byte BPF stack and copy). A full ring buffer is counted, never silent.
#[inline(always)]
pub fn reserve<T: 'static>() -> Option<RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(counter::EVENTS_LOST);
    }
    entry
}

/// Writes an event that already sits in map memory.
#[inline(always)]
pub fn send<T: 'static>(event: &T) {
    if EVENTS.output::<T>(event, RB_FLAGS).is_err() {
        count(counter::EVENTS_LOST);
    }
}
