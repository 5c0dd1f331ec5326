//! Why a program cannot work on this kernel, found without loading anything: from its BTF,
//! /proc/kallsyms, and what an earlier trampoline program met.

use super::{error::AttachError, KernelFacts};
use crate::hooks::Attach;

pub fn precheck(facts: &KernelFacts, attach: Attach) -> Option<AttachError> {
    let why = match attach {
        Attach::TpBtf { tracepoint, args } => match facts.btf.tracepoint_arity(tracepoint) {
            None => format!("tracepoint {tracepoint} does not exist in this kernel"),
            Some(n) if n < args => {
                format!("tracepoint {tracepoint} has {n} arguments here; the program needs {args}")
            }
            Some(_) => return None,
        },
        Attach::Fentry { function } | Attach::Fexit { function } => {
            if facts.trampolines_refused.get() {
                return Some(AttachError::TrampolinesRefused);
            }
            if facts.btf.has_function(function) {
                return None;
            }
            format!("{function} is not in this kernel's BTF (absent or inlined)")
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            if !facts.kprobes {
                "no kprobes on this kernel (CONFIG_KPROBES is not set: no kprobe PMU, no kprobe_events)"
                    .to_string()
            } else if facts.kallsyms.contains(function) {
                return None;
            } else {
                format!("{function} is not in /proc/kallsyms (absent or inlined)")
            }
        }
        Attach::Tracepoint { .. } | Attach::Syscalls { .. } => return None,
    };
    Some(AttachError::Unavailable(why))
}
