//! The watched set in the eBPF programs' `FILTER*` maps, rewritten at run time: a port bitmap,
//! flags and protocols, and hash sets of addresses, interfaces, owner tgids and comms.

use std::collections::BTreeSet;

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData},
    Ebpf,
};
use sockpath_ebpf::{
    config::{
        FilterConfig, FILTER_PORT_WORDS, MAP_FILTER, MAP_FILTER_ADDRS, MAP_FILTER_COMMS,
        MAP_FILTER_IFACES, MAP_FILTER_PORTS, MAP_FILTER_TGIDS,
    },
    net::AddrKey,
};

use crate::filter::KernelSet;

pub struct FilterMaps {
    config: Array<MapData, FilterConfig>,
    ports: Array<MapData, u64>,
    addrs: BpfHashMap<MapData, AddrKey, u8>,
    ifaces: BpfHashMap<MapData, [u8; 16], u8>,
    tgids: BpfHashMap<MapData, u32, u8>,
    comms: BpfHashMap<MapData, [u8; 16], u8>,
    /// What the maps hold, as last written (the port words with what was learned).
    written: KernelSet,
    /// Ports learned for owners, by the kernel (found in the bitmap) or from /proc.
    learned: Vec<u64>,
}

fn take<T>(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}

/// Makes `map` hold exactly `want`, given that it holds `had`: additions first, so that a packet
/// filtered meanwhile sees the wider of the two sets.
fn sync_set<K: aya::Pod + Ord>(
    map: &mut BpfHashMap<MapData, K, u8>,
    had: &BTreeSet<K>,
    want: &BTreeSet<K>,
    what: &str,
) -> anyhow::Result<Vec<K>> {
    for k in want.difference(had) {
        map.insert(k, 1, 0)
            .with_context(|| format!("adding to the watched {what}"))?;
    }
    Ok(had.difference(want).copied().collect())
}

impl FilterMaps {
    /// Takes the maps from the loaded object; they watch nothing until `set`.
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            config: take(ebpf, MAP_FILTER)?,
            ports: take(ebpf, MAP_FILTER_PORTS)?,
            addrs: take(ebpf, MAP_FILTER_ADDRS)?,
            ifaces: take(ebpf, MAP_FILTER_IFACES)?,
            tgids: take(ebpf, MAP_FILTER_TGIDS)?,
            comms: take(ebpf, MAP_FILTER_COMMS)?,
            written: KernelSet::nothing(),
            learned: vec![0; FILTER_PORT_WORDS as usize],
        })
    }

    /// Writes `set` into the maps, changing only what differs from what they hold. Ports the
    /// kernel learned for owners stay while the set still asks to learn them.
    pub fn set(&mut self, set: &KernelSet) -> anyhow::Result<()> {
        if self.written.learn_ports {
            // Bits in the map that were not written are the kernel's own learning.
            for i in 0..FILTER_PORT_WORDS {
                let now = self.ports.get(&i, 0).context("reading the port bitmap")?;
                self.learned[i as usize] |= now & !self.written.ports[i as usize];
            }
        }
        let mut want = set.clone();
        if want.learn_ports {
            for (w, l) in want.ports.iter_mut().zip(&self.learned) {
                *w |= l;
            }
        }
        let stale_addrs = sync_set(
            &mut self.addrs,
            &self.written.addrs,
            &want.addrs,
            "addresses",
        )?;
        let stale_ifaces = sync_set(
            &mut self.ifaces,
            &self.written.ifaces,
            &want.ifaces,
            "interfaces",
        )?;
        let stale_tgids = sync_set(
            &mut self.tgids,
            &self.written.tgids,
            &want.tgids,
            "processes",
        )?;
        let stale_comms = sync_set(
            &mut self.comms,
            &self.written.comms,
            &want.comms,
            "process names",
        )?;
        for (i, (new, old)) in want.ports.iter().zip(&self.written.ports).enumerate() {
            if new != old {
                self.ports
                    .set(i as u32, new, 0)
                    .context("writing the port bitmap")?;
            }
        }
        self.config
            .set(0, want.config(), 0)
            .context("writing the filter flags")?;
        // Removals last (a missing key is no error: it was not there to remove).
        for k in stale_addrs {
            let _ = self.addrs.remove(&k);
        }
        for k in stale_ifaces {
            let _ = self.ifaces.remove(&k);
        }
        for k in stale_tgids {
            let _ = self.tgids.remove(&k);
        }
        for k in stale_comms {
            let _ = self.comms.remove(&k);
        }
        self.written = want;
        Ok(())
    }

    /// Adds owners' ports found elsewhere (/proc) to what the kernel learned, if the set learns
    /// ports. Each word is read first: the kernel may have set bits in it since.
    pub fn learn_ports(&mut self, ports: impl IntoIterator<Item = u16>) -> anyhow::Result<()> {
        if !self.written.learn_ports {
            return Ok(());
        }
        for p in ports {
            if p == 0 || self.written.has_port(p) {
                continue;
            }
            let i = (p >> 6) as u32;
            let bit = 1u64 << (p & 63);
            let now = self.ports.get(&i, 0).context("reading the port bitmap")?;
            self.ports
                .set(i, now | bit, 0)
                .context("writing the port bitmap")?;
            self.written.set_port(p);
            self.learned[i as usize] |= bit;
        }
        Ok(())
    }
}
