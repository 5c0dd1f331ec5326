//! What the programs write: per-packet journeys (`watch`), per-port statistics (`stats`, the
//! daemon's metrics), or both; and which hooks each needs.

use sockpath_ebpf::stats::{ModeConfig, MODE_JOURNEYS, MODE_STATS};

use crate::hooks::StageId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Events for journeys go to the ring buffer.
    pub journeys: bool,
    /// Per-port counters and latency histograms are kept in the kernel.
    pub stats: bool,
    /// With journeys: follow one in this many matched packets in full (`watch --sample N`;
    /// 0 or 1: all). Ends (drops, resets, ICMP errors, full queues) are told whatever it says.
    pub sample_one_in: u32,
}

impl Mode {
    pub const JOURNEYS: Self = Self {
        journeys: true,
        stats: false,
        sample_one_in: 0,
    };
    pub const STATS: Self = Self {
        journeys: false,
        stats: true,
        sample_one_in: 0,
    };
    pub const BOTH: Self = Self {
        journeys: true,
        stats: true,
        sample_one_in: 0,
    };

    /// `watch --sample n`: journeys of one in `n` matched packets, and the statistics that
    /// count every one of them exactly.
    pub const fn sampled(n: u32) -> Self {
        Self {
            journeys: true,
            stats: true,
            sample_one_in: n,
        }
    }

    /// The `MODE` global the programs read.
    pub fn config(self) -> ModeConfig {
        let mut flags = 0;
        if self.journeys {
            flags |= MODE_JOURNEYS;
        }
        if self.stats {
            flags |= MODE_STATS;
        }
        ModeConfig {
            flags,
            sample_one_in: self.sample_one_in,
        }
    }

    /// Whether the hooks of `stage` are attached in this mode. Statistics need device receive
    /// and the softirq marks (the packet a socket hook concerns), the queue, the reads (a UDP
    /// socket's recvmsg; the TCP segment copied, skb_copy_datagram_iovec, for statistics only:
    /// it runs for every recvmsg on the machine), the consumed (consume_skb), the ends (drop,
    /// reset, ICMP error, full queue) and accept().
    pub fn wants(self, stage: StageId) -> bool {
        let for_stats = matches!(
            stage,
            StageId::DeviceReceive
                | StageId::Softirq
                | StageId::Queue
                | StageId::Read
                | StageId::Copied
                | StageId::Consumed
                | StageId::Drop
                | StageId::ResetSent
                | StageId::IcmpSent
                | StageId::QueueFull
                | StageId::Syscalls
        );
        (self.stats && for_stats) || (self.journeys && stage != StageId::Copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journeys_attach_every_stage_but_the_statistics_read() {
        for s in StageId::ALL {
            assert_eq!(Mode::JOURNEYS.wants(s), s != StageId::Copied, "{s:?}");
            assert!(Mode::BOTH.wants(s), "{s:?}");
        }
        assert!(!Mode::STATS.wants(StageId::Lookup) && !Mode::STATS.wants(StageId::TcpState));
        assert!(Mode::STATS.wants(StageId::Copied) && Mode::STATS.wants(StageId::Drop));
        assert!(Mode::STATS.wants(StageId::Consumed));
        assert_eq!(Mode::STATS.config().flags, MODE_STATS);
        assert_eq!(Mode::BOTH.config().flags, MODE_JOURNEYS | MODE_STATS);
        assert_eq!(Mode::BOTH.config().sample_one_in, 0);
        let s = Mode::sampled(100).config();
        assert_eq!(
            (s.flags, s.sample_one_in),
            (MODE_JOURNEYS | MODE_STATS, 100)
        );
    }
}
