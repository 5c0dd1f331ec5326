//! Names of kernel enums and symbols, read from the running kernel at start-up (their values
//! move between kernel versions as reasons are added).

use std::{collections::HashMap, sync::Arc};

/// Names of the drop and reset reasons (from BTF) and of kernel text symbols (from kallsyms).
/// A drop's reason on kernels whose kfree_skb tracepoint passes none (before 5.17).
pub const DROP_REASON_NOT_GIVEN: &str = "reason not given by this kernel";

#[derive(Clone, Debug, Default)]
pub struct KernelNames {
    pub drop_reasons: HashMap<u64, String>,
    pub reset_reasons: HashMap<u64, String>,
    /// Kernel text symbols, sorted by address (from /proc/kallsyms), to name drop locations.
    /// Shared: the daemon's every watcher names locations from one copy (some 100,000
    /// symbols, megabytes).
    pub symbols: Arc<Vec<(u64, String)>>,
}

impl KernelNames {
    /// Reads /proc/kallsyms (addresses are real only for root, which sockpath runs as).
    pub fn load_symbols(&mut self) {
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
            return;
        };
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable();
        self.symbols = Arc::new(syms);
    }

    /// `function+0xoffset` for a kernel text address, or the address in hex.
    pub fn symbol(&self, addr: u64) -> String {
        match self.symbols.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (base, name) = &self.symbols[i - 1];
                format!("{name}+{:#x}", addr - base)
            }
        }
    }

    /// The name of drop reason `v`. A drop from a kernel whose kfree_skb passes no reason
    /// (before 5.17: the event says so with a negative value, the statistics count it in slot 0,
    /// and the kernel has no enum skb_drop_reason) is "reason not given by this kernel".
    pub fn drop_reason(&self, v: i32) -> String {
        if v < 0 || (v == 0 && self.drop_reasons.is_empty()) {
            return DROP_REASON_NOT_GIVEN.to_string();
        }
        self.drop_reasons
            .get(&(v as u64))
            .cloned()
            .unwrap_or_else(|| format!("reason {v}"))
    }

    /// The name of every drop reason slot the statistics count
    /// (`sockpath_ebpf::stats::drop_slot`), for a client that reads them elsewhere.
    pub fn drop_reason_slots(&self) -> Vec<String> {
        (0..sockpath_ebpf::stats::DROP_REASONS)
            .map(|r| self.drop_reason(r as i32))
            .collect()
    }

    pub fn reset_reason(&self, v: i32) -> String {
        self.reset_reasons
            .get(&(v as u64))
            .cloned()
            .unwrap_or_else(|| format!("reason {v}"))
    }

    /// A small fixed table for unit tests (the values of kernel 6.18).
    #[cfg(test)]
    pub fn for_tests() -> Self {
        let mut n = Self::default();
        n.drop_reasons.insert(3, "NO_SOCKET".into());
        n.drop_reasons.insert(2, "NOT_SPECIFIED".into());
        n.reset_reasons.insert(1, "NO_SOCKET".into());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(KernelNames::for_tests().drop_reason(3), "NO_SOCKET");
        assert_eq!(KernelNames::default().drop_reason(7), "reason 7");
        // Before 5.17: no reason in the event (-1), none in the statistics' slot 0 where the
        // kernel has no enum skb_drop_reason.
        let not_given = "reason not given by this kernel";
        assert_eq!(KernelNames::for_tests().drop_reason(-1), not_given);
        assert_eq!(KernelNames::default().drop_reason(-1), not_given);
        assert_eq!(KernelNames::default().drop_reason(0), not_given);
        assert_eq!(KernelNames::for_tests().drop_reason(0), "reason 0");
        let n = KernelNames {
            symbols: Arc::new(vec![
                (0x1000, "tcp_v4_rcv".into()),
                (0x2000, "udp_rcv".into()),
            ]),
            ..KernelNames::default()
        };
        assert_eq!(n.symbol(0x1010), "tcp_v4_rcv+0x10");
        assert_eq!(n.symbol(0x10), "0x10");
    }
}
