//! The kernel's set for every watcher and the metrics ports.
//!
//! TEMPORARY (until the runtime filter set lands): main's kernel filter is one load-time
//! filter, so the daemon loads programs that watch everything and cannot narrow them.

use crate::{
    daemon::api::FilterSpec,
    filter::WatchFilter,
    kernel::{facts::KernelFacts, Kernel},
};

pub fn load(
    facts: &KernelFacts,
    _filters: &[&WatchFilter],
    _snaplen: u32,
    ring_bytes: u32,
) -> anyhow::Result<Kernel> {
    Kernel::load(facts, &WatchFilter::default().to_kernel(), ring_bytes)
}

pub fn set(_kernel: &mut Kernel, _filters: &[&WatchFilter]) -> anyhow::Result<()> {
    Ok(())
}

pub fn filter_of(spec: &FilterSpec, snaplen: u32) -> Result<WatchFilter, String> {
    let port = match spec.ports.as_slice() {
        [] => None,
        [p] => Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        _ => return Err("one port only".into()),
    };
    let proto = match spec.proto.as_deref() {
        None => None,
        Some("tcp") => Some(crate::filter::Proto::Tcp),
        Some("udp") => Some(crate::filter::Proto::Udp),
        Some(p) => return Err(format!("bad proto {p:?}")),
    };
    Ok(WatchFilter {
        port,
        addr: spec.addr,
        proto,
        iface: spec.iface.clone(),
        snaplen,
    })
}

/// Every packet to or from one of `ports` (the metrics ports).
pub fn ports(ports: &[u16], snaplen: u32) -> WatchFilter {
    WatchFilter {
        port: ports.first().copied(),
        snaplen,
        ..WatchFilter::default()
    }
}

impl From<&WatchFilter> for FilterSpec {
    fn from(f: &WatchFilter) -> Self {
        FilterSpec {
            ports: f.port.iter().map(u16::to_string).collect(),
            addr: f.addr,
            proto: f.proto.map(|p| format!("{p:?}").to_lowercase()),
            iface: f.iface.clone(),
            pids: Vec::new(),
            comms: Vec::new(),
        }
    }
}
