//! `sockpath stats` through the daemon: each client's ports join the kernel's set while its
//! connection lasts, and each reading is the raw counters of those ports since it joined. The
//! kernel counts per port (and protocol), whoever asked, so a reading is what the daemon
//! counted on the client's ports: a narrower filter of the client's own (an address, an
//! interface) does not narrow it, and owners (which select sockets, not ports) are refused.

use sockpath_ebpf::{config::counter, stats::key_parts};

use super::Engine;
use crate::{
    api::{CountRequest, Reply},
    counts::{model::Totals, wire::WireTotals},
    daemon::{access::Peer, union},
    filter::WatchFilter,
};

pub(super) struct Counter {
    pub(super) peer: Peer,
    pub(super) filter: WatchFilter,
    /// The counters of the client's ports when it joined.
    base: Totals,
    lost: u64,
    full: u64,
}

/// The ports and protocols of `t` that `f` names (every port when it names none).
fn select(t: &Totals, f: &WatchFilter) -> Totals {
    let ports = t
        .ports
        .iter()
        .filter(|(k, _)| {
            let (port, proto, _) = key_parts(**k);
            (f.ports.is_empty() || f.ports.contains(port))
                && f.proto.is_none_or(|p| p.number() == proto)
        })
        .map(|(k, v)| (*k, *v))
        .collect();
    Totals { ports }
}

impl Engine {
    /// Starts counting for client `id`; the reply is the `counting` line.
    pub(super) fn count(
        &mut self,
        id: u64,
        peer: Peer,
        request: &CountRequest,
    ) -> Result<Vec<u8>, String> {
        let filter = union::filter_of(&request.filter, self.cfg.snaplen)?;
        if !filter.owners.is_empty() {
            return Err(
                "through the daemon sockpath stats counts by port: --pid and --comm need --standalone (as root)"
                    .into(),
            );
        }
        if self.counters.contains_key(&id) {
            return Err("this connection counts already".into());
        }
        self.attach().map_err(|e| format!("{e:#}"))?;
        self.counters.insert(
            id,
            Counter {
                peer,
                filter: filter.clone(),
                base: Totals::default(),
                lost: 0,
                full: 0,
            },
        );
        self.set_union();
        let Some(live) = self.live.as_ref() else {
            return Err("the programs are not attached".into());
        };
        let Some(stats) = live.kernel.stats() else {
            return Err("the programs were loaded without statistics".into());
        };
        let base = select(&stats.snapshot(), &filter);
        let (lost, full) = (live.kernel.lost(), live.kernel.counter(counter::STATS_FULL));
        if let Some(c) = self.counters.get_mut(&id) {
            (c.base, c.lost, c.full) = (base, lost, full);
        }
        tracing::info!("client {id} ({peer}) counts {}", filter.describe());
        Ok(Reply::Counting {
            kernel: live.release.clone(),
            attach_ms: live.attach_ms,
            hooks: live.described.clone(),
            attached: live
                .kernel
                .stages
                .iter()
                .filter(|s| s.chosen.is_some())
                .count(),
            drop_reasons: live.names.drop_reason_slots(),
        }
        .line())
    }

    /// Client `id`'s counters since it joined.
    pub(super) fn reading(&self, id: u64) -> Result<Vec<u8>, String> {
        let c = self
            .counters
            .get(&id)
            .ok_or("nothing to read: this connection does not count (ask count first)")?;
        let Some(live) = self.live.as_ref() else {
            return Err("the programs are not attached".into());
        };
        let Some(stats) = live.kernel.stats() else {
            return Err("the programs were loaded without statistics".into());
        };
        let now = select(&stats.snapshot(), &c.filter);
        Ok(Reply::Reading {
            events_lost: live.kernel.lost().saturating_sub(c.lost),
            stats_full: live
                .kernel
                .counter(counter::STATS_FULL)
                .saturating_sub(c.full),
            totals: WireTotals::from(&now.since(&c.base)),
        }
        .line())
    }

    /// Client `id` is gone: its ports leave the kernel's set.
    pub(super) fn uncount(&mut self, id: u64) {
        if let Some(c) = self.counters.remove(&id) {
            tracing::info!("client {id} ({}) stopped counting", c.peer);
            self.narrow();
        }
    }
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::stats::{outcome, port_key, PortStats};

    use super::*;
    use crate::filter::{PortRange, PortSet, Proto};

    #[test]
    fn a_reading_holds_the_named_ports_and_protocol_only() {
        let mut t = Totals::default();
        for key in [
            port_key(53, 17, false),
            port_key(53, 6, false),
            port_key(53, 17, true),
            port_key(8080, 6, false),
        ] {
            let mut p = PortStats::default();
            p.counts[outcome::MATCHED] = u64::from(key_parts(key).0);
            t.ports.insert(key, p);
        }
        let keys = |f: &WatchFilter| select(&t, f).ports.into_keys().collect::<Vec<_>>();
        let mut f = WatchFilter {
            ports: PortSet::new([PortRange {
                first: 50,
                last: 60,
            }]),
            ..WatchFilter::default()
        };
        assert_eq!(
            keys(&f),
            [
                port_key(53, 6, false),
                port_key(53, 17, false),
                port_key(53, 17, true)
            ]
        );
        f.proto = Some(Proto::Udp);
        assert_eq!(keys(&f), [port_key(53, 17, false), port_key(53, 17, true)]);
        assert_eq!(keys(&WatchFilter::default()).len(), 4);
    }
}
