//! The kernel's per-port statistics (`sockpath_ebpf::stats`), summed over CPUs.

use anyhow::anyhow;
use aya::{
    maps::{MapData, PerCpuHashMap},
    Ebpf,
};
use sockpath_ebpf::stats::{PortStats, MAP_STATS};

use crate::counts::model::Totals;

/// The statistics map, and what it held at the last `take`.
pub struct KernelStats {
    map: PerCpuHashMap<MapData, u32, PortStats>,
    last: Totals,
}

impl KernelStats {
    /// Takes the map out of the loaded object.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let map = ebpf
            .take_map(MAP_STATS)
            .ok_or_else(|| anyhow!("map {MAP_STATS} missing"))?;
        Ok(Self {
            map: PerCpuHashMap::try_from(map)?,
            last: Totals::default(),
        })
    }

    /// Everything counted since the programs were loaded, per port, summed over CPUs.
    pub fn snapshot(&self) -> Totals {
        let mut t = Totals::default();
        for entry in self.map.iter() {
            let Ok((key, per_cpu)) = entry else {
                continue;
            };
            let port = t.ports.entry(key).or_default();
            for v in per_cpu.iter() {
                crate::counts::model::add(port, v);
            }
        }
        t
    }

    /// What was counted since the last `take` (since load, the first time), and the totals.
    pub fn take(&mut self) -> (Totals, Totals) {
        let now = self.snapshot();
        let delta = now.since(&self.last);
        self.last = now.clone();
        (delta, now)
    }
}
