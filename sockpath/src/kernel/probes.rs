//! The probe registry: for each journey stage, the hooks that can serve it in order of
//! preference (fentry/fexit, then kprobe/kretprobe, then a tracepoint), and what the journey
//! loses without them. At start-up each stage gets the first hook the running kernel accepts;
//! the reasons the better ones were refused are kept for `sockpath probes`.

use std::collections::HashMap;

use aya::{
    programs::{BtfTracePoint, FEntry, FExit, KProbe, TracePoint},
    Btf, Ebpf,
};
use serde::Serialize;
use sockpath_ebpf::event::SyscallKind;

use super::facts::KernelFacts;
use crate::journey::{
    hooks::{HookChoice, Stage},
    model::HookKind,
};

/// How one program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// BTF-typed tracepoint; `args` is how many tracepoint arguments the program needs.
    TpBtf {
        tracepoint: &'static str,
        args: usize,
    },
    /// Classic tracepoint (the program reads the record at offsets of its format file).
    Tracepoint {
        category: &'static str,
        name: &'static str,
    },
    /// The syscalls/sys_enter_* (or sys_exit_*) tracepoints of every followed call.
    Syscalls {
        exit: bool,
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
    pub fn kind(self) -> HookKind {
        match self {
            Attach::TpBtf { .. } => HookKind::TpBtf,
            Attach::Tracepoint { .. } | Attach::Syscalls { .. } => HookKind::Tracepoint,
            Attach::Fentry { .. } => HookKind::Fentry,
            Attach::Fexit { .. } => HookKind::Fexit,
            Attach::Kprobe { .. } => HookKind::Kprobe,
            Attach::Kretprobe { .. } => HookKind::Kretprobe,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Attach::TpBtf { tracepoint, .. } => format!("tp_btf/{tracepoint}"),
            Attach::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
            Attach::Syscalls { exit: false } => "tracepoint/syscalls/sys_enter_*".into(),
            Attach::Syscalls { exit: true } => "tracepoint/syscalls/sys_exit_*".into(),
            Attach::Fentry { function } => format!("fentry/{function}"),
            Attach::Fexit { function } => format!("fexit/{function}"),
            Attach::Kprobe { function } => format!("kprobe/{function}"),
            Attach::Kretprobe { function } => format!("kretprobe/{function}"),
        }
    }
}

/// One program of a hook. An optional one may be missing (an IPv6 twin inlined away) without
/// refusing the hook.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: &'static str,
    pub attach: Attach,
    pub optional: bool,
}

/// One way to serve a stage: programs attached together.
#[derive(Clone, Debug)]
pub struct Hook {
    pub programs: Vec<Program>,
}

