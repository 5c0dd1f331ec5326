//! The hook table's rows for the packet's way in: device receive and its softirq, the route,
//! IP receive and local delivery, the transport's receive.

use sockpath_ebpf::event::Hop;

use crate::hooks::{
    program::{hop_fentry, hop_kprobe, kernel, tp_btf, tracepoint, Hook, StageSpec, OLD},
    StageId,
};

pub const DEVICE_RECEIVE: StageSpec = StageSpec {
    stage: StageId::DeviceReceive,
    name: "device receive (netif_receive_skb)",
    hooks: &[Hook {
        loses: None,
        programs: &[tp_btf("netif_receive_skb", 1, OLD)],
    }],
    required: true,
    without: "no journeys at all",
};

pub const SOFTIRQ: StageSpec = StageSpec {
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
};

pub const ROUTE: StageSpec = StageSpec {
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
};

pub const IP_RECEIVE: StageSpec = StageSpec {
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
};

pub const LOCAL_DELIVER: StageSpec = StageSpec {
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
};

pub const TRANSPORT: StageSpec = StageSpec {
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
};
