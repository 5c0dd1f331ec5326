//! Finishing journeys: when each is due, and turning an open journey into the journey the
//! output shows.

use super::{
    build, model,
    model::{Item, Journey, Owner},
    obs::Obs,
    open::Open,
    Assembler,
};

/// Sockets not seen for this long are forgotten (unless a process still holds them).
const SOCKET_MEMORY_NS: u64 = 60_000_000_000;

impl Assembler {
    /// Finishes the journeys that are due at monotonic time `now`: the time up to which every
    /// event from the kernel has been read (the clock when the ring was last found empty, else
    /// the newest event read), not the wall clock, which under a flood runs ahead of what
    /// has been read.
    pub fn tick(&mut self, now: u64) {
        self.ticked = self.ticked.max(now);
        let due: Vec<u64> = self
            .journeys
            .values()
            .filter(|o| {
                let quiet = now.saturating_sub(o.last) >= self.cfg.settle_ns;
                let waited = now.saturating_sub(o.t0) >= self.cfg.hold_ns;
                quiet && (!o.awaiting || o.terminal() || waited)
            })
            .map(|o| o.kernel_id)
            .collect();
        for id in due {
            if let Some(o) = self.journeys.remove(id) {
                self.finalize(o);
            }
        }
        for item in self.syscalls.tick(now, self.cfg.settle_ns, &self.clock) {
            self.ready.push(item);
        }
        self.sockets.expire(now, SOCKET_MEMORY_NS);
        let journeys = &self.journeys;
        self.reads.keep_backlog(|id| journeys.contains(id));
    }

    /// Finishes everything (at exit).
    pub fn finish(&mut self) {
        self.ticked = u64::MAX;
        for id in self.journeys.ids_by_start() {
            if let Some(o) = self.journeys.remove(id) {
                self.finalize(o);
            }
        }
        for item in self.syscalls.tick(u64::MAX, 0, &self.clock) {
            self.ready.push(item);
        }
    }

    /// Finishes the oldest journey to make room for another (memory bound).
    pub(super) fn evict_oldest(&mut self) {
        let Some((_, oldest)) = self.journeys.oldest() else {
            return;
        };
        if let Some(mut o) = self.journeys.remove(oldest) {
            // One that has all it waits for was only settling: it ends as it is.
            if o.awaiting && !o.terminal() {
                o.evicted = true;
                self.summary.evicted += 1;
            }
            self.finalize(o);
        }
    }

    /// `o`, taken out of the journeys in flight, is finished: built and made ready.
    pub(super) fn finalize(&mut self, mut o: Open) {
        o.lost = o.lost || self.lived_through_loss(&o);
        self.reads.forget(o.kernel_id, &o.waits_on);
        let (id, seq, t0) = (o.kernel_id, o.seq, o.t0);
        let related = if self.cfg.filter.owners.is_empty() {
            Vec::new()
        } else {
            self.related_owners(&o)
        };
        let mut j = build::journey(o, &self.sockets, &self.names, &self.clock, &self.cfg.hooks);
        j.sampled_one_in = self.cfg.sample_one_in;
        if !self.cfg.filter.any_owner_matches(owners_of(&j, &related)) {
            self.journeys.left_out(id, seq);
            return;
        }
        self.journeys.finished(id, seq);
        self.syns.note(&mut j, t0);
        self.summary.journeys += 1;
        if j.sampled_out {
            self.summary.sampled.get_or_insert_default().told_at_end += 1;
        }
        if j.complete {
            self.summary.complete += 1;
        } else {
            self.summary.incomplete += 1;
        }
        if j.outcome.kind == model::OutcomeKind::Dropped {
            self.summary.dropped += 1;
        }
        if j.outcome.reset_sent {
            self.summary.resets_sent += 1;
        }
        self.ready.push(Item::Journey(Box::new(j)));
    }

    /// The processes a journey concerns besides the holder of the socket it reached and its
    /// reader (for an owner filter): the holders of every socket it reached when it came, or
    /// their last holder if it had closed its end (the kernel finishing the connection for
    /// it), the listener's holder for a connection in its accept queue, and the process whose
    /// connect() it answered.
    fn related_owners(&self, o: &Open) -> Vec<Owner> {
        let mut v = Vec::new();
        for ob in &o.obs {
            let sock = match ob {
                Obs::TcpRcv { sock, .. }
                | Obs::State { sock, .. }
                | Obs::DataReady { sock, .. }
                | Obs::ReceiveReset { sock, .. }
                | Obs::SynAck { listener: sock, .. }
                | Obs::Lookup {
                    found: Some(sock), ..
                } => sock,
                Obs::Connected { r, .. }
                | Obs::Read(r)
                | Obs::Eof(r)
                | Obs::Accepted(r)
                | Obs::ReadFailed { r, .. } => {
                    v.push(Owner {
                        pid: r.pid,
                        comm: r.comm.as_str().into(),
                        fd: r.fd.unwrap_or(-1),
                    });
                    continue;
                }
                _ => continue,
            };
            v.extend(self.sockets.holder_or_last_at(sock, o.t0));
        }
        v
    }
}

/// The processes a finished journey concerns: the one holding the socket it reached, the one
/// that read or accepted it, and the `related` ones the assembler found (the holders of the
/// other sockets it reached, a listener's for a connection still in its accept queue, which has
/// no file yet). A packet that reached no socket concerns none.
fn owners_of<'a>(j: &'a Journey, related: &'a [Owner]) -> impl Iterator<Item = (u32, &'a str)> {
    let holder = j
        .socket
        .as_ref()
        .and_then(|s| s.owner.as_ref())
        .map(|o| (o.pid, &*o.comm));
    let taker = j
        .outcome
        .pid
        .map(|pid| (pid, j.outcome.comm.as_deref().unwrap_or("")));
    holder
        .into_iter()
        .chain(taker)
        .chain(related.iter().map(|o| (o.pid, &*o.comm)))
}

#[cfg(test)]
mod tests;
