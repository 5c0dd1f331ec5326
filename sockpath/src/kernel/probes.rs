//! The probe registry: for each journey stage, the hooks that can serve it in order of
//! preference, and what the journey loses without them. At start-up each stage gets the first
//! hook the running kernel accepts; the reasons the others were refused are kept for
//! `sockpath probes`.

use aya::{
    programs::{BtfTracePoint, TracePoint},
    Btf, Ebpf,
};
use serde::Serialize;
use sockpath_ebpf::event::SyscallKind;

use super::btf::KernelBtf;
use crate::journey::model::HookKind;

/// How one program attaches.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// BTF-typed tracepoint; `args` is how many tracepoint arguments the program reads.
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
    Syscalls { exit: bool },
}

/// One way to serve a stage: programs attached together.
#[derive(Clone, Debug)]
pub struct Hook {
    pub programs: Vec<(&'static str, Attach)>,
}

impl Hook {
    fn one(program: &'static str, attach: Attach) -> Self {
        Self {
            programs: vec![(program, attach)],
        }
    }

    pub fn kind(&self) -> HookKind {
        match self.programs.first().map(|p| p.1) {
            Some(Attach::TpBtf { .. }) => HookKind::TpBtf,
            _ => HookKind::Tracepoint,
        }
    }

    pub fn describe(&self) -> String {
        self.programs
            .iter()
            .map(|(_, a)| match a {
                Attach::TpBtf { tracepoint, .. } => format!("tp_btf/{tracepoint}"),
                Attach::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
                Attach::Syscalls { exit: false } => "tracepoint/syscalls/sys_enter_*".to_string(),
                Attach::Syscalls { exit: true } => "tracepoint/syscalls/sys_exit_*".to_string(),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

pub struct StageSpec {
    pub stage: &'static str,
    /// Preferred first. Empty: no hook on any kernel this build supports; the stage is inferred.
    pub hooks: Vec<Hook>,
    /// sockpath cannot run without it.
    pub required: bool,
    /// What the journeys lose when no hook serves the stage.
    pub without: &'static str,
}

fn tp(program: &'static str, args: usize) -> Attach {
    Attach::TpBtf {
        tracepoint: program,
        args,
    }
}

/// Every stage, in journey order.
pub fn registry() -> Vec<StageSpec> {
    vec![
        StageSpec {
            stage: "device receive (netif_receive_skb)",
            hooks: vec![Hook::one("netif_receive_skb", tp("netif_receive_skb", 1))],
            required: true,
            without: "no journeys at all",
        },
        StageSpec {
            stage: "NET_RX softirq context",
            hooks: vec![Hook {
                programs: vec![
                    ("softirq_entry", tp("softirq_entry", 1)),
                    ("softirq_exit", tp("softirq_exit", 1)),
                ],
            }],
            required: true,
            without: "socket events cannot be tied to the packet that caused them",
        },
        StageSpec {
            stage: "input route (fib_table_lookup)",
            hooks: vec![Hook::one(
                "fib_table_lookup",
                Attach::Tracepoint {
                    category: "fib",
                    name: "fib_table_lookup",
                },
            )],
            required: false,
            without: "no routing stage",
        },
        StageSpec {
            stage: "IP receive (ip_rcv)",
            hooks: vec![],
            required: false,
            without: "inferred: no tracepoint at ip_rcv",
        },
        StageSpec {
            stage: "transport receive (tcp_v4_rcv, udp_rcv)",
            hooks: vec![],
            required: false,
            without: "inferred: no tracepoint at tcp_v4_rcv/udp_rcv",
        },
        StageSpec {
            stage: "socket lookup (inet_lookup)",
            hooks: vec![],
            required: false,
            without: "inferred from the socket later hooks name",
        },
        StageSpec {
            stage: "established receive (tcp_probe)",
            hooks: vec![Hook::one("tcp_probe", tp("tcp_probe", 2))],
            required: false,
            without: "established TCP packets not tied to their socket",
        },
        StageSpec {
            stage: "listener answer (SYN-ACK by request socket)",
            hooks: vec![Hook::one("net_dev_queue", tp("net_dev_queue", 1))],
            required: false,
            without: "the listener a SYN reached is not known",
        },
        StageSpec {
            stage: "socket queue (sk_data_ready)",
            hooks: vec![Hook::one("sk_data_ready", tp("sk_data_ready", 1))],
            required: false,
            without: "delivery to a socket's queue not seen",
        },
        StageSpec {
            stage: "TCP state (inet_sock_set_state)",
            hooks: vec![Hook::one(
                "inet_sock_set_state",
                tp("inet_sock_set_state", 3),
            )],
            required: false,
            without: "no TCP state changes",
        },
        StageSpec {
            stage: "read by a process",
            hooks: vec![Hook::one("sock_recv_length", tp("sock_recv_length", 3))],
            required: false,
            without: "reads not seen",
        },
        StageSpec {
            stage: "write by a process",
            hooks: vec![Hook::one("sock_send_length", tp("sock_send_length", 3))],
            required: false,
            without: "writers not followed",
        },
        StageSpec {
            stage: "drop with reason (kfree_skb)",
            hooks: vec![Hook::one("kfree_skb", tp("kfree_skb", 4))],
            required: false,
            without: "drops not seen",
        },
        StageSpec {
            stage: "reset sent (tcp_send_reset)",
            hooks: vec![Hook::one("tcp_send_reset", tp("tcp_send_reset", 3))],
            required: false,
            without: "resets sent not seen",
        },
        StageSpec {
            stage: "reset received",
            hooks: vec![Hook {
                programs: vec![
                    ("tcp_receive_reset", tp("tcp_receive_reset", 1)),
                    ("inet_sk_error_report", tp("inet_sk_error_report", 1)),
                ],
            }],
            required: false,
            without: "resets received not seen",
        },
        StageSpec {
            stage: "ICMP error sent (icmp_send)",
            hooks: vec![Hook::one("icmp_send", tp("icmp_send", 3))],
            required: false,
            without: "ICMP port unreachable not seen",
        },
        StageSpec {
            stage: "socket queue full",
            hooks: vec![Hook {
                programs: vec![
                    ("udp_fail_queue_rcv_skb", tp("udp_fail_queue_rcv_skb", 3)),
                    ("sock_rcvqueue_full", tp("sock_rcvqueue_full", 2)),
                ],
            }],
            required: false,
            without: "full receive queues not seen",
        },
        StageSpec {
            stage: "socket destroyed (tcp_destroy_sock)",
            hooks: vec![Hook::one("tcp_destroy_sock", tp("tcp_destroy_sock", 1))],
            required: false,
            without: "socket ends not seen",
        },
        StageSpec {
            stage: "socket system calls",
            hooks: vec![Hook {
                programs: vec![
                    ("sys_enter", Attach::Syscalls { exit: false }),
                    ("sys_exit", Attach::Syscalls { exit: true }),
                ],
            }],
            required: false,
            without: "no syscalls, owners of new sockets unknown",
        },
    ]
}

/// What happened to one stage at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub stage: String,
    pub required: bool,
    /// The hook serving it, if any.
    pub chosen: Option<String>,
    pub kind: Option<HookKind>,
    /// Hooks tried and refused, with the reason.
    pub refused: Vec<(String, String)>,
    pub without: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this kernel cannot serve the required stage \"{stage}\": {reasons}")]
    Required { stage: String, reasons: String },
}

fn first_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    // Verifier logs can be long; the first lines say what failed.
    s.lines().take(3).collect::<Vec<_>>().join(" | ")
}

/// Why a tp_btf program cannot attach here, found without loading it.
fn tp_btf_refusal(kbtf: &KernelBtf, tracepoint: &str, args: usize) -> Option<String> {
    match kbtf.tracepoint_arity(tracepoint) {
        None => Some(format!(
            "tracepoint {tracepoint} does not exist in this kernel"
        )),
        Some(n) if n < args => Some(format!(
            "tracepoint {tracepoint} has {n} arguments here; the program reads {args}"
        )),
        Some(_) => None,
    }
}

fn attach_one(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kbtf: &KernelBtf,
    program: &str,
    attach: Attach,
) -> Result<(), String> {
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the eBPF object"))?;
    match attach {
        Attach::TpBtf { tracepoint, args } => {
            if let Some(why) = tp_btf_refusal(kbtf, tracepoint, args) {
                return Err(why);
            }
            let p: &mut BtfTracePoint = prog.try_into().map_err(|e| first_line(&e))?;
            p.load(tracepoint, btf).map_err(|e| first_line(&e))?;
            p.attach().map_err(|e| first_line(&e))?;
        }
        Attach::Tracepoint { category, name } => {
            let p: &mut TracePoint = prog.try_into().map_err(|e| first_line(&e))?;
            p.load().map_err(|e| first_line(&e))?;
            p.attach(category, name)
                .map_err(|e| format!("tracepoint {category}/{name}: {}", first_line(&e)))?;
        }
        Attach::Syscalls { exit } => {
            let p: &mut TracePoint = prog.try_into().map_err(|e| first_line(&e))?;
            p.load().map_err(|e| first_line(&e))?;
            for k in SyscallKind::ALL {
                let name = format!("sys_{}_{}", if exit { "exit" } else { "enter" }, k.name());
                p.attach("syscalls", &name)
                    .map_err(|e| format!("tracepoint syscalls/{name}: {}", first_line(&e)))?;
            }
        }
    }
    Ok(())
}

/// Loads and attaches every stage's preferred working hook.
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kbtf: &KernelBtf,
) -> Result<Vec<StageStatus>, ProbeError> {
    let mut statuses = Vec::new();
    for spec in registry() {
        let mut st = StageStatus {
            stage: spec.stage.to_string(),
            required: spec.required,
            chosen: None,
            kind: None,
            refused: Vec::new(),
            without: spec.without.to_string(),
        };
        for hook in &spec.hooks {
            let result = hook
                .programs
                .iter()
                .try_for_each(|(p, a)| attach_one(ebpf, btf, kbtf, p, *a));
            match result {
                Ok(()) => {
                    st.chosen = Some(hook.describe());
                    st.kind = Some(hook.kind());
                    break;
                }
                Err(why) => st.refused.push((hook.describe(), why)),
            }
        }
        if spec.required && st.chosen.is_none() {
            let reasons = st
                .refused
                .iter()
                .map(|(h, w)| format!("{h}: {w}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ProbeError::Required {
                stage: spec.stage.to_string(),
                reasons,
            });
        }
        statuses.push(st);
    }
    Ok(statuses)
}

/// One line per stage: the hook serving it, or why none does.
pub fn describe(statuses: &[StageStatus]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| match &s.chosen {
            Some(h) => format!("{}: {h}", s.stage),
            None if s.refused.is_empty() => format!("{}: {}", s.stage, s.without),
            None => format!(
                "{}: unobservable ({}); {}",
                s.stage,
                s.refused
                    .iter()
                    .map(|(h, w)| format!("{h}: {w}"))
                    .collect::<Vec<_>>()
                    .join("; "),
                s.without
            ),
        })
        .collect()
}
