//! Receive-path functions a packet passes through: ip_rcv, ip_local_deliver, tcp_v4_rcv,
//! udp_rcv and their IPv6 twins. No tracepoint marks them; on kernels that allow it an fentry
//! program (or else a kprobe) on each records the time the packet entered it.
//!
//! One program per function and kind: an fentry program is bound to its target at load time.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use sockpath_ebpf::event::{Hop, SkbWhat};

use crate::hooks::skb::skb_event;

#[inline(always)]
fn hop(skb: u64, hop: Hop) {
    skb_event(SkbWhat::Hop, skb, |ev| ev.arg0 = hop as i32);
}

/// `$fentry` and `$kprobe` programs for a function whose argument `$arg` is the sk_buff.
macro_rules! hop_programs {
    ($fentry:ident, $kprobe:ident, $hop:expr, $arg:expr) => {
        #[fentry]
        pub fn $fentry(ctx: FEntryContext) -> u32 {
            hop(ctx.arg::<u64>($arg), $hop);
            0
        }

        #[kprobe]
        pub fn $kprobe(ctx: ProbeContext) -> u32 {
            if let Some(skb) = ctx.arg::<u64>($arg) {
                hop(skb, $hop);
            }
            0
        }
    };
}

// int ip_rcv(struct sk_buff *skb, struct net_device *dev, struct packet_type *pt, struct net_device *orig_dev)
hop_programs!(fentry_ip_rcv, kprobe_ip_rcv, Hop::IpRcv, 0);
// int ipv6_rcv(struct sk_buff *skb, struct net_device *dev, struct packet_type *pt, struct net_device *orig_dev)
hop_programs!(fentry_ipv6_rcv, kprobe_ipv6_rcv, Hop::Ipv6Rcv, 0);
// int ip_local_deliver(struct sk_buff *skb): the route said "local"
hop_programs!(
    fentry_ip_local_deliver,
    kprobe_ip_local_deliver,
    Hop::IpLocalDeliver,
    0
);
// int ip6_input(struct sk_buff *skb)
hop_programs!(fentry_ip6_input, kprobe_ip6_input, Hop::Ip6Input, 0);
// int tcp_v4_rcv(struct sk_buff *skb)
hop_programs!(fentry_tcp_v4_rcv, kprobe_tcp_v4_rcv, Hop::TcpV4Rcv, 0);
// int tcp_v6_rcv(struct sk_buff *skb) (a static function, called through the inet6 protocol table)
hop_programs!(fentry_tcp_v6_rcv, kprobe_tcp_v6_rcv, Hop::TcpV6Rcv, 0);
// int udp_rcv(struct sk_buff *skb)
hop_programs!(fentry_udp_rcv, kprobe_udp_rcv, Hop::UdpRcv, 0);
// int udpv6_rcv(struct sk_buff *skb)
hop_programs!(fentry_udpv6_rcv, kprobe_udpv6_rcv, Hop::Udpv6Rcv, 0);
