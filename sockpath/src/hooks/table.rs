//! The hook table: every program of the eBPF object, once.
//!
//! Where the kernel versions come from (the release each attach point first had what its
//! program reads):
//! - "DepSurf": the DepSurf dataset of tracepoint prototypes and event layouts in Ubuntu's
//!   kernels 4.4 to 6.8 (sampled releases: 4.4, 4.8, 4.10, 4.13, 4.15, 4.18, 5.0, 5.3, 5.4, 5.8,
//!   5.11, 5.13, 5.15, 5.19, 6.2, 6.5, 6.8). For attach points it lists in 4.4 the version given
//!   is that oldest one checked; every program needs the ring buffer (5.8) anyway.
//! - "net-next-X": the networking pull request merged for release X, which lists the commit.
//! - "lttng": lttng-modules' instrumentation, which guards each tracepoint prototype by the
//!   kernel version that introduced it.
//! - "measured": what `sockpath probes` and the integration tests showed on Debian's 5.10, 6.1
//!   and 6.12 kernels under the VM runner, and on the 6.18 host.

use sockpath_ebpf::event::{Hop, LookupTable, QueueFullHook};

use super::{
    program::{
        fentry, fexit, hop_fentry, hop_kprobe, kernel, kprobe, lookup_fexit, lookup_kretprobe,
        syscalls, tp_btf, tp_btf_named, tracepoint, Hook, Reports, StageSpec, CURRENT_TASK_BTF,
        FUNC_RET, OLD, TASK_PT_REGS,
    },
    StageId,
};

/// Needs of the read hooks: the reader's system call comes from its saved registers.
const READER_REGS: &[super::program::Need] = &[CURRENT_TASK_BTF, TASK_PT_REGS];
/// And of the fexit read hooks, which also take inet_recvmsg's return from bpf_get_func_ret.
const READER_REGS_RET: &[super::program::Need] = &[CURRENT_TASK_BTF, TASK_PT_REGS, FUNC_RET];

const V4_ESTABLISHED: Reports = Reports::Lookup(LookupTable::Established, 4);
const V4_LISTENER: Reports = Reports::Lookup(LookupTable::Listener, 4);
const V6_ESTABLISHED: Reports = Reports::Lookup(LookupTable::Established, 6);
const V6_LISTENER: Reports = Reports::Lookup(LookupTable::Listener, 6);
const V4_UDP: Reports = Reports::Lookup(LookupTable::Udp, 4);
const V6_UDP: Reports = Reports::Lookup(LookupTable::Udp, 6);

