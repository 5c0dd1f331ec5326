//! The hook table's rows for the socket: the lookup that picks it, the established receive, the
//! SYN-ACK a listener sends, the queue, state changes and the reads that take the data.

use sockpath_ebpf::event::LookupTable;

use crate::hooks::{
    program::{
        fentry, fexit, kernel, kprobe, lookup_fexit, lookup_kretprobe, tp_btf, Hook, Reports,
        StageSpec, CURRENT_TASK_BTF, FUNC_RET, OLD, TASK_PT_REGS,
    },
    StageId,
};

/// Needs of the read hooks: the reader's system call comes from its saved registers.
const READER_REGS: &[crate::hooks::program::Need] = &[CURRENT_TASK_BTF, TASK_PT_REGS];
/// And of the fexit read hooks, which also take inet_recvmsg's return from bpf_get_func_ret.
const READER_REGS_RET: &[crate::hooks::program::Need] = &[CURRENT_TASK_BTF, TASK_PT_REGS, FUNC_RET];

const V4_ESTABLISHED: Reports = Reports::Lookup(LookupTable::Established, 4);
const V4_LISTENER: Reports = Reports::Lookup(LookupTable::Listener, 4);
const V6_ESTABLISHED: Reports = Reports::Lookup(LookupTable::Established, 6);
const V6_LISTENER: Reports = Reports::Lookup(LookupTable::Listener, 6);
const V4_UDP: Reports = Reports::Lookup(LookupTable::Udp, 4);
const V6_UDP: Reports = Reports::Lookup(LookupTable::Udp, 6);

pub const LOOKUP: StageSpec = StageSpec {
    stage: StageId::Lookup,
    name: "socket lookup (inet_lookup)",
    hooks: &[
        Hook {
            loses: None,
            programs: &[
                lookup_fexit(
                    "fexit_inet_lookup_established",
                    "__inet_lookup_established",
                    V4_ESTABLISHED,
                ),
                lookup_fexit(
                    "fexit_inet_lookup_listener",
                    "__inet_lookup_listener",
                    V4_LISTENER,
                ),
                lookup_fexit(
                    "fexit_inet6_lookup_established",
                    "__inet6_lookup_established",
                    V6_ESTABLISHED,
                )
                .optional(),
                lookup_fexit(
                    "fexit_inet6_lookup_listener",
                    "inet6_lookup_listener",
                    V6_LISTENER,
                )
                .optional(),
                lookup_fexit("fexit_udp4_lib_lookup", "__udp4_lib_lookup", V4_UDP),
                lookup_fexit("fexit_udp6_lib_lookup", "__udp6_lib_lookup", V6_UDP).optional(),
            ],
        },
        Hook {
            loses: None,
            programs: &[
                lookup_kretprobe(
                    "kretprobe_inet_lookup_established",
                    "__inet_lookup_established",
                    V4_ESTABLISHED,
                ),
                lookup_kretprobe(
                    "kretprobe_inet_lookup_listener",
                    "__inet_lookup_listener",
                    V4_LISTENER,
                ),
                lookup_kretprobe(
                    "kretprobe_inet6_lookup_established",
                    "__inet6_lookup_established",
                    V6_ESTABLISHED,
                )
                .optional(),
                lookup_kretprobe(
                    "kretprobe_inet6_lookup_listener",
                    "inet6_lookup_listener",
                    V6_LISTENER,
                )
                .optional(),
                lookup_kretprobe("kretprobe_udp4_lib_lookup", "__udp4_lib_lookup", V4_UDP),
                lookup_kretprobe("kretprobe_udp6_lib_lookup", "__udp6_lib_lookup", V6_UDP)
                    .optional(),
            ],
        },
    ],
    required: false,
    without: "inferred from the socket later hooks name",
};

