//! What one row of the hook table says: how a program attaches, what it reports, and what it
//! needs from the kernel.

use std::{fmt, sync::OnceLock};

use sockpath_ebpf::event::{Hop, LookupTable, QueueFullHook, SyscallKind};

use super::{HookKind, StageId};

/// A kernel release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kernel {
    pub major: u16,
    pub minor: u16,
}

pub const fn kernel(major: u16, minor: u16) -> Kernel {
    Kernel { major, minor }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Something a program needs from the kernel besides its attach point, with the first release
/// that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    pub what: &'static str,
    pub since: Kernel,
}

// Versions of BPF features from bcc's docs/kernel-versions.md (each row names the commit).

/// Every program reserves its event in the ring buffer (`bpf_ringbuf_reserve`).
pub const RING_BUFFER: Need = Need {
    what: "BPF ring buffer",
    since: kernel(5, 8),
};
/// Trampoline (BPF_PROG_TYPE_TRACING) programs: fentry, fexit and tp_btf.
const TRACING: Need = Need {
    what: "BTF-typed tracing programs",
    since: kernel(5, 5),
};
const KPROBE_PROGRAMS: Need = Need {
    what: "kprobe programs",
    since: kernel(4, 1),
};
const TRACEPOINT_PROGRAMS: Need = Need {
    what: "tracepoint programs",
    since: kernel(4, 7),
};
pub const CURRENT_TASK_BTF: Need = Need {
    what: "helper bpf_get_current_task_btf",
    since: kernel(5, 11),
};
pub const TASK_PT_REGS: Need = Need {
    what: "helper bpf_task_pt_regs",
    since: kernel(5, 15),
};
/// aya's `FExitContext::ret()` calls it (helper 184). Measured: 5.10 refuses a program calling
/// it ("invalid func unknown#184").
pub const FUNC_RET: Need = Need {
    what: "helper bpf_get_func_ret",
    since: kernel(5, 17),
};
/// x86-64 trampolines for functions of up to 12 arguments came with "bpf, x86: allow function
/// arguments up to 12 for TRACING" (bpf-next pull of 2023-07-13, on top of net-next-6.5: 6.6).
/// Measured: 6.1 refuses with ENOTSUPP, 6.12 attaches.
pub const MANY_ARGUMENTS: Need = Need {
    what: "trampolines for functions of more than six arguments",
    since: kernel(6, 6),
};

/// How one program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// BTF-typed tracepoint; `args` is how many tracepoint arguments the program reads.
    TpBtf {
        tracepoint: &'static str,
        args: usize,
    },
    /// Classic tracepoint, `group/name` (the program reads the record at offsets of its format
    /// file).
    Tracepoint {
        path: &'static str,
    },
    /// The syscalls/sys_enter_* (or sys_exit_*) tracepoints of the followed calls: accept's and
    /// accept4's, or every other's.
    Syscalls {
        exit: bool,
        accept: bool,
    },
    Fentry {
        function: &'static str,
    },
    Fexit {
        function: &'static str,
    },
    Kprobe {
        function: &'static str,
    },
    Kretprobe {
        function: &'static str,
    },
}

impl Attach {
    pub const fn kind(self) -> HookKind {
        match self {
            Attach::TpBtf { .. } => HookKind::TpBtf,
            Attach::Tracepoint { .. } | Attach::Syscalls { .. } => HookKind::Tracepoint,
            Attach::Fentry { .. } => HookKind::Fentry,
            Attach::Fexit { .. } => HookKind::Fexit,
            Attach::Kprobe { .. } => HookKind::Kprobe,
            Attach::Kretprobe { .. } => HookKind::Kretprobe,
        }
    }

    /// What a journey stage names as the hook's target: the tracepoint, `group/name` for a
    /// classic one, or the function.
    pub fn target(self) -> &'static str {
        match self {
            Attach::TpBtf { tracepoint, .. } => tracepoint,
            Attach::Tracepoint { path } => path,
            Attach::Syscalls {
                exit: false,
                accept: false,
            } => "syscalls/sys_enter_*",
            Attach::Syscalls {
                exit: true,
                accept: false,
            } => "syscalls/sys_exit_*",
            Attach::Syscalls {
                exit: false,
                accept: true,
            } => "syscalls/sys_enter_accept*",
            Attach::Syscalls {
                exit: true,
                accept: true,
            } => "syscalls/sys_exit_accept*",
            Attach::Fentry { function }
            | Attach::Fexit { function }
            | Attach::Kprobe { function }
            | Attach::Kretprobe { function } => function,
        }
    }

    /// `kind/target`, as `sockpath probes` prints it.
    pub fn describe(self) -> String {
        format!("{}/{}", self.kind().as_str(), self.target())
    }

    /// The kind of program, with the release that brought it.
    const fn program_type(self) -> Need {
        match self.kind() {
            HookKind::Kprobe | HookKind::Kretprobe => KPROBE_PROGRAMS,
            HookKind::Tracepoint => TRACEPOINT_PROGRAMS,
            _ => TRACING,
        }
    }
}

