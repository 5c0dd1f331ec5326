//! What every event carries in its header: when, where, in which task, for which packet.

use sockpath_ebpf::event::{c_str, EventHeader, CTX_NET_RX};

/// Fields every event has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub cpu: u16,
    /// Produced while the CPU served the NET_RX softirq.
    pub net_rx: bool,
    pub pid: u32,
    pub tid: u32,
    /// Exact journey id for packet/skb events, the CPU's current packet for socket events.
    pub journey: u64,
}

impl Meta {
    pub fn of(h: &EventHeader) -> Self {
        Self {
            ts_ns: h.ts_ns,
            cpu: h.cpu,
            net_rx: h.ctx & CTX_NET_RX != 0,
            pid: (h.pid_tgid >> 32) as u32,
            tid: h.pid_tgid as u32,
            journey: h.journey,
        }
    }
}

/// A NUL-padded kernel string (comm, ifname), lossily as UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(c_str(bytes)).into_owned()
}