impl Hook {
    fn new(programs: &[(&'static str, Attach)]) -> Self {
        Self {
            programs: programs
                .iter()
                .map(|&(name, attach)| Program {
                    name,
                    attach,
                    optional: false,
                })
                .collect(),
        }
    }

    /// Marks the programs attached to IPv6 functions (ipv6_rcv, tcp_v6_rcv, inet6_*, ...)
    /// optional: an IPv4 journey does not need them.
    fn v6_optional(mut self) -> Self {
        for p in &mut self.programs {
            if let Attach::Fentry { function }
            | Attach::Fexit { function }
            | Attach::Kprobe { function }
            | Attach::Kretprobe { function } = p.attach
            {
                p.optional = function.contains('6');
            }
        }
        self
    }

    /// Marks one program optional.
    fn optional(mut self, name: &str) -> Self {
        for p in &mut self.programs {
            if p.name == name {
                p.optional = true;
            }
        }
        self
    }

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
}

pub struct StageSpec {
    pub stage: Stage,
    pub name: &'static str,
    /// Preferred first. Empty: the stage is always inferred.
    pub hooks: Vec<Hook>,
    /// sockpath cannot run without it.
    pub required: bool,
    /// What the journeys lose when no hook serves the stage.
    pub without: &'static str,
}

fn tp(tracepoint: &'static str, args: usize) -> Attach {
    Attach::TpBtf { tracepoint, args }
}
fn fentry(function: &'static str) -> Attach {
    Attach::Fentry { function }
}
fn fexit(function: &'static str) -> Attach {
    Attach::Fexit { function }
}
fn kprobe(function: &'static str) -> Attach {
    Attach::Kprobe { function }
}
fn kretprobe(function: &'static str) -> Attach {
    Attach::Kretprobe { function }
}

/// The fentry and kprobe hooks of one function-per-program stage: `(function, fentry program,
/// kprobe program)`.
fn entry_hooks(fns: &[(&'static str, &'static str, &'static str)]) -> Vec<Hook> {
    let fe: Vec<_> = fns.iter().map(|&(f, p, _)| (p, fentry(f))).collect();
    let kp: Vec<_> = fns.iter().map(|&(f, _, p)| (p, kprobe(f))).collect();
    vec![Hook::new(&fe).v6_optional(), Hook::new(&kp).v6_optional()]
}

/// Every stage, in journey order.
pub fn registry() -> Vec<StageSpec> {
    let lookups: [(&str, &str, &str); 6] = [
        (
            "__inet_lookup_established",
            "fexit_inet_lookup_established",
            "kretprobe_inet_lookup_established",
        ),
        (
            "__inet_lookup_listener",
            "fexit_inet_lookup_listener",
            "kretprobe_inet_lookup_listener",
        ),
        (
            "__inet6_lookup_established",
            "fexit_inet6_lookup_established",
            "kretprobe_inet6_lookup_established",
        ),
        (
            "inet6_lookup_listener",
            "fexit_inet6_lookup_listener",
            "kretprobe_inet6_lookup_listener",
        ),
        (
            "__udp4_lib_lookup",
            "fexit_udp4_lib_lookup",
            "kretprobe_udp4_lib_lookup",
        ),
        (
            "__udp6_lib_lookup",
            "fexit_udp6_lib_lookup",
            "kretprobe_udp6_lib_lookup",
        ),
    ];
    let lookup_fexit: Vec<_> = lookups.iter().map(|&(f, p, _)| (p, fexit(f))).collect();
    let lookup_kret: Vec<_> = lookups.iter().map(|&(f, _, p)| (p, kretprobe(f))).collect();
    vec![
        StageSpec {
            stage: Stage::DeviceReceive,
            name: "device receive (netif_receive_skb)",
            hooks: vec![Hook::new(&[(
                "netif_receive_skb",
                tp("netif_receive_skb", 1),
            )])],
            required: true,
            without: "no journeys at all",
        },
        StageSpec {
            stage: Stage::Softirq,
            name: "NET_RX softirq context",
            hooks: vec![Hook::new(&[
                ("softirq_entry", tp("softirq_entry", 1)),
                ("softirq_exit", tp("softirq_exit", 1)),
            ])],
            required: true,
            without: "socket events cannot be tied to the packet that caused them",
        },
        StageSpec {
            stage: Stage::Route,
            name: "input route (fib_table_lookup)",
            hooks: vec![Hook::new(&[(
                "fib_table_lookup",
                Attach::Tracepoint {
                    category: "fib",
                    name: "fib_table_lookup",
                },
            )])],
            required: false,
            without: "no routing stage",
        },
        StageSpec {
            stage: Stage::IpReceive,
            name: "IP receive (ip_rcv)",
            hooks: entry_hooks(&[
                ("ip_rcv", "fentry_ip_rcv", "kprobe_ip_rcv"),
                ("ipv6_rcv", "fentry_ipv6_rcv", "kprobe_ipv6_rcv"),
            ]),
            required: false,
            without: "inferred: no tracepoint at ip_rcv",
        },
        StageSpec {
            stage: Stage::LocalDeliver,
            name: "local delivery (ip_local_deliver)",
            hooks: entry_hooks(&[
                (
                    "ip_local_deliver",
                    "fentry_ip_local_deliver",
                    "kprobe_ip_local_deliver",
                ),
                ("ip6_input", "fentry_ip6_input", "kprobe_ip6_input"),
            ]),
            required: false,
            without: "inferred: no tracepoint at ip_local_deliver",
        },
        StageSpec {
            stage: Stage::Transport,
            name: "transport receive (tcp_v4_rcv, udp_rcv)",
            hooks: entry_hooks(&[
                ("tcp_v4_rcv", "fentry_tcp_v4_rcv", "kprobe_tcp_v4_rcv"),
                ("tcp_v6_rcv", "fentry_tcp_v6_rcv", "kprobe_tcp_v6_rcv"),
                ("udp_rcv", "fentry_udp_rcv", "kprobe_udp_rcv"),
                ("udpv6_rcv", "fentry_udpv6_rcv", "kprobe_udpv6_rcv"),
            ]),
            required: false,
            without: "inferred: no tracepoint at tcp_v4_rcv/udp_rcv",
        },
        StageSpec {
            stage: Stage::Lookup,
            name: "socket lookup (inet_lookup)",
            hooks: vec![
                Hook::new(&lookup_fexit).v6_optional(),
                Hook::new(&lookup_kret).v6_optional(),
            ],
            required: false,
            without: "inferred from the socket later hooks name",
        },
        StageSpec {
            stage: Stage::EstablishedReceive,
            name: "established receive (tcp_probe)",
            hooks: vec![Hook::new(&[("tcp_probe", tp("tcp_probe", 2))])],
            required: false,
            without: "established TCP packets not tied to their socket",
        },
        StageSpec {
            stage: Stage::SynAck,
            name: "listener answer (SYN-ACK by request socket)",
            hooks: vec![Hook::new(&[("net_dev_queue", tp("net_dev_queue", 1))])],
            required: false,
            without: "the listener a SYN reached is not known",
        },
        StageSpec {
            stage: Stage::Queue,
            name: "socket queue (sk_data_ready)",
            hooks: vec![
                Hook::new(&[("fentry_sock_def_readable", fentry("sock_def_readable"))]),
                Hook::new(&[("kprobe_sock_def_readable", kprobe("sock_def_readable"))]),
                Hook::new(&[("sk_data_ready", tp("sk_data_ready", 1))]),
            ],
            required: false,
            without: "delivery to a socket's queue not seen",
        },
        StageSpec {
            stage: Stage::TcpState,
            name: "TCP state (inet_sock_set_state)",
            hooks: vec![Hook::new(&[(
                "inet_sock_set_state",
                tp("inet_sock_set_state", 3),
            )])],
            required: false,
            without: "no TCP state changes",
        },
        StageSpec {
            stage: Stage::Read,
            name: "read by a process",
            hooks: vec![
                Hook::new(&[
                    ("fexit_inet_recvmsg", fexit("inet_recvmsg")),
                    ("fexit_inet6_recvmsg", fexit("inet6_recvmsg")),
                ])
                .v6_optional(),
                Hook::new(&[("sock_recv_length", tp("sock_recv_length", 3))]),
            ],
            required: false,
            without: "reads not seen",
        },
        StageSpec {
            stage: Stage::Drop,
            name: "drop with reason (kfree_skb)",
            hooks: vec![Hook::new(&[("kfree_skb", tp("kfree_skb", 3))])],
            required: false,
            without: "drops not seen",
        },
        StageSpec {
            stage: Stage::ResetSent,
            name: "reset sent (tcp_v4_send_reset)",
            hooks: vec![
                Hook::new(&[
                    ("fentry_tcp_v4_send_reset", fentry("tcp_v4_send_reset")),
                    ("fentry_tcp_v6_send_reset", fentry("tcp_v6_send_reset")),
                ])
                .v6_optional(),
                Hook::new(&[
                    ("kprobe_tcp_v4_send_reset", kprobe("tcp_v4_send_reset")),
                    ("kprobe_tcp_v6_send_reset", kprobe("tcp_v6_send_reset")),
                ])
                .v6_optional(),
                // Before 6.10 this tracepoint skipped the resets sent when no socket matched.
                Hook::new(&[("tcp_send_reset", tp("tcp_send_reset", 3))]),
            ],
            required: false,
            without: "resets sent not seen",
        },
        StageSpec {
            stage: Stage::ResetReceived,
            name: "reset received",
            hooks: vec![Hook::new(&[
                ("tcp_receive_reset", tp("tcp_receive_reset", 1)),
                ("inet_sk_error_report", tp("inet_sk_error_report", 1)),
            ])],
            required: false,
            without: "resets received not seen",
        },
        StageSpec {
            stage: Stage::IcmpSent,
            name: "ICMP error sent (__icmp_send)",
            hooks: vec![
                Hook::new(&[("fentry_icmp_send", fentry("__icmp_send"))]),
                Hook::new(&[("kprobe_icmp_send", kprobe("__icmp_send"))]),
                Hook::new(&[("icmp_send", tp("icmp_send", 3))]),
            ],
            required: false,
            without: "ICMP port unreachable not seen",
        },
        StageSpec {
            stage: Stage::QueueFull,
            name: "socket queue full",
            // udp_fail_queue_rcv_skb gained its skb argument in 6.x; without it the packet
            // cannot be named.
            hooks: vec![Hook::new(&[
                ("sock_rcvqueue_full", tp("sock_rcvqueue_full", 2)),
                ("udp_fail_queue_rcv_skb", tp("udp_fail_queue_rcv_skb", 3)),
            ])
            .optional("udp_fail_queue_rcv_skb")],
            required: false,
            without: "full receive queues not seen",
        },
        StageSpec {
            stage: Stage::Destroyed,
            name: "socket destroyed (tcp_destroy_sock)",
            hooks: vec![Hook::new(&[(
                "tcp_destroy_sock",
                tp("tcp_destroy_sock", 1),
            )])],
            required: false,
            without: "socket ends not seen",
        },
        StageSpec {
            stage: Stage::Syscalls,
            name: "socket system calls",
            hooks: vec![Hook::new(&[
                ("sys_enter", Attach::Syscalls { exit: false }),
                ("sys_exit", Attach::Syscalls { exit: true }),
            ])],
            required: false,
            without: "no syscalls, owners of new sockets unknown",
        },
    ]
}

/// What happened to one stage at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub stage: Stage,
    pub name: String,
    pub required: bool,
    /// The hook serving it, if any.
    pub chosen: Option<String>,
    pub kind: HookKind,
    /// Programs of the chosen hook that could not attach but were optional.
    pub partial: Vec<(String, String)>,
    /// Hooks tried and refused, with the reason.
    pub refused: Vec<(String, String)>,
    pub without: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this kernel cannot serve the required stage \"{stage}\": {reasons}")]
    Required { stage: String, reasons: String },
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    // Verifier logs can be long: the first line says which call failed, the last ones why.
    // The log ends with statistics ("verification time", "processed N insns"); the lines
    // just before them are the refusal.
    let lines: Vec<&str> = s.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("verification time"))
        .unwrap_or(lines.len());
    if end <= 4 {
        return lines.join(" | ");
    }
    let mut short = vec![lines[0], "..."];
    short.extend_from_slice(&lines[end - 3..end]);
    short.extend_from_slice(&lines[lines.len() - 1..]);
    short.join(" | ")
}

