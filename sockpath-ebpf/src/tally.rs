//! The statistics mode's side of the hooks: the same programs that send journeys count what
//! became of each watched packet in a per-CPU map, per port (`sockpath_ebpf::stats`), when the
//! `MODE` global asks for it. Nothing per packet then crosses the ring buffer.
//!
//! A packet's times travel with it: device receive writes them into its TRACKED entry (and
//! the CPU's receive context), and the hooks that see it later subtract.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{LruHashMap, PerCpuArray, PerCpuHashMap},
    Global,
};
use sockpath_ebpf::{
    config::counter,
    net::IPPROTO_UDP,
    stats::{
        drop_slot, key_parts, log2_bucket, outcome, stage, ModeConfig, PortStats, MODE_JOURNEYS,
        MODE_STATS, STATS_MAX_PORTS,
    },
};

use crate::{
    emit::rx_ctx,
    kernel::{
        offsets, read,
        skb::{tracked_entry, untrack},
        sock::TCP_LISTEN,
    },
    maps::{count, Tracked, TRACKED},
};

/// Set by user space before load (`stats::GLOBAL_MODE`); journeys only unless told otherwise,
/// which is what every program did before the statistics existed.
#[unsafe(no_mangle)]
pub static MODE: Global<ModeConfig> = Global::new(ModeConfig {
    flags: MODE_JOURNEYS,
    sample_one_in: 0,
});

/// Per-port statistics, per CPU (`stats::MAP_STATS`).
#[map]
pub static STATS: PerCpuHashMap<u32, PortStats> =
    PerCpuHashMap::with_max_entries(STATS_MAX_PORTS, 0);

/// A zeroed PortStats to insert from: at 2.3 KB it cannot be built on the 512-byte stack.
#[map]
static STATS_ZERO: PerCpuArray<PortStats> = PerCpuArray::with_max_entries(1, 0);

/// `TRACKED::counted` bit: the packet's read was counted (a TCP segment read in several
/// pieces is copied several times).
const T_READ: u32 = 1;

#[inline(always)]
fn mode() -> ModeConfig {
    MODE.load()
}

/// Journeys go to the ring buffer.
#[inline(always)]
pub fn journeys() -> bool {
    mode().flags & MODE_JOURNEYS != 0
}

/// Journeys follow one in this many matched packets (`watch --sample N`); 0 or 1: all.
#[inline(always)]
pub fn sample_one_in() -> u32 {
    mode().sample_one_in
}

/// Statistics are counted.
#[inline(always)]
pub fn stats() -> bool {
    mode().flags & MODE_STATS != 0
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// This CPU's statistics of the port `key`, created at its first packet.
#[inline(always)]
fn port(key: u32) -> Option<&'static mut PortStats> {
    if let Some(p) = STATS.get_ptr_mut(key) {
        // SAFETY: this CPU's value of a per-CPU map; programs on one CPU do not run at once
        // (a nested one can at worst lose an increment).
        return Some(unsafe { &mut *p });
    }
    let zero = STATS_ZERO.get_ptr(0)?;
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by value the zeroed value would be copied onto the 512-byte BPF stack"
    )]
    // SAFETY: a map value, valid for the call.
    let _ = STATS.insert(key, unsafe { &*zero }, BPF_NOEXIST as u64);
    match STATS.get_ptr_mut(key) {
        // SAFETY: as above.
        Some(p) => Some(unsafe { &mut *p }),
        None => {
            count(counter::STATS_FULL);
            None
        }
    }
}

#[inline(always)]
fn observe(p: &mut PortStats, which: usize, ns: u64) {
    let Some(h) = p.hist.get_mut(which) else {
        return;
    };
    if let Some(b) = h.buckets.get_mut(log2_bucket(ns)) {
        *b += 1;
    }
    h.sum_ns += ns;
    if ns > h.max_ns {
        h.max_ns = ns;
    }
}

#[inline(always)]
fn add(p: &mut PortStats, which: usize) {
    if let Some(c) = p.counts.get_mut(which) {
        *c += 1;
    }
}

/// Device receive matched a packet of port `key`: returns the time to remember with it.
#[inline(always)]
pub fn matched(key: u32) -> u64 {
    let t = now();
    if let Some(p) = port(key) {
        add(p, outcome::MATCHED);
    }
    t
}