pub const ESTABLISHED_RECEIVE: StageSpec = StageSpec {
    stage: StageId::EstablishedReceive,
    name: "established receive (tcp_probe)",
    // DepSurf: absent from 4.15, (sk, skb) in 4.18.
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("tcp_probe", 2, kernel(4, 18))],
    }],
    required: false,
    without: "established TCP packets not tied to their socket",
};

pub const SYN_ACK: StageSpec = StageSpec {
    stage: StageId::SynAck,
    name: "answer sent (SYN-ACK, time-wait ACK)",
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("net_dev_queue", 1, OLD)],
    }],
    required: false,
    without: "the listener a SYN reached and a time-wait socket's answers are not known",
};

pub const QUEUE: StageSpec = StageSpec {
    stage: StageId::Queue,
    name: "socket queue (sk_data_ready)",
    hooks: &[
        Hook {
            loses: None,
            programs: &[fentry("fentry_sock_def_readable", "sock_def_readable", OLD)],
        },
        Hook {
            loses: None,
            programs: &[kprobe("kprobe_sock_def_readable", "sock_def_readable", OLD)],
        },
        // 6.3: DepSurf has it in 6.5, not in 6.2; the backports project stubs
        // trace_sk_data_ready() out below 6.3. Measured: absent on 6.1.
        Hook {
            loses: None,
            programs: &[tp_btf("sk_data_ready", 1, kernel(6, 3))],
        },
    ],
    required: false,
    without: "delivery to a socket's queue not seen",
};

pub const TCP_STATE: StageSpec = StageSpec {
    stage: StageId::TcpState,
    name: "TCP state (inet_sock_set_state)",
    // DepSurf: absent from 4.15, (sk, oldstate, newstate) in 4.18.
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("inet_sock_set_state", 3, kernel(4, 18))],
    }],
    required: false,
    without: "no TCP state changes",
};

pub const READ: StageSpec = StageSpec {
    stage: StageId::Read,
    name: "read by a process",
    hooks: &[
        Hook {
            loses: None,
            programs: &[
                fexit("fexit_inet_recvmsg", "inet_recvmsg", OLD).needs(READER_REGS_RET),
                fexit("fexit_inet6_recvmsg", "inet6_recvmsg", OLD)
                    .needs(READER_REGS_RET)
                    .optional(),
            ],
        },
        // Before 5.17 (no bpf_get_func_ret) and 5.15 (no bpf_task_pt_regs): the return
        // value is the fexit context's slot after the arguments, the reader's registers
        // are read where bpf_task_pt_regs finds them, at the top of its kernel stack.
        Hook {
            loses: Some(
                "nothing where the registers are found: the reader's call, fd and byte count are \
                 read at the top of its kernel stack (x86-64 stacks of 16 or 32 KiB) instead of \
                 by bpf_task_pt_regs (5.15); where not found, a read is told without its call",
            ),
            programs: &[
                fexit("fexit_inet_recvmsg_stack", "inet_recvmsg", OLD),
                fexit("fexit_inet6_recvmsg_stack", "inet6_recvmsg", OLD).optional(),
            ],
        },
        // 6.3: "sock: add tracepoint for send recv length" (commit 6e6eda44b939), applied
        // to net-next in January 2023, the 6.3 cycle; DepSurf has it in 6.5, not in 6.2.
        // Measured: absent on 6.1 and 5.10.
        Hook {
            loses: None,
            programs: &[tp_btf("sock_recv_length", 3, kernel(6, 3)).needs(READER_REGS)],
        },
    ],
    required: false,
    without: "reads not seen",
};

pub const COPIED: StageSpec = StageSpec {
    stage: StageId::Copied,
    name: "TCP segment read (statistics only)",
    // DepSurf: in 4.4 (skb, len). Attached only when statistics are counted: it runs for
    // every recvmsg on the machine. The consumed count comes from the consume stage.
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("skb_copy_datagram_iovec", 2, OLD)],
    }],
    required: false,
    without: "TCP reads not counted",
};