/// Why a hook cannot work here, found without loading anything.
fn precheck(facts: &KernelFacts, attach: Attach) -> Option<String> {
    match attach {
        Attach::TpBtf { tracepoint, args } => match facts.btf.tracepoint_arity(tracepoint) {
            None => Some(format!(
                "tracepoint {tracepoint} does not exist in this kernel"
            )),
            Some(n) if n < args => Some(format!(
                "tracepoint {tracepoint} has {n} arguments here; the program needs {args}"
            )),
            Some(_) => None,
        },
        Attach::Fentry { function } | Attach::Fexit { function } => {
            if let Some(why) = facts.trampolines_refused.borrow().as_ref() {
                return Some(why.clone());
            }
            (!facts.btf.has_function(function))
                .then(|| format!("{function} is not in this kernel's BTF (absent or inlined)"))
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            if !facts.kprobes {
                return Some(
                    "no kprobes on this kernel (CONFIG_KPROBES is not set: no kprobe PMU, no kprobe_events)"
                        .into(),
                );
            }
            (!facts.kallsyms.contains(function))
                .then(|| format!("{function} is not in /proc/kallsyms (absent or inlined)"))
        }
        Attach::Tracepoint { .. } | Attach::Syscalls { .. } => None,
    }
}

/// Some kernels (this project's 6.18 build among them) refuse every fentry/fexit program with
/// EPERM before the verifier runs.
fn trampoline_refusal(e: aya::programs::ProgramError) -> String {
    let text = chain(&e);
    if text.contains("Operation not permitted") || text.contains("os error 1)") {
        "this kernel refuses fentry/fexit programs (BPF_PROG_LOAD fails with EPERM)".into()
    } else if text.contains("os error 524") {
        // ENOTSUPP from the trampoline attach: seen on 6.1 for functions with more than six
        // arguments (__inet_lookup_established has eight).
        format!("the kernel cannot attach a trampoline there (ENOTSUPP, error 524): {text}")
    } else {
        text
    }
}

