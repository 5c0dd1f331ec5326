//! The kernel's set for every watcher and the metrics ports: the union of their filters
//! (`KernelSet::of`), written before the programs attach and rewritten in place as watchers
//! come and go (`Kernel::set_filter`). Each watcher's own filter, checked as the command line
//! checks it, is what its assembler keeps.

use crate::{
    api::FilterSpec,
    filter::{parse_port_range, FilterArgs, KernelSet, PortRange, PortSet, Proto, WatchFilter},
    kernel::{facts::KernelFacts, Kernel, Mode},
};

/// Loads and attaches the programs, watching what `filters` watch, writing what `mode` says.
pub fn load(
    facts: &KernelFacts,
    filters: &[&WatchFilter],
    snaplen: u32,
    ring_bytes: u32,
    mode: Mode,
) -> anyhow::Result<Kernel> {
    Kernel::load_mode(
        facts,
        &KernelSet::of(filters.iter().copied()),
        snaplen,
        ring_bytes,
        mode,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_goes_through_the_api_unchanged() {
        let me = std::process::id();
        let f = FilterArgs {
            ports: vec![
                parse_port_range("4000").unwrap(),
                parse_port_range("8000-8010").unwrap(),
            ],
            addr: Some("::1".parse().unwrap()),
            proto: Some(Proto::Udp),
            iface: Some("lo".into()),
            pids: vec![me],
            comms: vec!["nginx".into()],
        }
        .filter(300)
        .unwrap();
        let spec = FilterSpec::from(&f);
        assert_eq!(spec.ports, ["4000", "8000-8010"]);
        assert_eq!(filter_of(&spec, 300), Ok(f));
    }

    #[test]
    fn a_bad_filter_is_refused_in_the_command_line_words() {
        let spec = |f: fn(&mut FilterSpec)| {
            let mut s = FilterSpec::default();
            f(&mut s);
            filter_of(&s, 256).unwrap_err()
        };
        assert_eq!(
            spec(|s| s.ports = vec!["0".into()]),
            "0 is not in 1..=65535"
        );
        assert!(spec(|s| s.ports = vec!["http".into()]).starts_with("port \"http\""));
        assert!(spec(|s| s.proto = Some("sctp".into())).contains("tcp or udp"));
        assert!(spec(|s| s.comms = vec!["a-name-longer-than-15".into()]).contains("15"));
        assert!(spec(|s| s.pids = vec![0]).contains("pid 0"));
    }
}