/// `syscalls/sys_enter_NAME` (or `sys_exit_NAME`): the tracepoint of one followed call. Built
/// once from [`SyscallKind::name`], so the stage labels and the attach points cannot differ.
pub fn syscall_tracepoint(kind: SyscallKind, exit: bool) -> &'static str {
    static PATHS: OnceLock<Vec<(SyscallKind, [&'static str; 2])>> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        SyscallKind::ALL
            .into_iter()
            .map(|k| {
                let path = |dir: &str| -> &'static str {
                    Box::leak(format!("syscalls/sys_{dir}_{}", k.name()).into_boxed_str())
                };
                (k, [path("enter"), path("exit")])
            })
            .collect()
    });
    paths
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| p[usize::from(exit)])
        .unwrap_or("syscalls/sys_exit_*")
}

/// Which observation a program reports, so a journey stage can name the program that saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reports {
    /// The stage's own observation (one kind of event per stage).
    Stage,
    /// The packet entered this receive-path function.
    Hop(Hop),
    /// The result of a lookup in this table for an IPv`version` packet.
    Lookup(LookupTable, u8),
    /// A full receive queue, seen by this tracepoint.
    QueueFull(QueueFullHook),
    /// A RST a socket accepted.
    ResetReceived,
    /// An error reported to a socket's user (ECONNREFUSED after a RST).
    ErrorReport,
    /// The socket system calls; the stage names the call's own tracepoint.
    Syscalls,
}

/// One eBPF program: a row of the hook table.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    /// Its name in the eBPF object (the Rust function's name in sockpath-ebpf).
    pub name: &'static str,
    pub attach: Attach,
    /// It may fail to attach without the hook being refused (an IPv6 twin inlined away, a
    /// tracepoint only recent kernels pass the packet to).
    pub optional: bool,
    pub reports: Reports,
    /// A release whose attach point has everything the program reads: the tracepoint with its
    /// arguments, the function, the record layout. For attach points older than the ring
    /// buffer it is the oldest release checked, not the first; the comments at the table's
    /// rows say where each comes from.
    pub point: Kernel,
    /// What else it needs from the kernel (helpers, trampolines of many arguments).
    pub needs: &'static [Need],
}

const fn program(name: &'static str, attach: Attach, point: Kernel) -> Program {
    Program {
        name,
        attach,
        optional: false,
        reports: Reports::Stage,
        point,
        needs: &[],
    }
}

/// A BTF-typed tracepoint program, named after its tracepoint, reading `args` arguments.
pub const fn tp_btf(tracepoint: &'static str, args: usize, point: Kernel) -> Program {
    program(tracepoint, Attach::TpBtf { tracepoint, args }, point)
}
/// A second BTF-typed tracepoint program on `tracepoint` (each program is declared once), for a
/// fallback that reads it differently.
pub const fn tp_btf_named(
    name: &'static str,
    tracepoint: &'static str,
    args: usize,
    point: Kernel,
) -> Program {
    program(name, Attach::TpBtf { tracepoint, args }, point)
}
pub const fn tracepoint(name: &'static str, path: &'static str, point: Kernel) -> Program {
    program(name, Attach::Tracepoint { path }, point)
}
/// `accept`: the program for accept and accept4 only; else for every other followed call.
pub const fn syscalls(name: &'static str, exit: bool, accept: bool, point: Kernel) -> Program {
    program(name, Attach::Syscalls { exit, accept }, point).reports(Reports::Syscalls)
}
pub const fn fentry(name: &'static str, function: &'static str, point: Kernel) -> Program {
    program(name, Attach::Fentry { function }, point)
}
pub const fn fexit(name: &'static str, function: &'static str, point: Kernel) -> Program {
    program(name, Attach::Fexit { function }, point)
}
pub const fn kprobe(name: &'static str, function: &'static str, point: Kernel) -> Program {
    program(name, Attach::Kprobe { function }, point)
}
pub const fn kretprobe(name: &'static str, function: &'static str, point: Kernel) -> Program {
    program(name, Attach::Kretprobe { function }, point)
}

