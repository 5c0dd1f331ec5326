use serde::Serialize;

/// How a stage was known: the kind of hook that saw it, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    Fentry,
    Fexit,
    Kprobe,
    Kretprobe,
    TpBtf,
    Tracepoint,
    /// No hook on this kernel sees the stage; it is implied by the stages around it.
    Inferred,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Fentry => "fentry",
            HookKind::Fexit => "fexit",
            HookKind::Kprobe => "kprobe",
            HookKind::Kretprobe => "kretprobe",
            HookKind::TpBtf => "tp_btf",
            HookKind::Tracepoint => "tracepoint",
            HookKind::Inferred => "inferred",
        }
    }

    /// Order of preference: trampolines (no trap, typed arguments), then kprobes (any function,
    /// through a breakpoint), then tracepoints (stable, but only where the kernel put one).
    #[cfg(test)]
    pub fn rank(self) -> u8 {
        match self {
            HookKind::Fentry | HookKind::Fexit => 0,
            HookKind::Kprobe | HookKind::Kretprobe => 1,
            HookKind::TpBtf | HookKind::Tracepoint => 2,
            HookKind::Inferred => 3,
        }
    }
}
