//! The hook table's rows for the ends other than a read: drops, consumed packets, resets sent
//! and received, ICMP errors, full queues, sockets destroyed, and the system calls.

use sockpath_ebpf::event::QueueFullHook;

use crate::hooks::{
    program::{
        fentry, kernel, kprobe, syscalls, tp_btf, tp_btf_named, Hook, Reports, StageSpec, OLD,
    },
    StageId,
};

pub const DROP: StageSpec = StageSpec {
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
};

pub const CONSUMED: StageSpec = StageSpec {
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
};

pub const RESET_SENT: StageSpec = StageSpec {
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
};

pub const RESET_RECEIVED: StageSpec = StageSpec {
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
};

pub const ICMP_SENT: StageSpec = StageSpec {
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
};

pub const QUEUE_FULL: StageSpec = StageSpec {
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
};

pub const DESTROYED: StageSpec = StageSpec {
    stage: StageId::Destroyed,
    name: "socket destroyed (tcp_destroy_sock)",
    // DepSurf: in 4.15.
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("tcp_destroy_sock", 1, kernel(4, 15))],
    }],
    required: false,
    without: "socket ends not seen",
};

pub const SYSCALLS: StageSpec = StageSpec {
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
};
