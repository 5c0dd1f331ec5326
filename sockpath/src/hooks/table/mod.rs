//! The hook table: every program of the eBPF object, once.
//!
//! Where the kernel versions come from (the release each attach point first had what its
//! program reads):
//! - "DepSurf": the DepSurf dataset of tracepoint prototypes and event layouts in Ubuntu's
//!   kernels 4.4 to 6.8 (sampled releases: 4.4, 4.8, 4.10, 4.13, 4.15, 4.18, 5.0, 5.3, 5.4, 5.8,
//!   5.11, 5.13, 5.15, 5.19, 6.2, 6.5, 6.8). For attach points it lists in 4.4 the version given
//!   is that oldest one checked; every program needs the ring buffer (5.8) anyway.
//! - "net-next-X": the networking pull request merged for release X, which lists the commit.
//! - "lttng": lttng-modules' instrumentation, which guards each tracepoint prototype by the
//!   kernel version that introduced it.
//! - "measured": what `sockpath probes` and the integration tests showed on Debian's 5.10, 6.1
//!   and 6.12 kernels under the VM runner, and on the 6.18 host.

mod ends;
mod packet;
mod socket;

use super::program::StageSpec;

/// Every stage, in journey order, with its hooks preferred first (fentry/fexit, then
/// kprobe/kretprobe, then a tracepoint). IPv6 programs are optional: an IPv4 journey does not
/// need them, and a kernel may inline them away.
pub static TABLE: &[StageSpec] = &[
    packet::DEVICE_RECEIVE,
    packet::SOFTIRQ,
    packet::ROUTE,
    packet::IP_RECEIVE,
    packet::LOCAL_DELIVER,
    packet::TRANSPORT,
    socket::LOOKUP,
    socket::ESTABLISHED_RECEIVE,
    socket::SYN_ACK,
    socket::QUEUE,
    socket::TCP_STATE,
    socket::READ,
    socket::COPIED,
    ends::DROP,
    ends::CONSUMED,
    ends::RESET_SENT,
    ends::RESET_RECEIVED,
    ends::ICMP_SENT,
    ends::QUEUE_FULL,
    ends::DESTROYED,
    ends::SYSCALLS,
];

/// The table's row for `stage`.
#[cfg(test)]
pub fn spec(stage: super::StageId) -> &'static StageSpec {
    TABLE
        .iter()
        .find(|s| s.stage == stage)
        .expect("every stage has a row in the hook table")
}