/// `SOCKPATH_ONLY_PROGRAMS=a,b`: attach only these programs (by name, as `bpftool prog` lists
/// them), the others counted as attached but left out. A measuring aid, not a mode of use: it
/// is how the README's cost of each hook was measured (the other-port load with one group of
/// hooks attached at a time); journeys are then incomplete.
fn left_out(program: &str) -> bool {
    match std::env::var("SOCKPATH_ONLY_PROGRAMS") {
        Ok(only) => !only.split(',').any(|s| s.trim() == program),
        Err(_) => false,
    }
}

fn attach_one(ebpf: &mut Ebpf, btf: &Btf, program: &str, attach: Attach) -> Result<(), String> {
    if left_out(program) {
        return Ok(());
    }
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the eBPF object"))?;
    let e = |e: aya::programs::ProgramError| chain(&e);
    match attach {
        Attach::TpBtf { tracepoint, .. } => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(e)?;
            p.load(tracepoint, btf).map_err(e)?;
            p.attach().map_err(e)?;
        }
        Attach::Tracepoint { category, name } => {
            let p: &mut TracePoint = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            p.attach(category, name)
                .map_err(|err| format!("tracepoint {category}/{name}: {}", chain(&err)))?;
        }
        Attach::Syscalls { exit } => {
            let p: &mut TracePoint = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            // Reads are told by the read hooks (see sockpath-ebpf's hooks/syscalls.rs).
            for k in SyscallKind::ALL.into_iter().filter(|k| !k.is_read()) {
                let name = format!("sys_{}_{}", if exit { "exit" } else { "enter" }, k.name());
                p.attach("syscalls", &name)
                    .map_err(|err| format!("tracepoint syscalls/{name}: {}", chain(&err)))?;
            }
        }
        Attach::Fentry { function } => {
            let p: &mut FEntry = prog.try_into().map_err(e)?;
            p.load(function, btf).map_err(trampoline_refusal)?;
            p.attach().map_err(trampoline_refusal)?;
        }
        Attach::Fexit { function } => {
            let p: &mut FExit = prog.try_into().map_err(e)?;
            p.load(function, btf).map_err(trampoline_refusal)?;
            p.attach().map_err(trampoline_refusal)?;
        }
        Attach::Kprobe { function } | Attach::Kretprobe { function } => {
            let p: &mut KProbe = prog.try_into().map_err(e)?;
            p.load().map_err(e)?;
            p.attach(function, 0).map_err(e)?;
        }
    }
    Ok(())
}