/// A socket's sk_data_ready ran: if the CPU is processing a watched packet in its softirq,
/// that packet was queued (on a listener: its connection went to the accept queue). Counted
/// once per packet.
#[inline(always)]
pub fn queued(sk: u64) {
    if !stats() {
        return;
    }
    let Some(c) = rx_ctx() else {
        return;
    };
    // SAFETY: per-CPU slot, read and written on the CPU that owns it.
    let c = unsafe { &mut *c };
    if c.in_net_rx == 0 || c.journey == 0 || c.queued != 0 {
        return;
    }
    c.queued = 1;
    let t = now();
    if let Some(e) = TRACKED.get_ptr_mut(c.slot) {
        // SAFETY: a valid array slot; a rewrite by another CPU meanwhile is told by the
        // journey id.
        unsafe {
            if (*e).journey == c.journey {
                (*e).queued_ns = t;
            }
        }
    }
    let (_, proto, _) = key_parts(c.key);
    if proto == IPPROTO_UDP {
        udp_queued(sk, c.key, c.rx_ns, t, c.sampled_out != 0);
    }
    let listener = read::<u8>(sk, offsets().skc_state).unwrap_or(0) == TCP_LISTEN;
    if let Some(p) = port(c.key) {
        add(
            p,
            if listener {
                outcome::ACCEPT_QUEUED
            } else {
                outcome::QUEUED
            },
        );
        observe(p, stage::DEVICE_TO_QUEUE, t.saturating_sub(c.rx_ns));
    }
}

/// A hook saw what became of `skb` (`outcome::DROPPED` with the kernel's `reason`,
/// `RESET_SENT`, `ICMP_SENT`, `QUEUE_FULL`, `CONSUMED`): counted if it is a watched packet. A
/// freed packet is forgotten here when no journey will forget it.
#[inline(always)]
pub fn skb_outcome(which: usize, skb: u64, reason: u64) {
    if !stats() || crate::emit::softirq_unwatched() {
        return;
    }
    let o = offsets();
    let Some((_, t)) = tracked_entry(skb, o) else {
        return;
    };
    if let Some(p) = port(t.key) {
        add(p, which);
        if which == outcome::DROPPED {
            if let Some(d) = p.drops.get_mut(drop_slot(reason)) {
                *d += 1;
            }
            observe(p, stage::DEVICE_TO_DROP, now().saturating_sub(t.rx_ns));
        }
    }
    if (which == outcome::DROPPED || which == outcome::CONSUMED) && !journeys() {
        untrack(skb, o);
    }
}

/// A process is copying `skb`'s data (skb_copy_datagram_iovec): a TCP segment's read, once
/// per segment. UDP datagrams are counted from their socket (`received`), whether they are
/// copied this way (paged ones) or not (linear ones).
#[inline(always)]
pub fn copied(skb: u64) {
    if !stats() {
        return;
    }
    let Some((slot, t)) = tracked_entry(skb, offsets()) else {
        return;
    };
    if key_parts(t.key).1 == IPPROTO_UDP {
        return;
    }
    count_read(skb, slot, &t);
}

/// `skb` was freed as consumed (a TCP SYN answered, a pure ACK...): counted as consumed,
/// unless it was read (a TCP segment whose data was copied). Forgotten either way, when no
/// journey will forget it.
#[inline(always)]
pub fn consumed(skb: u64) {
    if !stats() || crate::emit::softirq_unwatched() {
        return;
    }
    let o = offsets();
    let Some((_, t)) = tracked_entry(skb, o) else {
        return;
    };
    if t.counted & T_READ == 0 && t.queued_ns == 0 {
        if let Some(p) = port(t.key) {
            add(p, outcome::CONSUMED);
        }
    }
    if !journeys() {
        untrack(skb, o);
    }
}

/// Datagrams queued on a UDP socket and not read yet, oldest first, with their times: UDP
/// copies most datagrams out without skb_copy_datagram_iovec (copy_linear_skb) and frees them
/// without a tracepoint, so the read is taken from the socket (each recv takes the oldest).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct UdpQueue {
    /// Device receive and queueing times, `UDP_FIFO` slots used as a ring.
    rx_ns: [u64; UDP_FIFO],
    queued_ns: [u64; UDP_FIFO],
    /// Slots taken and read so far (ring positions: `& (UDP_FIFO - 1)`).
    pushed: u32,
    popped: u32,
    /// One bit per slot: the datagram was not followed (`watch --sample N`), so its read is not
    /// reported either.
    sampled_out: [u64; UDP_FIFO / 64],
    /// Datagrams queued while the ring was full, not recorded: the next reads take them, and
    /// nothing is recorded until they were read, so the ring's order stays the queue's.
    missing: u32,
    key: u32,
}

/// Datagrams whose times a socket's ring holds: a default receive buffer (212992 bytes) holds
/// about 170-280 small datagrams (each is charged its truesize, 768 bytes and up), so the times
/// of a full queue of small datagrams are kept. 1024 sockets of 4 KiB: 4 MiB of kernel memory.
const UDP_FIFO: usize = 256;

/// Queued datagrams of watched UDP sockets, by socket address. LRU: a socket closed with
/// datagrams unread leaves its entry behind.
#[map]
static UDP_QUEUES: LruHashMap<u64, UdpQueue> = LruHashMap::with_max_entries(1024, 0);

