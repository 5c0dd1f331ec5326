//! What the running kernel offers, read once at start-up: its BTF, its function symbols,
//! whether it has kprobes, and what its hooks pass.

use std::{cell::Cell, collections::HashSet, path::Path};

use sockpath_ebpf::config::{
    FEATURE_CONSUME_LOCATION, FEATURE_KFREE_SKB_RX_SK, FEATURE_RESET_REASON,
};

use super::{
    btf::{BtfError, KernelBtf},
    names::KernelNames,
};

pub struct KernelFacts {
    pub btf: KernelBtf,
    /// Function names in /proc/kallsyms (what a kprobe can attach to).
    pub kallsyms: HashSet<String>,
    /// A kprobe PMU or tracefs kprobe_events exists.
    pub kprobes: bool,
    /// Set once a trampoline (fentry/fexit) program was refused for a reason that applies to all.
    pub trampolines_refused: Cell<bool>,
    /// Names of kernel enums and symbols, for the output.
    pub names: KernelNames,
}

impl KernelFacts {
    pub fn read() -> Result<Self, BtfError> {
        let btf = KernelBtf::load()?;
        let mut names = KernelNames {
            drop_reasons: btf.enum_names("skb_drop_reason", "SKB_DROP_REASON_"),
            reset_reasons: btf.enum_names("sk_rst_reason", "SK_RST_REASON_"),
            ..KernelNames::default()
        };
        let kprobes = Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
            || Path::new("/sys/kernel/tracing/kprobe_events").exists()
            || Path::new("/sys/kernel/debug/tracing/kprobe_events").exists();
        // The function names are what a kprobe attaches to: read before attaching only where
        // kprobes exist. The symbols that name drop locations are read after attaching
        // (`load_symbols`, by watch and the daemon), so they are not held while attaching.
        let kallsyms = if kprobes {
            names.load_symbols();
            names.symbols.iter().map(|(_, n)| n.clone()).collect()
        } else {
            HashSet::new()
        };
        Ok(Self {
            btf,
            kallsyms,
            kprobes,
            trampolines_refused: Cell::new(false),
            names,
        })
    }

    /// Reads the kernel's text symbols, which name drop locations in journeys, if not read yet.
    pub fn load_symbols(&mut self) {
        if self.names.symbols.is_empty() {
            self.names.load_symbols();
        }
    }

    /// The `FEATURE_*` bits: arguments that only some kernels' hooks pass.
    pub fn features(&self) -> u32 {
        let mut f = 0;
        if self
            .btf
            .tracepoint_arity("kfree_skb")
            .is_some_and(|n| n >= 4)
        {
            f |= FEATURE_KFREE_SKB_RX_SK;
        }
        // The reason came to the tracepoint and the functions together (6.10); require both
        // where they exist, since either may serve the stage.
        let tp = self.btf.tracepoint_arity("tcp_send_reset");
        let func = self.btf.function_arity("tcp_v4_send_reset");
        if tp.is_none_or(|n| n >= 3)
            && func.is_none_or(|n| n >= 3)
            && (tp.is_some() || func.is_some())
        {
            f |= FEATURE_RESET_REASON;
        }
        // "net: add location to trace_consume_skb()" (6.3).
        if self
            .btf
            .tracepoint_arity("consume_skb")
            .is_some_and(|n| n >= 2)
        {
            f |= FEATURE_CONSUME_LOCATION;
        }
        f
    }
}