/// Detaches and unloads a program of a hook that was refused after it attached.
fn unload(ebpf: &mut Ebpf, program: &str, attach: Attach) {
    let Some(prog) = ebpf.program_mut(program) else {
        return;
    };
    let _ = match attach {
        Attach::TpBtf { .. } => <&mut BtfTracePoint>::try_from(prog).map(|p| p.unload()),
        Attach::Tracepoint { .. } | Attach::Syscalls { .. } => {
            <&mut TracePoint>::try_from(prog).map(|p| p.unload())
        }
        Attach::Fentry { .. } => <&mut FEntry>::try_from(prog).map(|p| p.unload()),
        Attach::Fexit { .. } => <&mut FExit>::try_from(prog).map(|p| p.unload()),
        Attach::Kprobe { .. } | Attach::Kretprobe { .. } => {
            <&mut KProbe>::try_from(prog).map(|p| p.unload())
        }
    };
}

/// Attaches every program of `hook`; on a required program's failure, undoes the others.
fn attach_hook(
    ebpf: &mut Ebpf,
    btf: &Btf,
    facts: &KernelFacts,
    hook: &Hook,
) -> Result<Vec<(String, String)>, String> {
    let mut done = Vec::new();
    let mut partial = Vec::new();
    for p in &hook.programs {
        let r = match precheck(facts, p.attach) {
            Some(why) => Err(why),
            None => attach_one(ebpf, btf, p.name, p.attach),
        };
        if let (Err(why), Attach::Fentry { .. } | Attach::Fexit { .. }) = (&r, p.attach) {
            if why.contains("refuses fentry/fexit") {
                // One refusal says it for all: later trampoline hooks are not even loaded.
                *facts.trampolines_refused.borrow_mut() = Some(why.clone());
            }
        }
        match r {
            Ok(()) => done.push(p),
            Err(why) if p.optional => partial.push((p.attach.describe(), why)),
            Err(why) => {
                for d in done {
                    unload(ebpf, d.name, d.attach);
                }
                unload(ebpf, p.name, p.attach);
                return Err(format!("{}: {why}", p.attach.describe()));
            }
        }
    }
    if done.is_empty() {
        return Err("no program of it could attach".into());
    }
    Ok(partial)
}

