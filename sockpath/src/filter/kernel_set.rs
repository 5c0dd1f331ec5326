//! The set the kernel filters with: the union of the filters of every client, in the form of
//! the eBPF programs' `FILTER*` maps. A superset of what each client asked for (the union is
//! taken dimension by dimension, and owners' ports are learned as they appear); user space
//! applies each client's exact filter to what it prints.

use std::collections::BTreeSet;

use sockpath_ebpf::{
    config::{
        proto_bit, FilterConfig, FILTER_ACTIVE, FILTER_ADDR_V4, FILTER_ADDR_V6, FILTER_ANY_ADDR,
        FILTER_ANY_IFACE, FILTER_ANY_PORT, FILTER_ANY_PROTO, FILTER_COMMS, FILTER_LEARN_PORTS,
        FILTER_OWNERS, FILTER_PORT_WORDS,
    },
    net::{is_v4_mapped, AddrKey},
};

use super::{addr_key, WatchFilter, COMM_MAX};

/// A name (interface, comm) as the kernel holds it: NUL-padded to 16 bytes.
pub fn name_key(name: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    let b = name.as_bytes();
    let n = b.len().min(15);
    k[..n].copy_from_slice(&b[..n]);
    k
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSet {
    /// Anything is watched at all.
    pub active: bool,
    pub any_port: bool,
    /// One bit per port (`FILTER_PORT_WORDS` words); bit 0 (no port) is never set.
    pub ports: Vec<u64>,
    /// The kernel adds the local ports of owners' sockets to `ports` itself.
    pub learn_ports: bool,
    pub any_proto: bool,
    /// `PROTO_*` bits.
    pub protos: u32,
    pub any_addr: bool,
    pub addrs: BTreeSet<AddrKey>,
    pub any_iface: bool,
    pub ifaces: BTreeSet<[u8; 16]>,
    pub tgids: BTreeSet<u32>,
    pub comms: BTreeSet<[u8; 16]>,
}

impl Default for KernelSet {
    fn default() -> Self {
        Self::nothing()
    }
}

impl KernelSet {
    /// Watches nothing (no client).
    pub fn nothing() -> Self {
        Self {
            active: false,
            any_port: false,
            ports: vec![0; FILTER_PORT_WORDS as usize],
            learn_ports: false,
            any_proto: false,
            protos: 0,
            any_addr: false,
            addrs: BTreeSet::new(),
            any_iface: false,
            ifaces: BTreeSet::new(),
            tgids: BTreeSet::new(),
            comms: BTreeSet::new(),
        }
    }

    /// The union of `filters`.
    pub fn of<'a>(filters: impl IntoIterator<Item = &'a WatchFilter>) -> Self {
        let mut s = Self::nothing();
        for f in filters {
            s.add(f);
        }
        s
    }

    /// Widens the set to watch what `f` watches too.
    pub fn add(&mut self, f: &WatchFilter) {
        self.active = true;
        if f.ports.is_empty() {
            // Owners alone: their sockets' ports, learned as they appear.
            if f.owners.is_empty() {
                self.any_port = true;
            } else {
                self.learn_ports = true;
            }
        }
        for r in f.ports.ranges() {
            for p in r.ports() {
                self.set_port(p);
            }
        }
        match f.proto {
            Some(p) => self.protos |= proto_bit(p.number()),
            None => self.any_proto = true,
        }
        match f.addr {
            Some(a) => {
                self.addrs.insert(addr_key(a));
            }
            None => self.any_addr = true,
        }
        match &f.iface {
            Some(i) => {
                self.ifaces.insert(name_key(i));
            }
            None => self.any_iface = true,
        }
        self.tgids.extend(f.owners.pids.iter().copied());
        self.comms.extend(
            f.owners
                .comms
                .iter()
                .map(|c| name_key(&c[..c.len().min(COMM_MAX)])),
        );
    }

    pub fn set_port(&mut self, port: u16) {
        if port != 0 {
            self.ports[(port >> 6) as usize] |= 1 << (port & 63);
        }
    }

    pub fn has_port(&self, port: u16) -> bool {
        self.ports[(port >> 6) as usize] & (1 << (port & 63)) != 0
    }

    /// The entry of the `FILTER` map.
    pub fn config(&self) -> FilterConfig {
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        let v4 = self.addrs.iter().any(is_v4_mapped);
        let v6 = self.addrs.iter().any(|a| !is_v4_mapped(a));
        FilterConfig {
            flags: flag(self.active, FILTER_ACTIVE)
                | flag(self.any_port, FILTER_ANY_PORT)
                | flag(self.any_proto, FILTER_ANY_PROTO)
                | flag(self.any_addr, FILTER_ANY_ADDR)
                | flag(v4, FILTER_ADDR_V4)
                | flag(v6, FILTER_ADDR_V6)
                | flag(self.any_iface, FILTER_ANY_IFACE)
                | flag(
                    !self.tgids.is_empty() || !self.comms.is_empty(),
                    FILTER_OWNERS,
                )
                | flag(!self.comms.is_empty(), FILTER_COMMS)
                | flag(self.learn_ports, FILTER_LEARN_PORTS),
            protos: self.protos,
        }
    }
}
