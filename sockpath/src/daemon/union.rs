//! The kernel's set for every watcher and the metrics ports: the union of their filters
//! (`KernelSet::of`), written before the programs attach and rewritten in place as watchers
//! come and go (`Kernel::set_filter`). Each watcher's own filter, checked as the command line
//! checks it, is what its assembler keeps.

use crate::{
    daemon::api::FilterSpec,
    filter::{parse_port_range, KernelSet, PortRange, PortSet, Proto, WatchFilter},
    kernel::{facts::KernelFacts, Kernel},
    watch::FilterArgs,
};

/// Loads and attaches the programs, watching what `filters` watch.
pub fn load(
    facts: &KernelFacts,
    filters: &[&WatchFilter],
    snaplen: u32,
    ring_bytes: u32,
) -> anyhow::Result<Kernel> {
    Kernel::load(
        facts,
        &KernelSet::of(filters.iter().copied()),
        snaplen,
        ring_bytes,
    )
}

/// Watches what `filters` watch from now on.
pub fn set(kernel: &mut Kernel, filters: &[&WatchFilter]) -> anyhow::Result<()> {
    kernel.set_filter(&KernelSet::of(filters.iter().copied()))
}

/// A watcher's filter from its request, with the command line's checks and messages.
pub fn filter_of(spec: &FilterSpec, snaplen: u32) -> Result<WatchFilter, String> {
    let ports = spec
        .ports
        .iter()
        .map(|p| {
            parse_port_range(p).map_err(|e| {
                if e.contains(p.as_str()) {
                    e
                } else {
                    format!("port {p:?}: {e}")
                }
            })
        })
        .collect::<Result<Vec<PortRange>, String>>()?;
    let proto = match spec.proto.as_deref() {
        None => None,
        Some("tcp") => Some(Proto::Tcp),
        Some("udp") => Some(Proto::Udp),
        Some(p) => return Err(format!("proto {p:?}: tcp or udp")),
    };
    if spec.pids.contains(&0) {
        return Err("pid 0: pids are 1 or more".into());
    }
    FilterArgs {
        ports,
        addr: spec.addr,
        proto,
        iface: spec.iface.clone(),
        pids: spec.pids.clone(),
        comms: spec.comms.clone(),
    }
    .filter(snaplen)
    .map_err(|e| e.0)
}

/// Every packet to or from one of `ports` (the metrics ports).
pub fn ports(ports: &[PortRange], snaplen: u32) -> WatchFilter {
    WatchFilter {
        ports: PortSet::new(ports.iter().copied()),
        snaplen,
        ..WatchFilter::default()
    }
}

impl From<&WatchFilter> for FilterSpec {
    fn from(f: &WatchFilter) -> Self {
        FilterSpec {
            ports: f.ports.ranges().iter().map(PortRange::to_string).collect(),
            addr: f.addr,
            proto: f.proto.map(|p| format!("{p:?}").to_lowercase()),
            iface: f.iface.clone(),
            pids: f.owners.pids.iter().copied().collect(),
            comms: f.owners.comms.iter().cloned().collect(),
        }
    }
}