/// The oldest release DepSurf checked (see the table): the attach point is at least this old.
pub const OLD: Kernel = kernel(4, 4);

/// An fentry and a kprobe program for the receive-path function of `hop`.
pub const fn hop_fentry(name: &'static str, hop: Hop) -> Program {
    fentry(name, hop.function(), OLD).reports(Reports::Hop(hop))
}
pub const fn hop_kprobe(name: &'static str, hop: Hop) -> Program {
    kprobe(name, hop.function(), OLD).reports(Reports::Hop(hop))
}

/// A socket lookup's fexit program. Every lookup function has more than six arguments
/// (`__inet_lookup_established` 8, `__inet_lookup_listener` 10, `__udp4_lib_lookup` 9, ...).
pub const fn lookup_fexit(name: &'static str, function: &'static str, r: Reports) -> Program {
    fexit(name, function, OLD)
        .reports(r)
        .needs(&[MANY_ARGUMENTS, FUNC_RET])
}
pub const fn lookup_kretprobe(name: &'static str, function: &'static str, r: Reports) -> Program {
    kretprobe(name, function, OLD).reports(r)
}

impl Program {
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub const fn reports(mut self, reports: Reports) -> Self {
        self.reports = reports;
        self
    }

    pub const fn needs(mut self, needs: &'static [Need]) -> Self {
        self.needs = needs;
        self
    }

    /// Everything the kernel must have for it, each with the release that brought it: the
    /// attach point, the kind of program, the ring buffer, and its other needs.
    pub fn requirements(&self) -> Vec<(String, Kernel)> {
        let point = match self.attach {
            Attach::TpBtf { tracepoint, args } => {
                let s = if args == 1 { "" } else { "s" };
                format!("tracepoint {tracepoint} with {args} argument{s}")
            }
            Attach::Tracepoint { path } => format!("the record layout of tracepoint {path}"),
            Attach::Syscalls { .. } => "the syscalls tracepoints".to_string(),
            Attach::Fentry { function }
            | Attach::Fexit { function }
            | Attach::Kprobe { function }
            | Attach::Kretprobe { function } => format!("function {function}"),
        };
        let kind = self.attach.program_type();
        let mut all = vec![
            (point, self.point),
            (kind.what.to_string(), kind.since),
            (RING_BUFFER.what.to_string(), RING_BUFFER.since),
        ];
        all.extend(self.needs.iter().map(|n| (n.what.to_string(), n.since)));
        all
    }

    /// The oldest kernel it is known to work on: the latest of its requirements.
    pub fn since(&self) -> Kernel {
        self.requirements()
            .into_iter()
            .map(|(_, since)| since)
            .max()
            .unwrap_or(self.point)
    }
}

/// One way to serve a stage: programs attached together, all of one kind.
#[derive(Debug)]
pub struct Hook {
    pub programs: &'static [Program],
    /// What the stage loses when this hook serves it instead of the stage's first one (None:
    /// nothing, the same observations another way).
    pub loses: Option<&'static str>,
}

impl Hook {
    pub fn kind(&self) -> HookKind {
        self.programs
            .first()
            .map(|p| p.attach.kind())
            .unwrap_or(HookKind::Inferred)
    }

    pub fn describe(&self) -> String {
        self.programs
            .iter()
            .map(|p| p.attach.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The oldest kernel the hook is known to work on: that of its required programs (an
    /// optional one only adds what it reports where it can).
    pub fn since(&self) -> Kernel {
        self.programs
            .iter()
            .filter(|p| !p.optional)
            .map(Program::since)
            .max()
            .unwrap_or(RING_BUFFER.since)
    }

    /// The program reporting `what`.
    pub fn program(&'static self, what: Reports) -> Option<&'static Program> {
        self.programs.iter().find(|p| p.reports == what)
    }
}

/// A journey stage: the hooks that can serve it, preferred first.
#[derive(Debug)]
pub struct StageSpec {
    pub stage: StageId,
    pub name: &'static str,
    /// Preferred first: fentry/fexit, then kprobe/kretprobe, then a tracepoint.
    pub hooks: &'static [Hook],
    /// sockpath cannot run without it.
    pub required: bool,
    /// What the journeys lose when no hook serves the stage.
    pub without: &'static str,
}