/// Every stage, in journey order, with its hooks preferred first (fentry/fexit, then
/// kprobe/kretprobe, then a tracepoint). IPv6 programs are optional: an IPv4 journey does not
/// need them, and a kernel may inline them away.
pub static TABLE: &[StageSpec] = &[
    StageSpec {
        stage: StageId::DeviceReceive,
        name: "device receive (netif_receive_skb)",
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("netif_receive_skb", 1, OLD)],
        }],
        required: true,
        without: "no journeys at all",
    },
    StageSpec {
        stage: StageId::Softirq,
        name: "NET_RX softirq context",
        hooks: &[Hook {
            loses: None,
            programs: &[
                tp_btf("softirq_entry", 1, OLD),
                tp_btf("softirq_exit", 1, OLD),
            ],
        }],
        required: true,
        without: "socket events cannot be tied to the packet that caused them",
    },
    StageSpec {
        stage: StageId::Route,
        name: "input route (fib_table_lookup)",
        // The program reads the record at fixed offsets: the ports at 56 and 58 since 5.3
        // (DepSurf: gw4/gw6 replaced gw/saddr between 5.0 and 5.3), the device name as a
        // char[16] at 60 since "tracing/ipv4/ipv6: Use static array for name field in
        // fib*_lookup_table event" (July 2022, the 6.0 merge window; DepSurf: a __data_loc on
        // 5.19, char[16] on 6.2). Older kernels attach it but name a wrong device.
        hooks: &[Hook {
            loses: None,
            programs: &[tracepoint(
                "fib_table_lookup",
                "fib/fib_table_lookup",
                kernel(6, 0),
            )],
        }],
        required: false,
        without: "no routing stage",
    },
    StageSpec {
        stage: StageId::IpReceive,
        name: "IP receive (ip_rcv)",
        hooks: &[
            Hook {
                loses: None,
                programs: &[
                    hop_fentry("fentry_ip_rcv", Hop::IpRcv),
                    hop_fentry("fentry_ipv6_rcv", Hop::Ipv6Rcv).optional(),
                ],
            },
            Hook {
                loses: None,
                programs: &[
                    hop_kprobe("kprobe_ip_rcv", Hop::IpRcv),
                    hop_kprobe("kprobe_ipv6_rcv", Hop::Ipv6Rcv).optional(),
                ],
            },
        ],
        required: false,
        without: "inferred: no tracepoint at ip_rcv",
    },
    StageSpec {
        stage: StageId::LocalDeliver,
        name: "local delivery (ip_local_deliver)",
        hooks: &[
            Hook {
                loses: None,
                programs: &[
                    hop_fentry("fentry_ip_local_deliver", Hop::IpLocalDeliver),
                    hop_fentry("fentry_ip6_input", Hop::Ip6Input).optional(),
                ],
            },
            Hook {
                loses: None,
                programs: &[
                    hop_kprobe("kprobe_ip_local_deliver", Hop::IpLocalDeliver),
                    hop_kprobe("kprobe_ip6_input", Hop::Ip6Input).optional(),
                ],
            },
        ],
        required: false,
        without: "inferred: no tracepoint at ip_local_deliver",
    },
    StageSpec {
        stage: StageId::Transport,
        name: "transport receive (tcp_v4_rcv, udp_rcv)",
        hooks: &[
            Hook {
                loses: None,
                programs: &[
                    hop_fentry("fentry_tcp_v4_rcv", Hop::TcpV4Rcv),
                    hop_fentry("fentry_tcp_v6_rcv", Hop::TcpV6Rcv).optional(),
                    hop_fentry("fentry_udp_rcv", Hop::UdpRcv),
                    hop_fentry("fentry_udpv6_rcv", Hop::Udpv6Rcv).optional(),
                ],
            },
            Hook {
                loses: None,
                programs: &[
                    hop_kprobe("kprobe_tcp_v4_rcv", Hop::TcpV4Rcv),
                    hop_kprobe("kprobe_tcp_v6_rcv", Hop::TcpV6Rcv).optional(),
                    hop_kprobe("kprobe_udp_rcv", Hop::UdpRcv),
                    hop_kprobe("kprobe_udpv6_rcv", Hop::Udpv6Rcv).optional(),
                ],
            },
        ],
        required: false,
        without: "inferred: no tracepoint at tcp_v4_rcv/udp_rcv",
    },
    StageSpec {
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
    },
    StageSpec {
        stage: StageId::EstablishedReceive,
        name: "established receive (tcp_probe)",
        // DepSurf: absent from 4.15, (sk, skb) in 4.18.
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("tcp_probe", 2, kernel(4, 18))],
        }],
        required: false,
        without: "established TCP packets not tied to their socket",
    },
    StageSpec {
        stage: StageId::SynAck,
        name: "answer sent (SYN-ACK, time-wait ACK)",
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("net_dev_queue", 1, OLD)],
        }],
        required: false,
        without: "the listener a SYN reached and a time-wait socket's answers are not known",
    },
    StageSpec {
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
    },
    StageSpec {
        stage: StageId::TcpState,
        name: "TCP state (inet_sock_set_state)",
        // DepSurf: absent from 4.15, (sk, oldstate, newstate) in 4.18.
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("inet_sock_set_state", 3, kernel(4, 18))],
        }],
        required: false,
        without: "no TCP state changes",
    },
    StageSpec {
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
    },
    StageSpec {
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
    },
    StageSpec {
        stage: StageId::Drop,
        name: "drop with reason (kfree_skb)",
        // The reason argument: 5.17 (lttng; DepSurf: two arguments in 5.15, three in 5.19).
        // The fourth (rx_sk, 6.11 by lttng) is read only where BTF shows it.
        hooks: &[
            Hook {
                loses: None,
                programs: &[tp_btf("kfree_skb", 3, kernel(5, 17))],
            },
            // Before 5.17 the tracepoint passes (skb, location) only (DepSurf: in 4.4).
            Hook {
                loses: Some(
                    "the drop reason (5.17): a drop is told with its place only, \
                     \"dropped at tcp_v4_rcv+0x99, reason not given by this kernel\"",
                ),
                programs: &[tp_btf_named("kfree_skb_no_reason", "kfree_skb", 2, OLD)],
            },
        ],
        required: false,
        without: "drops not seen",
    },
    StageSpec {
        stage: StageId::Consumed,
        name: "consumed (consume_skb)",
        // skb:consume_skb is older than the ring buffer (DepSurf: in 4.4). Its second argument,
        // the location, came with "net: add location to trace_consume_skb()" (net-next-6.3);
        // it is read only where BTF shows it.
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("consume_skb", 1, OLD)],
        }],
        required: false,
        without: "packets the kernel freed after processing them end with nothing observed",
    },
    StageSpec {
        stage: StageId::ResetSent,
        name: "reset sent (tcp_v4_send_reset)",
        hooks: &[
            Hook {
                loses: None,
                programs: &[
                    fentry("fentry_tcp_v4_send_reset", "tcp_v4_send_reset", OLD),
                    fentry("fentry_tcp_v6_send_reset", "tcp_v6_send_reset", OLD).optional(),
                ],
            },
            Hook {
                loses: None,
                programs: &[
                    kprobe("kprobe_tcp_v4_send_reset", "tcp_v4_send_reset", OLD),
                    kprobe("kprobe_tcp_v6_send_reset", "tcp_v6_send_reset", OLD).optional(),
                ],
            },
            // The reason argument: net-next-6.10 ("Add reset reasons for tracing what caused a
            // TCP reset to be sent"; DepSurf: two arguments up to 6.8). Before it the
            // tracepoint also skipped the resets sent when no socket matched.
            Hook {
                loses: None,
                programs: &[tp_btf("tcp_send_reset", 3, kernel(6, 10))],
            },
        ],
        required: false,
        without: "resets sent not seen",
    },
    StageSpec {
        stage: StageId::ResetReceived,
        name: "reset received",
        hooks: &[
            Hook {
                loses: None,
                programs: &[
                    // DepSurf: in 4.15.
                    tp_btf("tcp_receive_reset", 1, kernel(4, 15)).reports(Reports::ResetReceived),
                    // net-next-5.14 ("add trace points: socket errors via sk_error_report");
                    // DepSurf: absent from 5.13, in 5.15. Measured: absent on 5.10.
                    tp_btf("inet_sk_error_report", 1, kernel(5, 14)).reports(Reports::ErrorReport),
                ],
            },
            // Before 5.14: the error a RST reports is told from the socket's state at
            // tcp_receive_reset, as tcp_reset() sets it right after that tracepoint.
            Hook {
                loses: Some(
                    "errors reported to a socket's user for other causes than a RST received \
                     (inet_sk_error_report, 5.14); a RST's error is told from the socket's state \
                     as tcp_reset() sets it",
                ),
                programs: &[
                    tp_btf_named(
                        "tcp_receive_reset_alone",
                        "tcp_receive_reset",
                        1,
                        kernel(4, 15),
                    )
                    .reports(Reports::ResetReceived),
                    tp_btf_named("tcp_reset_error", "tcp_receive_reset", 1, kernel(4, 15))
                        .reports(Reports::ErrorReport),
                ],
            },
        ],
        required: false,
        without: "resets received not seen",
    },
    StageSpec {
        stage: StageId::IcmpSent,
        name: "ICMP error sent (__icmp_send)",
        hooks: &[
            Hook {
                loses: None,
                programs: &[fentry("fentry_icmp_send", "__icmp_send", OLD)],
            },
            Hook {
                loses: None,
                programs: &[kprobe("kprobe_icmp_send", "__icmp_send", OLD)],
            },
            // net-next-6.10 adds include/trace/events/icmp.h ("net/ipv4: add tracepoint for
            // icmp_send"); DepSurf: absent up to 6.8. Stable kernels got it later (6.6.81).
            Hook {
                loses: None,
                programs: &[tp_btf("icmp_send", 3, kernel(6, 10))],
            },
        ],
        required: false,
        without: "ICMP port unreachable not seen",
    },
    StageSpec {
        stage: StageId::QueueFull,
        name: "socket queue full",
        hooks: &[Hook {
            loses: None,
            programs: &[
                tp_btf("sock_rcvqueue_full", 2, OLD)
                    .reports(Reports::QueueFull(QueueFullHook::SockRcvqueueFull)),
                // The skb argument: 6.10 (lttng; net-next-6.10 changes trace/events/udp.h;
                // DepSurf: (rc, sk) up to 6.8). Without it the packet cannot be named.
                tp_btf("udp_fail_queue_rcv_skb", 3, kernel(6, 10))
                    .reports(Reports::QueueFull(QueueFullHook::UdpFailQueueRcvSkb))
                    .optional(),
            ],
        }],
        required: false,
        without: "full receive queues not seen",
    },
    StageSpec {
        stage: StageId::Destroyed,
        name: "socket destroyed (tcp_destroy_sock)",
        // DepSurf: in 4.15.
        hooks: &[Hook {
            loses: None,
            programs: &[tp_btf("tcp_destroy_sock", 1, kernel(4, 15))],
        }],
        required: false,
        without: "socket ends not seen",
    },
    StageSpec {
        stage: StageId::Syscalls,
        name: "socket system calls",
        hooks: &[Hook {
            loses: None,
            programs: &[
                syscalls("sys_enter", false, false, OLD),
                syscalls("sys_exit", true, false, OLD),
                // accept's own programs: see sockpath-ebpf's hooks/syscalls.rs.
                syscalls("sys_enter_accept", false, true, OLD),
                syscalls("sys_exit_accept", true, true, OLD),
            ],
        }],
        required: false,
        without: "no syscalls, owners of new sockets unknown",
    },
];

/// The table's row for `stage`.
#[cfg(test)]
pub fn spec(stage: StageId) -> &'static StageSpec {
    TABLE
        .iter()
        .find(|s| s.stage == stage)
        .expect("every stage has a row in the hook table")
}