/// Loads and attaches every stage's preferred working hook.
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: &Btf,
    facts: &KernelFacts,
) -> Result<Vec<StageStatus>, ProbeError> {
    if let Ok(only) = std::env::var("SOCKPATH_ONLY_PROGRAMS") {
        tracing::warn!(
            "SOCKPATH_ONLY_PROGRAMS is set: only {only} attached, journeys will be incomplete"
        );
    }
    let mut statuses = Vec::new();
    for spec in registry() {
        let mut st = StageStatus {
            stage: spec.stage,
            name: spec.name.to_string(),
            required: spec.required,
            chosen: None,
            kind: HookKind::Inferred,
            partial: Vec::new(),
            refused: Vec::new(),
            without: spec.without.to_string(),
        };
        for hook in &spec.hooks {
            match attach_hook(ebpf, btf, facts, hook) {
                Ok(partial) => {
                    st.chosen = Some(hook.describe());
                    st.kind = hook.kind();
                    st.partial = partial;
                    break;
                }
                Err(why) => st.refused.push((hook.describe(), why)),
            }
        }
        if spec.required && st.chosen.is_none() {
            let reasons = st
                .refused
                .iter()
                .map(|(_, w)| w.clone())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ProbeError::Required {
                stage: spec.name.to_string(),
                reasons,
            });
        }
        statuses.push(st);
    }
    Ok(statuses)
}

/// The kind of hook each stage got, for the journeys.
pub fn choice(statuses: &[StageStatus]) -> HookChoice {
    HookChoice::new(
        statuses
            .iter()
            .filter(|s| s.chosen.is_some())
            .map(|s| (s.stage, s.kind))
            .collect::<HashMap<_, _>>(),
    )
}

/// One line per stage: the hook serving it, or why none does.
pub fn describe(statuses: &[StageStatus]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| match &s.chosen {
            Some(h) => format!("{}: {h}", s.name),
            None if s.refused.is_empty() => format!("{}: {}", s.name, s.without),
            None => format!("{}: none ({})", s.name, s.without),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_prefers_trampolines_then_kprobes_then_tracepoints() {
        let rank = |k: HookKind| match k {
            HookKind::Fentry | HookKind::Fexit => 0,
            HookKind::Kprobe | HookKind::Kretprobe => 1,
            _ => 2,
        };
        for spec in registry() {
            let ranks: Vec<u8> = spec.hooks.iter().map(|h| rank(h.kind())).collect();
            assert!(
                ranks.windows(2).all(|w| w[0] <= w[1]),
                "{}: {ranks:?}",
                spec.name
            );
            for h in &spec.hooks {
                // Every program of a hook is of one kind.
                let k = rank(h.kind());
                assert!(
                    h.programs.iter().all(|p| rank(p.attach.kind()) == k),
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn ipv6_twins_are_optional_and_ipv4_ones_are_not() {
        let spec = registry()
            .into_iter()
            .find(|s| s.stage == Stage::Transport)
            .unwrap();
        let fentry = &spec.hooks[0];
        let opt: Vec<(String, bool)> = fentry
            .programs
            .iter()
            .map(|p| (p.attach.describe(), p.optional))
            .collect();
        assert!(opt.contains(&("fentry/tcp_v4_rcv".into(), false)));
        assert!(opt.contains(&("fentry/tcp_v6_rcv".into(), true)));
        assert!(opt.contains(&("fentry/udp_rcv".into(), false)));
        assert!(opt.contains(&("fentry/udpv6_rcv".into(), true)));
    }
}