/// A zeroed UdpQueue to insert from.
#[map]
static UDP_QUEUE_ZERO: PerCpuArray<UdpQueue> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn udp_queued(sk: u64, key: u32, rx_ns: u64, queued_ns: u64, sampled_out: bool) {
    let q = match UDP_QUEUES.get_ptr_mut(sk) {
        Some(q) => q,
        None => {
            let Some(zero) = UDP_QUEUE_ZERO.get_ptr(0) else {
                return;
            };
            #[expect(
                clippy::needless_borrows_for_generic_args,
                reason = "by value the zeroed value would be copied onto the 512-byte BPF stack"
            )]
            // SAFETY: a map value, valid for the call.
            let _ = UDP_QUEUES.insert(sk, unsafe { &*zero }, 0);
            let Some(q) = UDP_QUEUES.get_ptr_mut(sk) else {
                return;
            };
            q
        }
    };
    // SAFETY: a map value; the socket's queue is written under its lock in softirq and read
    // by its reader, which can at worst see one datagram late.
    let q = unsafe { &mut *q };
    q.key = key;
    if q.missing > 0 || q.pushed.wrapping_sub(q.popped) >= UDP_FIFO as u32 {
        q.missing += 1;
        return;
    }
    let i = q.pushed as usize & (UDP_FIFO - 1);
    if let (Some(r), Some(qu)) = (q.rx_ns.get_mut(i), q.queued_ns.get_mut(i)) {
        *r = rx_ns;
        *qu = queued_ns;
    }
    if let Some(w) = q.sampled_out.get_mut(i / 64) {
        let bit = 1u64 << (i & 63);
        if sampled_out {
            *w |= bit;
        } else {
            *w &= !bit;
        }
    }
    q.pushed = q.pushed.wrapping_add(1);
}

/// A reader's recvmsg on `sk` returned `ret` (`flags` its flags): for a watched UDP socket,
/// a datagram read (not a peek, not an error), the oldest queued. Returns whether that datagram
/// was sampled out (`watch --sample N`), so that its read is not reported; a read whose
/// datagram is not known (queued while the ring was full) is reported.
#[inline(always)]
pub fn received(sk: u64, ret: i32, flags: i32) -> bool {
    const MSG_PEEK: i32 = 2;
    if !stats() || ret < 0 || flags & MSG_PEEK != 0 {
        return false;
    }
    let Some(q) = UDP_QUEUES.get_ptr_mut(sk) else {
        return false;
    };
    // SAFETY: as in udp_queued.
    let q = unsafe { &mut *q };
    let Some(p) = port(q.key) else {
        return false;
    };
    add(p, outcome::READ);
    if q.missing > 0 {
        q.missing -= 1;
        return false;
    }
    if q.pushed == q.popped {
        return false;
    }
    let i = q.popped as usize & (UDP_FIFO - 1);
    q.popped = q.popped.wrapping_add(1);
    let out = match q.sampled_out.get(i / 64) {
        Some(w) => *w & (1u64 << (i & 63)) != 0,
        None => false,
    };
    let (Some(&rx_ns), Some(&queued_ns)) = (q.rx_ns.get(i), q.queued_ns.get(i)) else {
        return out;
    };
    let t = now();
    observe(p, stage::DEVICE_TO_READ, t.saturating_sub(rx_ns));
    observe(p, stage::QUEUE_TO_READ, t.saturating_sub(queued_ns));
    out
}

/// The read of a watched packet, once.
#[inline(always)]
fn count_read(skb: u64, slot: u32, t: &Tracked) {
    if t.counted & T_READ != 0 {
        return;
    }
    if let Some(e) = TRACKED.get_ptr_mut(slot) {
        // SAFETY: a valid array slot, checked to still hold this packet.
        unsafe {
            if core::ptr::read_volatile(&(*e).skb) == skb {
                (*e).counted |= T_READ;
            }
        }
    }
    let t_now = now();
    if let Some(p) = port(t.key) {
        add(p, outcome::READ);
        observe(p, stage::DEVICE_TO_READ, t_now.saturating_sub(t.rx_ns));
        if t.queued_ns != 0 {
            observe(p, stage::QUEUE_TO_READ, t_now.saturating_sub(t.queued_ns));
        }
    }
}

/// accept() returned a connection whose local port is `port` (TCP).
#[inline(always)]
pub fn accepted(port: u16) {
    if !stats() {
        return;
    }
    if let Some(p) = self::port(sockpath_ebpf::stats::port_key(
        port,
        sockpath_ebpf::net::IPPROTO_TCP,
        false,
    )) {
        add(p, outcome::ACCEPTED);
    }
}
