//! In-kernel statistics: what the programs count per watched port instead of (or besides)
//! sending each packet's journey through the ring buffer, and the mode that says which.
//!
//! One layout, used by the programs that add to it and by user space that sums it over CPUs.

/// Load-time mode (the `MODE` global): which of the two kinds of output the programs write.
/// A read-only global, so the verifier drops the branches of the kind not asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModeConfig {
    /// `MODE_*` bits.
    pub flags: u32,
    /// With `MODE_JOURNEYS`: follow one in this many matched packets in full (0 or 1: all).
    /// Drops, resets, ICMP errors and full queues are told whatever it says.
    pub sample_one_in: u32,
}

/// Per-packet events go to the ring buffer (`sockpath watch`).
pub const MODE_JOURNEYS: u32 = 1;
/// Per-port counters and latency histograms in the `STATS` map (`sockpath stats`, metrics).
pub const MODE_STATS: u32 = 2;

/// Global variable name (EbpfLoader::override_global).
pub const GLOBAL_MODE: &str = "MODE";
/// The per-CPU hash of per-port statistics.
pub const MAP_STATS: &str = "STATS";
/// Ports (and protocols) with statistics at once; one more port is counted in
/// `counter::STATS_FULL` instead.
pub const STATS_MAX_PORTS: u32 = 256;

/// The key of a port's statistics: the watched port, the packet's IP protocol, and whether the
/// packet came from that port (a reply to a client's connection or datagram) rather than to it,
/// as `port | proto << 16 | from << 24`. A watched port is the destination's when both are.
#[inline(always)]
pub const fn port_key(port: u16, proto: u8, from: bool) -> u32 {
    port as u32 | (proto as u32) << 16 | (from as u32) << 24
}

/// `(port, proto, from)` of a key.
#[inline(always)]
pub const fn key_parts(key: u32) -> (u16, u8, bool) {
    (key as u16, (key >> 16) as u8, (key >> 24) & 1 != 0)
}

/// Indices into [`PortStats::counts`]: what became of matched packets. Not exclusive: a datagram
/// to a closed port is counted both as ICMP error sent and as dropped (NO_SOCKET).
pub mod outcome {
    /// Packets that passed the filter at device receive.
    pub const MATCHED: usize = 0;
    /// Queued on a socket's receive queue (its sk_data_ready ran in the packet's softirq).
    pub const QUEUED: usize = 1;
    /// The handshake's last ACK put a connection on a listener's accept queue.
    pub const ACCEPT_QUEUED: usize = 2;
    /// A process read the packet: a TCP segment's data copied (skb_copy_datagram_iovec; once
    /// per segment), a UDP datagram taken by a recvmsg.
    pub const READ: usize = 3;
    /// accept() returned a connection of this port.
    pub const ACCEPTED: usize = 4;
    /// Freed with a drop reason (kfree_skb); by reason in [`super::PortStats::drops`].
    pub const DROPPED: usize = 5;
    /// A RST answered the packet.
    pub const RESET_SENT: usize = 6;
    /// An ICMP error answered the packet (port unreachable for UDP to a closed port).
    pub const ICMP_SENT: usize = 7;
    /// The socket's receive queue was full.
    pub const QUEUE_FULL: usize = 8;
    /// Freed as consumed (consume_skb) without having been queued or read: a SYN answered, a
    /// pure ACK.
    pub const CONSUMED: usize = 9;
    pub const COUNT: usize = 10;
}

/// Indices into [`PortStats::hist`]: the stages whose time is measured.
pub mod stage {
    /// Device receive to the socket's queue (sk_data_ready).
    pub const DEVICE_TO_QUEUE: usize = 0;
    /// The socket's queue to the process's read (skb_copy_datagram_iovec).
    pub const QUEUE_TO_READ: usize = 1;
    /// Device receive to the read.
    pub const DEVICE_TO_READ: usize = 2;
    /// Device receive to the drop.
    pub const DEVICE_TO_DROP: usize = 3;
    pub const COUNT: usize = 4;
    /// Names, in index order.
    pub const NAMES: [&str; COUNT] = [
        "device -> queue",
        "queue -> read",
        "device -> read",
        "device -> drop",
    ];
}

/// Log2 buckets of a histogram: bucket b counts [2^b, 2^(b+1)) ns (bucket 0 also 0 ns); the
/// last counts everything from 2^39 ns (about 9 minutes) on.
pub const HIST_BUCKETS: usize = 40;
/// Drop reasons counted one by one; a reason at or above it (a subsystem's, or a newer
/// kernel's) is counted in the last slot.
pub const DROP_REASONS: usize = 160;

/// A latency histogram in nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hist {
    pub buckets: [u64; HIST_BUCKETS],
    pub sum_ns: u64,
    /// Per CPU; the greatest over CPUs is the maximum.
    pub max_ns: u64,
}

/// One port's statistics on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStats {
    pub counts: [u64; outcome::COUNT],
    pub drops: [u64; DROP_REASONS],
    pub hist: [Hist; stage::COUNT],
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            buckets: [0; HIST_BUCKETS],
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

impl Default for PortStats {
    fn default() -> Self {
        Self {
            counts: [0; outcome::COUNT],
            drops: [0; DROP_REASONS],
            hist: [Hist::default(); stage::COUNT],
        }
    }
}

/// The bucket of `ns`: floor(log2(ns)), capped at the last bucket. No loop: the verifier
/// would unroll one, and this runs in several hooks per packet.
#[inline(always)]
pub const fn log2_bucket(ns: u64) -> usize {
    let mut v = ns;
    let mut b = 0usize;
    if v >= 1 << 32 {
        v >>= 32;
        b += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        b += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        b += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        b += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        b += 2;
    }
    if v >= 1 << 1 {
        b += 1;
    }
    if b >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        b
    }
}

/// The drop-reason slot of `reason`.
#[inline(always)]
pub const fn drop_slot(reason: u64) -> usize {
    if reason >= DROP_REASONS as u64 {
        DROP_REASONS - 1
    } else {
        reason as usize
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), made only of integers, with no implicit padding (the size asserts
    // below fail the build if one appears).
    unsafe impl aya::Pod for super::ModeConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PortStats {}
}

const _: () = assert!(core::mem::size_of::<ModeConfig>() == 8);
const _: () = assert!(core::mem::size_of::<Hist>() == (HIST_BUCKETS + 2) * 8);
const _: () = assert!(
    core::mem::size_of::<PortStats>()
        == (outcome::COUNT + DROP_REASONS) * 8 + stage::COUNT * (HIST_BUCKETS + 2) * 8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_floor_log2_capped() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(1023), 9);
        assert_eq!(log2_bucket(1024), 10);
        for b in 0..63u32 {
            let want = (b as usize).min(HIST_BUCKETS - 1);
            assert_eq!(log2_bucket(1u64 << b), want, "2^{b}");
            assert_eq!(log2_bucket((1u64 << (b + 1)) - 1), want, "2^{}-1", b + 1);
        }
        assert_eq!(log2_bucket(u64::MAX), HIST_BUCKETS - 1);
    }

    #[test]
    fn keys_and_drop_slots() {
        assert_eq!(key_parts(port_key(4000, 17, false)), (4000, 17, false));
        assert_eq!(key_parts(port_key(53, 6, true)), (53, 6, true));
        assert_eq!(drop_slot(2), 2);
        assert_eq!(drop_slot(0x10000), DROP_REASONS - 1);
    }
}
