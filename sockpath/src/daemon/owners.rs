//! The owners of watched sockets for every watcher from one reading of /proc: the watchers
//! that need them in the same round of ticks share it (a walk of every process's fds, which
//! twenty watchers would otherwise each make).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    filter::WatchFilter,
    journey::model::Owner,
    kernel::Kernel,
    live::follow,
    pipeline::Owners,
    procfs::{self, Procs},
};

/// A reading this recent serves another watcher: every watcher ticks within one round of the
/// engine's loop (25 ms apart).
const FRESH: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct ProcCache {
    last: Option<(Instant, Procs)>,
}

impl ProcCache {
    fn get(&mut self) -> &Procs {
        if self.last.as_ref().is_some_and(|(t, _)| t.elapsed() > FRESH) {
            self.last = None;
        }
        &self
            .last
            .get_or_insert_with(|| (Instant::now(), procfs::read()))
            .1
    }
}

/// One watcher's view: what its filter watches in the shared reading.
pub struct SharedOwners<'a> {
    pub cache: &'a mut ProcCache,
    pub filter: &'a WatchFilter,
    pub kernel: &'a mut Kernel,
}

impl Owners for SharedOwners<'_> {
    fn scan(&mut self) -> HashMap<u64, Owner> {
        let scan = self.cache.get().select(self.filter);
        follow(self.kernel, scan)
    }
}
