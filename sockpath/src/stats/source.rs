//! Where `sockpath stats` reads the kernel's counters: programs of its own (as root), or a
//! running daemon that counts the same ports for it (`count`, then a `reading` each interval).
//! Either way a reading is the raw counters since the start, so the table and the JSON are
//! made the same way.

use std::time::Instant;

use anyhow::{anyhow, bail};
use sockpath_ebpf::config::counter;

use crate::{
    api::{CountRequest, FilterSpec, Reply, Request},
    client::Daemon,
    counts::model::Totals,
    filter::{KernelSet, WatchFilter},
    kernel::{self, probes, Kernel, Mode},
};

/// What the start line tells.
pub struct Started {
    pub release: String,
    pub attach_ms: f64,
    pub hooks: Vec<String>,
    /// Stages with a hook attached.
    pub attached: usize,
    /// The kernel's name of each drop reason slot (`sockpath_ebpf::stats::drop_slot`).
    pub drop_reasons: Vec<String>,
}

/// The counters since the start.
pub struct Reading {
    pub totals: Totals,
    pub events_lost: u64,
    pub stats_full: u64,
}

pub enum Source {
    Own(Box<Kernel>),
    Daemon(Daemon),
}

impl Source {
    /// Loads and attaches programs that only count (as root).
    pub fn own(filter: &WatchFilter, started: Instant) -> anyhow::Result<(Self, Started)> {
        let facts = kernel::prepare()?;
        // The ring buffer carries nothing in this mode: the smallest the kernel takes.
        let kernel = Kernel::load_mode(
            &facts,
            &KernelSet::of([filter]),
            filter.snaplen,
            4096,
            Mode::STATS,
        )?;
        let names = facts.names.clone();
        drop(facts);
        crate::memory::release_free_memory();
        let s = Started {
            release: kernel::kernel_release(),
            attach_ms: started.elapsed().as_secs_f64() * 1e3,
            hooks: probes::describe(&kernel.stages),
            attached: kernel.stages.iter().filter(|s| s.chosen.is_some()).count(),
            drop_reasons: names.drop_reason_slots(),
        };
        Ok((Self::Own(Box::new(kernel)), s))
    }

    /// Asks `daemon` to count the filter's ports.
    pub async fn daemon(
        mut daemon: Daemon,
        filter: &WatchFilter,
        started: Instant,
    ) -> anyhow::Result<(Self, Started)> {
        daemon
            .send(&Request::Count(CountRequest {
                filter: FilterSpec::from(filter),
            }))
            .await?;
        let Reply::Counting {
            kernel: release,
            hooks,
            attached,
            drop_reasons,
            ..
        } = reply(&mut daemon).await?
        else {
            bail!("the daemon did not answer count with counting");
        };
        let s = Started {
            release,
            // What this run waited for: the daemon's programs may have been attached long
            // before.
            attach_ms: started.elapsed().as_secs_f64() * 1e3,
            hooks,
            attached,
            drop_reasons,
        };
        Ok((Self::Daemon(daemon), s))
    }

    pub async fn read(&mut self) -> anyhow::Result<Reading> {
        match self {
            Source::Own(kernel) => {
                let stats = kernel
                    .stats()
                    .ok_or_else(|| anyhow!("the programs were loaded without statistics"))?;
                Ok(Reading {
                    totals: stats.snapshot(),
                    events_lost: kernel.lost(),
                    stats_full: kernel.counter(counter::STATS_FULL),
                })
            }
            Source::Daemon(daemon) => {
                daemon.send(&Request::Reading).await?;
                let Reply::Reading {
                    events_lost,
                    stats_full,
                    totals,
                } = reply(daemon).await?
                else {
                    bail!("the daemon did not answer reading with a reading");
                };
                Ok(Reading {
                    totals: Totals::try_from(&totals)
                        .map_err(|e| anyhow!("the daemon's reading: {e}"))?,
                    events_lost,
                    stats_full,
                })
            }
        }
    }
}

/// The daemon's next reply; an error reply is this call's error, in the daemon's words.
async fn reply(daemon: &mut Daemon) -> anyhow::Result<Reply> {
    let line = daemon
        .line()
        .await?
        .ok_or_else(|| anyhow!("the sockpath daemon closed the connection (it stopped?)"))?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Error { error }) => Err(anyhow!("the sockpath daemon: {error}")),
        Ok(r) => Ok(r),
        Err(e) => Err(anyhow!(
            "the daemon sent a line this sockpath cannot read ({e}): {line}"
        )),
    }
}
