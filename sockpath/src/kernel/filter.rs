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

/// One member of the set's hash maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    Addr(AddrKey),
    Iface([u8; 16]),
    Tgid(u32),
    Comm([u8; 16]),
}

fn members(s: &KernelSet) -> BTreeSet<Member> {
    let addrs = s.addrs.iter().map(|a| Member::Addr(*a));
    let ifaces = s.ifaces.iter().map(|i| Member::Iface(*i));
    let tgids = s.tgids.iter().map(|t| Member::Tgid(*t));
    let comms = s.comms.iter().map(|c| Member::Comm(*c));
    addrs.chain(ifaces).chain(tgids).chain(comms).collect()
}

/// Where the set is written: the kernel's maps (`KernelMaps`), or a test's memory.
pub trait FilterStore {
    fn port_word(&self, i: u32) -> anyhow::Result<u64>;
    fn set_port_word(&mut self, i: u32, word: u64) -> anyhow::Result<()>;
    fn set_config(&mut self, c: FilterConfig) -> anyhow::Result<()>;
    fn insert(&mut self, m: Member) -> anyhow::Result<()>;
    /// A member that is not there is no error.
    fn remove(&mut self, m: Member);
}

/// The set as written to a store, and the ports learned for owners.
pub struct FilterMaps<S> {
    store: S,
    /// What the store holds, as last written (the port words with what was learned).
    written: KernelSet,
    /// Ports learned for owners, by the kernel (found in the bitmap) or from /proc.
    learned: Vec<u64>,
}

impl<S: FilterStore> FilterMaps<S> {
    /// A store that watches nothing yet (the maps as loaded: all zero).
    pub fn new(store: S) -> Self {
        Self {
            store,
            written: KernelSet::nothing(),
            learned: vec![0; FILTER_PORT_WORDS as usize],
        }
    }

    /// Writes `set`, changing only what differs from what the store holds. Ports the kernel
    /// learned for owners stay while the set still asks to learn them (those of every owner
    /// learned since: the set is wider than any one filter anyway). Additions go first and
    /// removals last, so that a packet filtered meanwhile sees the wider of the two sets.
    pub fn set(&mut self, set: &KernelSet) -> anyhow::Result<()> {
        // What the bitmap holds now: what was written, and, while owners' ports are learned,
        // the kernel's own learning since (bits that were not written).
        let mut current = self.written.ports.clone();
        if self.written.learn_ports {
            for i in 0..FILTER_PORT_WORDS {
                let now = self.store.port_word(i).context("reading the port bitmap")?;
                self.learned[i as usize] |= now & !self.written.ports[i as usize];
                current[i as usize] = now;
            }
        }
        let mut want = set.clone();
        if want.learn_ports {
            for (w, l) in want.ports.iter_mut().zip(&self.learned) {
                *w |= l;
            }
        } else {
            // No owner left to learn for: what was learned goes with them.
            self.learned.fill(0);
        }
        let (had, wanted) = (members(&self.written), members(&want));
        for m in wanted.difference(&had) {
            self.store
                .insert(*m)
                .with_context(|| format!("adding {m:?} to the watched set"))?;
        }
        for (i, (new, old)) in want.ports.iter().zip(&current).enumerate() {
            if new != old {
                self.store
                    .set_port_word(i as u32, *new)
                    .context("writing the port bitmap")?;
            }
        }
        self.store
            .set_config(want.config())
            .context("writing the filter flags")?;
        for m in had.difference(&wanted) {
            self.store.remove(*m);
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
            let now = self.store.port_word(i).context("reading the port bitmap")?;
            self.store
                .set_port_word(i, now | bit)
                .context("writing the port bitmap")?;
            self.written.set_port(p);
            self.learned[i as usize] |= bit;
        }
        Ok(())
    }
}

/// The loaded object's `FILTER*` maps.
pub struct KernelMaps {
    config: Array<MapData, FilterConfig>,
    ports: Array<MapData, u64>,
    addrs: BpfHashMap<MapData, AddrKey, u8>,
    ifaces: BpfHashMap<MapData, [u8; 16], u8>,
    tgids: BpfHashMap<MapData, u32, u8>,
    comms: BpfHashMap<MapData, [u8; 16], u8>,
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

impl KernelMaps {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self {
            config: take(ebpf, MAP_FILTER)?,
            ports: take(ebpf, MAP_FILTER_PORTS)?,
            addrs: take(ebpf, MAP_FILTER_ADDRS)?,
            ifaces: take(ebpf, MAP_FILTER_IFACES)?,
            tgids: take(ebpf, MAP_FILTER_TGIDS)?,
            comms: take(ebpf, MAP_FILTER_COMMS)?,
        })
    }
}

impl FilterStore for KernelMaps {
    fn port_word(&self, i: u32) -> anyhow::Result<u64> {
        Ok(self.ports.get(&i, 0)?)
    }

    fn set_port_word(&mut self, i: u32, word: u64) -> anyhow::Result<()> {
        Ok(self.ports.set(i, word, 0)?)
    }

    fn set_config(&mut self, c: FilterConfig) -> anyhow::Result<()> {
        Ok(self.config.set(0, c, 0)?)
    }

    fn insert(&mut self, m: Member) -> anyhow::Result<()> {
        match m {
            Member::Addr(k) => self.addrs.insert(k, 1, 0)?,
            Member::Iface(k) => self.ifaces.insert(k, 1, 0)?,
            Member::Tgid(k) => self.tgids.insert(k, 1, 0)?,
            Member::Comm(k) => self.comms.insert(k, 1, 0)?,
        }
        Ok(())
    }

    fn remove(&mut self, m: Member) {
        let _ = match m {
            Member::Addr(k) => self.addrs.remove(&k),
            Member::Iface(k) => self.ifaces.remove(&k),
            Member::Tgid(k) => self.tgids.remove(&k),
            Member::Comm(k) => self.comms.remove(&k),
        };
    }
}

#[cfg(test)]
mod tests;
