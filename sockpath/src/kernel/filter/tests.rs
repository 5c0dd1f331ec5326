//! Rewriting the set: only what changed is written, additions before removals, and the ports
//! the kernel learned for owners survive a rewrite that still learns them.

use std::collections::BTreeSet;

use sockpath_ebpf::config::{FILTER_ACTIVE, FILTER_LEARN_PORTS};

use super::*;
use crate::filter::{PortSet, WatchFilter};

/// The maps in memory, with a log of the writes.
#[derive(Default)]
struct Fake {
    words: Vec<u64>,
    config: FilterConfig,
    members: BTreeSet<Member>,
    log: Vec<String>,
}

impl Fake {
    fn new() -> Self {
        Self {
            words: vec![0; FILTER_PORT_WORDS as usize],
            ..Self::default()
        }
    }

    fn has_port(&self, p: u16) -> bool {
        self.words[(p >> 6) as usize] & (1 << (p & 63)) != 0
    }
}

impl FilterStore for Fake {
    fn port_word(&self, i: u32) -> anyhow::Result<u64> {
        Ok(self.words[i as usize])
    }
    fn set_port_word(&mut self, i: u32, word: u64) -> anyhow::Result<()> {
        self.words[i as usize] = word;
        self.log.push(format!("word {i}"));
        Ok(())
    }
    fn set_config(&mut self, c: FilterConfig) -> anyhow::Result<()> {
        self.config = c;
        self.log.push("config".into());
        Ok(())
    }
    fn insert(&mut self, m: Member) -> anyhow::Result<()> {
        self.members.insert(m);
        self.log.push(format!("insert {m:?}"));
        Ok(())
    }
    fn remove(&mut self, m: Member) {
        self.members.remove(&m);
        self.log.push(format!("remove {m:?}"));
    }
}

fn ports(ps: &[u16]) -> WatchFilter {
    WatchFilter {
        ports: PortSet::new(ps.iter().map(|p| crate::filter::PortRange::single(*p))),
        ..WatchFilter::default()
    }
}

fn pid(p: u32) -> WatchFilter {
    let mut f = WatchFilter::default();
    f.owners.pids.insert(p);
    f
}

#[test]
fn only_changed_words_and_members_are_written_additions_first() {
    let mut m = FilterMaps::new(Fake::new());
    m.set(&KernelSet::of([&ports(&[4000, 4001])])).unwrap();
    // Both ports are in word 62: one write, then the flags.
    assert_eq!(m.store.log, ["word 62", "config"]);
    assert!(m.store.has_port(4000) && m.store.has_port(4001));
    assert_eq!(m.store.config.flags & FILTER_ACTIVE, FILTER_ACTIVE);

    m.store.log.clear();
    let a = WatchFilter {
        addr: Some("10.0.0.1".parse().unwrap()),
        ..ports(&[4000])
    };
    let b = pid(42);
    m.set(&KernelSet::of([&a, &b])).unwrap();
    assert!(!m.store.has_port(4001));
    assert!(m.store.members.contains(&Member::Tgid(42)));
    // Members added before the bitmap and the flags change.
    let config = m.store.log.iter().position(|l| l == "config").unwrap();
    assert!(m.store.log[..config].iter().any(|l| l.contains("Tgid(42)")));
    assert!(m.store.log[..config].iter().any(|l| l.contains("Addr(")));

    // Back to one filter without owners: members go, after the flags.
    m.store.log.clear();
    m.set(&KernelSet::of([&ports(&[4000])])).unwrap();
    assert!(m.store.members.is_empty());
    let config = m.store.log.iter().position(|l| l == "config").unwrap();
    assert!(m.store.log[config + 1..]
        .iter()
        .all(|l| l.starts_with("remove")));
    assert_eq!(m.store.log.len(), config + 3);

    // The same set again: only the flags are written.
    m.store.log.clear();
    m.set(&KernelSet::of([&ports(&[4000])])).unwrap();
    assert_eq!(m.store.log, ["config"]);

    // No client: nothing watched.
    m.set(&KernelSet::nothing()).unwrap();
    assert_eq!(m.store.config.flags, 0);
    assert!(m.store.words.iter().all(|w| *w == 0));
}

#[test]
fn learned_ports_survive_rewrites_that_still_learn() {
    let mut m = FilterMaps::new(Fake::new());
    m.set(&KernelSet::of([&pid(42)])).unwrap();
    assert_eq!(
        m.store.config.flags & FILTER_LEARN_PORTS,
        FILTER_LEARN_PORTS
    );
    // The kernel learns 5000 (a bind of pid 42); /proc gives 6000.
    m.store.words[(5000 >> 6) as usize] |= 1 << (5000 & 63);
    m.learn_ports([6000, 0]).unwrap();
    assert!(m.store.has_port(5000) && m.store.has_port(6000) && !m.store.has_port(0));

    // A second client joins: the union still learns, both ports stay.
    m.set(&KernelSet::of([&pid(42), &ports(&[4000])])).unwrap();
    for p in [4000, 5000, 6000] {
        assert!(m.store.has_port(p), "{p}");
    }
    // The kernel learns 9000 meanwhile (a word the set itself does not change).
    m.store.words[(9000 >> 6) as usize] |= 1 << (9000 & 63);
    // The owner client leaves: nothing is learned any more, the learned ports go.
    m.set(&KernelSet::of([&ports(&[4000])])).unwrap();
    assert!(m.store.has_port(4000));
    assert!(!m.store.has_port(5000) && !m.store.has_port(9000) && !m.store.has_port(6000));
    // Ports found in /proc are not added to a set that does not learn.
    m.learn_ports([7000]).unwrap();
    assert!(!m.store.has_port(7000));
    // A new owner client starts learning afresh.
    m.set(&KernelSet::of([&pid(43)])).unwrap();
    assert!(!m.store.has_port(5000) && !m.store.has_port(6000) && !m.store.has_port(4000));
}
