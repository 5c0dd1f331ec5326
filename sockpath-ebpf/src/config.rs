//! What user space hands the eBPF programs: at load time, kernel struct offsets read from the
//! running kernel's BTF and the snap length; at any time, the watched set; and the names of the
//! maps and counters both sides use.

/// Offsets (bytes) of the kernel struct fields the programs read.
///
/// Rust eBPF gets no CO-RE relocations (aya issue 349), so user space reads these from
/// /sys/kernel/btf/vmlinux at start-up and sets them as a global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    // struct sk_buff
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_len: u32,
    pub skb_data_len: u32,
    pub skb_mac_header: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    pub skb_protocol: u32,
    pub skb_dev: u32,
    pub skb_sk: u32,
    // struct net_device
    pub dev_ifindex: u32,
    pub dev_name: u32,
    pub dev_nd_net: u32,
    // struct net: ns.inum
    pub net_inum: u32,
    // struct sock_common (also the head of request_sock and inet_timewait_sock)
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_state: u32,
    pub skc_net: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    /// request_sock's rsk_listener (sock_common's skc_listener).
    pub skc_listener: u32,
    // struct sock
    pub sk_protocol: u32,
    pub sk_type: u32,
    pub sk_socket: u32,
    pub sk_err: u32,
    /// struct sock's sk_flags (enum sock_flags bits; SOCK_DEAD is bit 0).
    pub sk_flags: u32,
    /// struct sock's sk_reuseport_cb: set when the socket is in a SO_REUSEPORT group.
    pub sk_reuseport_cb: u32,
    /// struct inet_sock's inet_sport: the local port, still set after inet_put_port() cleared
    /// skc_num on the way to TCP_CLOSE.
    pub inet_sport: u32,
    // struct tcp_sock
    pub tcp_copied_seq: u32,
    // struct socket
    pub socket_sk: u32,
    /// From a `struct socket *` to its inode's i_ino (socket_alloc.vfs_inode + inode.i_ino).
    pub socket_ino: u32,
    // struct task_struct -> files_struct -> fdtable -> file -> inode
    pub task_files: u32,
    /// task_struct's stack: the base of the task's kernel stack, whose top holds the user
    /// registers the task entered the kernel with (read where bpf_task_pt_regs is missing).
    pub task_stack: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_private_data: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    /// struct inet_timewait_sock's tw_substate: FIN_WAIT2 or TIME_WAIT, what a time-wait
    /// socket's skc_state (always TIME_WAIT) does not say.
    pub tw_substate: u32,
    /// struct sock's sk_ack_backlog and sk_max_ack_backlog: a listener's accept queue, its
    /// length and its limit (the listen() backlog, capped by net.core.somaxconn).
    pub sk_ack_backlog: u32,
    pub sk_max_ack_backlog: u32,
    /// struct inet_connection_sock's icsk_accept_queue.qlen: a listener's SYN queue, the
    /// request sockets of handshakes in progress (its limit is sk_max_ack_backlog too).
    pub icsk_syn_qlen: u32,
    /// struct inet_timewait_sock's tw_timer.expires (jiffies): when the time-wait socket's
    /// timer fires (end of FIN_WAIT2 or of TIME_WAIT). 0: not found in this kernel's BTF.
    pub tw_timer_expires: u32,
    /// struct net's ipv4.sysctl_max_syn_backlog and ipv4.sysctl_tcp_syncookies: the listener's
    /// namespace's net.ipv4.tcp_max_syn_backlog and net.ipv4.tcp_syncookies, which
    /// tcp_conn_request() reads for each SYN. 0: not found in this kernel's BTF.
    pub net_max_syn_backlog: u32,
    pub net_syncookies: u32,
    /// `FEATURE_*` bits: what this kernel's hooks pass. The verifier reads this read-only
    /// global as a constant and drops the branches for arguments a kernel does not have.
    pub features: u32,
}

/// kfree_skb's tracepoint passes rx_sk (a fourth argument).
pub const FEATURE_KFREE_SKB_RX_SK: u32 = 1;
/// tcp_send_reset's tracepoint and tcp_v4/v6_send_reset() pass the reset reason.
pub const FEATURE_RESET_REASON: u32 = 2;
/// consume_skb's tracepoint passes the freeing location (a second argument, 6.3).
pub const FEATURE_CONSUME_LOCATION: u32 = 4;

/// The watched set's flags and protocols: the one entry of the `FILTER` array map, which user
/// space rewrites at run time (no reload) to change what is watched. The ports, addresses,
/// interfaces and owners are in maps of their own (`MAP_FILTER_*`). All zero (the map's state
/// before user space writes it) watches nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// `FILTER_*` bits.
    pub flags: u32,
    /// `PROTO_*` bits: the watched IP protocols, unless `FILTER_ANY_PROTO`.
    pub protos: u32,
}

