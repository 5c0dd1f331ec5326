//! Socket lookups and their results, on kernels with fexit (or else kretprobes): which socket
//! the kernel chose for the packet the CPU is processing, or that it found none.
//!
//! The lookups run inside the packet's NET_RX softirq (early demux in ip_rcv_finish(), then
//! tcp_v4_rcv()/udp_rcv()), so the CPU's current journey names the packet; user space checks
//! the socket found fits the packet's addresses.

use aya_ebpf::{
    macros::{fexit, kretprobe},
    programs::{FExitContext, RetProbeContext},
};
use sockpath_ebpf::event::{CallInfo, EventKind, LookupTable, SockEvent, SockWhat};

use crate::{
    emit,
    kernel::{offsets, read, sock},
};

#[inline(always)]
fn looked_up(table: LookupTable, found: u64) {
    let (flags, journey) = emit::current_journey();
    if journey == 0 {
        return;
    }
    let Some(mut entry) = emit::reserve::<SockEvent>() else {
        return;
    };
    // SAFETY: reserved memory; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.header = emit::header(
        EventKind::Sock,
        core::mem::size_of::<SockEvent>(),
        flags,
        journey,
    );
    ev.what = SockWhat::Lookup as u16;
    ev._pad = 0;
    ev.arg0 = table as i32;
    ev.arg1 = 0;
    ev.arg2 = 0;
    ev.skb = 0;
    ev.comm = [0; 16];
    ev.call = CallInfo::default();
    let o = offsets();
    sock::info_into(&mut ev.sock, found, o);
    sock::info_into(&mut ev.other, 0, o);
    if ev.sock.state == sock::TCP_TIME_WAIT {
        ev.arg1 = read::<u8>(found, o.tw_substate).unwrap_or(0) as i32;
        if let Some(left) = sock::tw_jiffies_left(found, o) {
            ev.arg2 = 1;
            ev.skb = left as u64;
        }
    } else if ev.sock.state == sock::TCP_LISTEN {
        // The accept queue and the SYN queue as the SYN finds them: a SYN that finds either
        // full is dropped (or, for the SYN queue with SYN cookies on, answered with a cookie).
        ev.arg1 = read::<u32>(found, o.sk_ack_backlog).unwrap_or(0) as i32;
        ev.arg2 = read::<u32>(found, o.sk_max_ack_backlog).unwrap_or(0);
        ev.skb = read::<u32>(found, o.icsk_syn_qlen).unwrap_or(0) as u64;
        if let Some((backlog, cookies)) = sock::syn_sysctls(found, o) {
            ev.call.enter_ns = 1;
            ev.call.count = backlog as u64;
            ev.call.fd = cookies as i32;
        }
    }
    entry.submit(emit::RB_FLAGS);
}

/// `$fexit` and `$kretprobe` programs for a lookup function returning `struct sock *`.
macro_rules! lookup_programs {
    ($fexit:ident, $kretprobe:ident, $table:expr) => {
        #[fexit]
        pub fn $fexit(ctx: FExitContext) -> u32 {
            if let Ok(sk) = ctx.ret::<u64>() {
                looked_up($table, sk);
            }
            0
        }

        #[kretprobe]
        pub fn $kretprobe(ctx: RetProbeContext) -> u32 {
            looked_up($table, ctx.ret::<u64>());
            0
        }
    };
}

// struct sock *__inet_lookup_established(const struct net *net, struct inet_hashinfo *hashinfo,
//     const __be32 saddr, const __be16 sport, const __be32 daddr, const u16 hnum, const int dif,
//     const int sdif)
lookup_programs!(
    fexit_inet_lookup_established,
    kretprobe_inet_lookup_established,
    LookupTable::Established
);
// struct sock *__inet_lookup_listener(const struct net *net, struct inet_hashinfo *hashinfo,
//     struct sk_buff *skb, int doff, const __be32 saddr, __be16 sport, const __be32 daddr,
//     const unsigned short hnum, const int dif, const int sdif)
lookup_programs!(
    fexit_inet_lookup_listener,
    kretprobe_inet_lookup_listener,
    LookupTable::Listener
);
// struct sock *__inet6_lookup_established(...)
lookup_programs!(
    fexit_inet6_lookup_established,
    kretprobe_inet6_lookup_established,
    LookupTable::Established
);
// struct sock *inet6_lookup_listener(...)
lookup_programs!(
    fexit_inet6_lookup_listener,
    kretprobe_inet6_lookup_listener,
    LookupTable::Listener
);
// struct sock *__udp4_lib_lookup(const struct net *net, __be32 saddr, __be16 sport,
//     __be32 daddr, __be16 dport, int dif, int sdif, struct udp_table *udptable,
//     struct sk_buff *skb)
lookup_programs!(
    fexit_udp4_lib_lookup,
    kretprobe_udp4_lib_lookup,
    LookupTable::Udp
);
// struct sock *__udp6_lib_lookup(...)
lookup_programs!(
    fexit_udp6_lib_lookup,
    kretprobe_udp6_lib_lookup,
    LookupTable::Udp
);
