//! SYNs seen, so a client's retransmission of a SYN the listener did not answer is joined to the
//! first: the same ends and sequence number ("retransmission 2 of the SYN of journey 5").

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use super::model::{Journey, OutcomeData, Retransmission};

/// SYNs remembered at most; past it the oldest is forgotten (a client gives up on a SYN after
/// six retransmissions, about two minutes, by default).
const REMEMBERED: usize = 4096;

/// A SYN's network namespace, ends and sequence number.
type Key = (u32, IpAddr, u16, IpAddr, u16, u32);

#[derive(Default)]
pub(crate) struct Syns {
    /// The first journey with each key, its start (monotonic ns) and how many came after it.
    seen: HashMap<Key, (u64, u64, u32)>,
    order: VecDeque<Key>,
}

impl Syns {
    /// Notes the SYN of journey `j` (started at monotonic `t0`); if it repeats an earlier one
    /// the listener did not answer, says so in its outcome.
    pub fn note(&mut self, j: &mut Journey, t0: u64) {
        let Some(h) = &j.headers else { return };
        let Some(tcp) = &h.tcp else { return };
        if h.proto != 6 || !h.has_flag("SYN") || h.has_flag("ACK") {
            return;
        }
        let (Some(sport), Some(dport)) = (h.sport, h.dport) else {
            return;
        };
        let key = (j.netns, h.src, sport, h.dst, dport, tcp.seq);
        if let Some((first, first_t0, n)) = self.seen.get_mut(&key) {
            *n += 1;
            if let OutcomeData::SynNotAnswered { retransmission, .. } = &mut j.outcome.data {
                *retransmission = Some(Retransmission {
                    n: *n,
                    first: *first,
                    after_ns: t0.saturating_sub(*first_t0),
                });
            }
            return;
        }
        if self.order.len() >= REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key, (j.id, t0, 0));
        self.order.push_back(key);
    }
}
