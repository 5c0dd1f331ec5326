//! The journeys in flight, indexed by kernel id and by start time, and the ids of those that
//! finished recently.

use std::collections::{BTreeSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

use super::obs::Obs;
use crate::{decode::PacketRx, packet::Headers};

/// How many finished journey ids are remembered, so that late events for them are not taken
/// for journeys whose device-receive event was lost.
const FINISHED_MEMORY: usize = 65536;

pub(crate) struct Open {
    pub seq: u64,
    pub kernel_id: u64,
    pub t0: u64,
    pub last: u64,
    pub cpu: u16,
    pub pkt: Option<PacketRx>,
    pub headers: Option<Headers>,
    pub obs: Vec<Obs>,
    /// Payload waiting to be read, or a connection waiting to be accepted.
    pub awaiting: bool,
    pub lost: bool,
    pub evicted: bool,
    /// Sockets whose waiting lists name this journey (accept, FIN, unread data), so finishing it
    /// removes it from those lists only.
    pub waits_on: Vec<u64>,
    /// The packet reached a time-wait socket in this substate (FIN_WAIT2 or TIME_WAIT): seen by
    /// the lookup, or as the drop's rx_sk.
    pub tw_substate: Option<u8>,
    /// Jiffies left then on the time-wait socket's timer (the end of that substate), where
    /// the kernel gave its place.
    pub tw_left: Option<u32>,
    /// The listener's accept queue (length, limit) when the lookup found it (kernels whose
    /// lookups are hooked).
    pub accept_queue: Option<(u32, u32)>,
    /// The listener's SYN queue length then (its limit is the accept queue's).
    pub syn_queue: Option<u32>,
    /// The listener's namespace's net.ipv4.tcp_max_syn_backlog and net.ipv4.tcp_syncookies
    /// then.
    pub syn_sysctls: Option<(u32, u8)>,
}

impl Open {
    /// A journey begun at `t0`: with its packet, or (`pkt` None) by an event naming a packet
    /// whose device-receive event was not read (yet).
    fn new(
        seq: u64,
        kernel_id: u64,
        t0: u64,
        cpu: u16,
        pkt: Option<PacketRx>,
        headers: Option<Headers>,
    ) -> Self {
        Self {
            seq,
            kernel_id,
            t0,
            last: t0,
            cpu,
            lost: pkt.is_none(),
            pkt,
            headers,
            obs: Vec::new(),
            awaiting: false,
            evicted: false,
            tw_substate: None,
            tw_left: None,
            accept_queue: None,
            syn_queue: None,
            syn_sysctls: None,
            waits_on: Vec::new(),
        }
    }

    /// Dropped or accepted: nothing more will happen to it.
    pub fn terminal(&self) -> bool {
        self.obs
            .iter()
            .any(|o| matches!(o, Obs::Drop { .. } | Obs::Accepted(_)))
    }
}

#[derive(Default)]
pub(crate) struct Journeys {
    open: FxHashMap<u64, Open>,
    /// The open journeys by start time: the oldest, for eviction and the output's watermark,
    /// without a scan of all of them for every packet.
    by_t0: BTreeSet<(u64, u64)>,
    next_seq: u64,
    /// Ids of journeys finished recently and not begun again, with the `seq` of the journey
    /// that finished: late events for them are not orphans.
    finished: FxHashMap<u64, u64>,
    finished_order: VecDeque<(u64, u64)>,
    /// Those of them the filter left out (the kernel's set is wider than the filter): nothing
    /// more is said about them.
    hidden: FxHashSet<u64>,
}

impl Journeys {
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn finished_len(&self) -> (usize, usize) {
        (self.finished.len(), self.finished_order.len())
    }

    pub fn get(&self, id: u64) -> Option<&Open> {
        self.open.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Open> {
        self.open.get_mut(&id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.open.contains_key(&id)
    }

    pub fn values(&self) -> impl Iterator<Item = &Open> {
        self.open.values()
    }

    /// Begins journey `id` at `t0`, with its packet and the packet's parsed headers. A journey
    /// that finished with the same id is over: events naming the id are this one's from now on.
    pub fn begin(
        &mut self,
        id: u64,
        t0: u64,
        cpu: u16,
        pkt: Option<PacketRx>,
        headers: Option<Headers>,
    ) -> &mut Open {
        self.next_seq += 1;
        self.finished.remove(&id);
        self.hidden.remove(&id);
        self.by_t0.insert((t0, id));
        let o = Open::new(self.next_seq, id, t0, cpu, pkt, headers);
        self.open.entry(id).insert_entry(o).into_mut()
    }

    /// The device-receive event of a journey begun by events that named its packet: the
    /// journey starts when the packet came.
    pub fn packet_came(&mut self, id: u64, p: PacketRx, headers: Option<Headers>) {
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        self.by_t0.remove(&(o.t0, id));
        o.t0 = p.meta.ts_ns;
        self.by_t0.insert((o.t0, id));
        o.cpu = p.meta.cpu;
        // It was marked for its lost device-receive event; losses are checked when it
        // finishes.
        o.lost = false;
        o.headers = headers;
        o.pkt = Some(p);
    }

    /// Takes journey `id` out of those in flight, to be finished.
    pub fn remove(&mut self, id: u64) -> Option<Open> {
        let o = self.open.remove(&id)?;
        self.by_t0.remove(&(o.t0, id));
        Some(o)
    }

    /// Remembers that journey `id` (its `seq`) finished, so that late events naming it are
    /// recognised.
    pub fn finished(&mut self, id: u64, seq: u64) {
        self.remember(id, seq);
    }

    /// Remembers that journey `id` was left out by the filter (its packet, or the journey as
    /// it finished, is not one the user asked about): its later events are not orphans, and
    /// nothing more is said about it.
    pub fn left_out(&mut self, id: u64, seq: u64) {
        self.remember(id, seq);
        self.hidden.insert(id);
    }

    /// Whether `id` was left out by the filter.
    pub fn is_hidden(&self, id: u64) -> bool {
        self.hidden.contains(&id)
    }

    fn remember(&mut self, id: u64, seq: u64) {
        self.finished.insert(id, seq);
        self.finished_order.push_back((id, seq));
        while self.finished_order.len() > FINISHED_MEMORY {
            if let Some((old, seq)) = self.finished_order.pop_front() {
                // Unless the id finished again since, and that is remembered.
                if self.finished.get(&old) == Some(&seq) {
                    self.finished.remove(&old);
                    self.hidden.remove(&old);
                }
            }
        }
    }

    /// Whether `id` is a journey that finished recently and was not begun again.
    pub fn was_finished(&self, id: u64) -> bool {
        self.finished.contains_key(&id)
    }

    /// The journey that started first: (start, id).
    pub fn oldest(&self) -> Option<(u64, u64)> {
        self.by_t0.first().copied()
    }

    /// Ids of the open journeys, the earliest started first.
    pub fn ids_by_start(&self) -> Vec<u64> {
        self.by_t0.iter().map(|&(_, id)| id).collect()
    }

    /// Open journeys that started at or before `ts`, newest first, at most `window` of them:
    /// the candidates for an event that names no journey. Walking the start-time index keeps
    /// this cheap when thousands are open (under a flood, events whose packet event was lost
    /// come for every packet; a scan of all open journeys for each made user space fall
    /// further behind).
    pub fn latest_before(&self, ts: u64, window: usize) -> impl Iterator<Item = &Open> {
        self.by_t0
            .range(..=(ts, u64::MAX))
            .rev()
            .take(window)
            .filter_map(|(_, id)| self.open.get(id))
    }

    /// Open journeys that started from `from` to `until`, both included, earliest first.
    pub fn started_within(&self, from: u64, until: u64) -> impl Iterator<Item = &Open> {
        self.by_t0
            .range((from, 0)..=(until, u64::MAX))
            .filter_map(|(_, id)| self.open.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_begun_again_is_no_longer_finished() {
        let mut j = Journeys::default();
        j.begin(5, 10, 0, None, None);
        let first = j.remove(5).unwrap();
        j.finished(first.kernel_id, first.seq);
        assert!(j.was_finished(5));
        j.begin(5, 20, 0, None, None);
        assert!(!j.was_finished(5), "events naming 5 are the new journey's");
        let second = j.remove(5).unwrap();
        j.finished(second.kernel_id, second.seq);
        assert!(j.was_finished(5));
        // The first finish is forgotten; the second is still remembered.
        for id in 100..100 + FINISHED_MEMORY as u64 - 1 {
            j.begin(id, 30, 0, None, None);
            let o = j.remove(id).unwrap();
            j.finished(o.kernel_id, o.seq);
        }
        assert_eq!(j.finished_len().1, FINISHED_MEMORY);
        assert!(j.was_finished(5));
        assert!(j.was_finished(100));
    }

    #[test]
    fn the_start_index_follows_a_packet_that_came_late() {
        let mut j = Journeys::default();
        j.begin(1, 50, 0, None, None);
        j.begin(2, 40, 0, None, None);
        assert_eq!(j.oldest(), Some((40, 2)));
        let mut p = crate::decode::PacketRx {
            meta: crate::decode::Meta {
                ts_ns: 30,
                cpu: 1,
                net_rx: true,
                pid: 0,
                tid: 0,
                journey: 1,
            },
            skb: 0,
            len: 0,
            wire_len: 0,
            ifindex: 1,
            netns: 1,
            ifname: "lo".into(),
            mac_len: 14,
            ethertype: 0x0800,
            data: Vec::new(),
            sampled_out: false,
        };
        p.data = crate::packet::fixture::tcp4(1, 2, 3, None, "S", &[]);
        let headers = Headers::parse(p.ethertype, p.mac_len as usize, &p.data).ok();
        j.packet_came(1, p, headers);
        assert_eq!(j.oldest(), Some((30, 1)));
        assert_eq!(j.ids_by_start(), vec![1, 2]);
        let o = j.get(1).unwrap();
        assert!(!o.lost && o.headers.is_some() && o.cpu == 1);
        assert_eq!(j.remove(1).map(|o| o.t0), Some(30));
        assert_eq!(j.ids_by_start(), vec![2]);
    }
}
