//! What every live session shares, standalone `watch` and the daemon alike: the schedule on
//! which the ring buffer is drained and journeys are finished, following the processes that own
//! watched sockets, and handing memory back to the system.

use std::{collections::HashMap, time::Duration};

use crate::{journey::model::Owner, kernel::Kernel, procfs};

/// The ring buffer's size unless --ring-kib says otherwise: the 16 MiB default holds about
/// half a second of the heaviest load measured.
pub const DEFAULT_RING_KIB: u32 = 16384;
/// How often journeys that are due are finished and the output is written.
pub const TICK: Duration = Duration::from_millis(25);
/// Ring records handled before the other work of the loop gets a turn: about 10 ms of work at
/// the speed measured, so journeys are finished and written out on time under a flood.
pub const BATCH: usize = 4096;
/// How often the ring buffer is drained: the 16 MiB default holds about half a second of the
/// heaviest load measured.
pub const DRAIN: Duration = Duration::from_millis(10);

/// Has the kernel follow the processes a scan found and watch their ports; returns who holds
/// which socket.
pub fn follow(kernel: &mut Kernel, scan: procfs::Scan) -> HashMap<u64, Owner> {
    for pid in &scan.watched_pids {
        kernel.watch_tgid(*pid);
    }
    if let Err(e) = kernel.learn_ports(scan.owner_ports) {
        tracing::warn!("could not add the watched processes' ports to the filter: {e:#}");
    }
    scan.owners
}