/// Something is watched at all. Without it, device receive stops before reading the packet.
pub const FILTER_ACTIVE: u32 = 1;
/// Every port (the port bitmap is not consulted).
pub const FILTER_ANY_PORT: u32 = 1 << 1;
/// Every IP protocol, ICMP and others included.
pub const FILTER_ANY_PROTO: u32 = 1 << 2;
/// Every address (the address set is not consulted).
pub const FILTER_ANY_ADDR: u32 = 1 << 3;
/// The address set holds at least one IPv4 / IPv6 address (for sockets bound to a wildcard).
pub const FILTER_ADDR_V4: u32 = 1 << 4;
pub const FILTER_ADDR_V6: u32 = 1 << 5;
/// Every interface (the interface set is not consulted).
pub const FILTER_ANY_IFACE: u32 = 1 << 6;
/// Owner processes are watched: the socket calls of a process in the tgid set (or whose comm is
/// in the comm set) are reported whatever their socket.
pub const FILTER_OWNERS: u32 = 1 << 7;
/// The comm set is not empty.
pub const FILTER_COMMS: u32 = 1 << 8;
/// The local port of every socket an owner process binds, listens on, connects or accepts is
/// added to the port bitmap by the kernel itself, at once: a filter on owners alone learns the
/// ports its packets use before the first one arrives.
pub const FILTER_LEARN_PORTS: u32 = 1 << 9;

/// `FilterConfig::protos` bits.
pub const PROTO_TCP: u32 = 1;
pub const PROTO_UDP: u32 = 2;

/// The `PROTO_*` bit of an IP protocol (0 for those a filter cannot name).
#[inline(always)]
pub const fn proto_bit(proto: u8) -> u32 {
    match proto {
        crate::net::IPPROTO_TCP => PROTO_TCP,
        crate::net::IPPROTO_UDP => PROTO_UDP,
        _ => 0,
    }
}

/// The port bitmap: 65536 bits in u64 words, bit `p & 63` of word `p >> 6` for port `p`. An
/// array map: the verifier inlines array lookups, so testing a port costs no helper call.
pub const FILTER_PORT_WORDS: u32 = 65536 / 64;
/// Capacity of the address, interface, tgid and comm sets.
pub const FILTER_MAX_ADDRS: u32 = 256;
pub const FILTER_MAX_IFACES: u32 = 64;
pub const FILTER_MAX_TGIDS: u32 = 4096;
pub const FILTER_MAX_COMMS: u32 = 64;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), made only of integers, with no implicit padding (the size asserts
    // below fail the build if one appears).
    unsafe impl aya::Pod for super::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilterConfig {}
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 51 * 4);
const _: () = assert!(core::mem::size_of::<FilterConfig>() == 8);

/// Global variable names (EbpfLoader::override_global).
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
/// Bytes of each packet to keep, from the link-layer header on (capped at SNAP_MAX): a load-time
/// value, so the verifier knows the copy's bound.
pub const GLOBAL_SNAPLEN: &str = "SNAPLEN";

/// Map names user space opens.
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const MAP_WATCHED_TGIDS: &str = "WATCHED_TGIDS";
pub const MAP_SYSCALL_KINDS: &str = "SYSCALL_KINDS";
/// The watched set (see [`FilterConfig`]).
pub const MAP_FILTER: &str = "FILTER";
pub const MAP_FILTER_PORTS: &str = "FILTER_PORTS";
pub const MAP_FILTER_ADDRS: &str = "FILTER_ADDRS";
pub const MAP_FILTER_IFACES: &str = "FILTER_IFACES";
pub const MAP_FILTER_TGIDS: &str = "FILTER_TGIDS";
pub const MAP_FILTER_COMMS: &str = "FILTER_COMMS";

/// Syscall numbers the SYSCALL_KINDS array covers.
pub const MAX_SYSCALL_NR: u32 = 512;

/// Indices into the per-CPU COUNTERS array.
pub mod counter {
    /// netif_receive_skb invocations (every packet, matched or not).
    pub const PACKETS_SEEN: u32 = 0;
    /// Packets that passed the filter and started a journey.
    pub const PACKETS_MATCHED: u32 = 1;
    /// Events the ring buffer had no room for.
    pub const EVENTS_LOST: u32 = 2;
    /// Packets whose headers could not be read (journey not started).
    pub const READ_ERRORS: u32 = 3;
    /// Packets of a port the statistics map had no room for (`stats::STATS_MAX_PORTS`).
    pub const STATS_FULL: u32 = 4;
    pub const COUNT: u32 = 5;
}
