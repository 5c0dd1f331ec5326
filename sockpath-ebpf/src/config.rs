//! What user space hands the eBPF programs at load time: kernel struct offsets read from the
//! running kernel's BTF, the filter, and the names of the maps and counters both sides use.

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
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_private_data: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    /// `FEATURE_*` bits: what this kernel's hooks pass. The verifier reads this read-only
    /// global as a constant and drops the branches for arguments a kernel does not have.
    pub features: u32,
}

/// kfree_skb's tracepoint passes rx_sk (a fourth argument).
pub const FEATURE_KFREE_SKB_RX_SK: u32 = 1;
/// tcp_send_reset's tracepoint and tcp_v4/v6_send_reset() pass the reset reason.
pub const FEATURE_RESET_REASON: u32 = 2;

/// What to watch. Zero fields mean "any".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Source or destination port, host byte order.
    pub port: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    /// 4 or 6 when `addr` is set.
    pub addr_version: u8,
    /// Bytes of each packet to keep, from the link-layer header on (capped at SNAP_MAX).
    pub snaplen: u32,
    /// Source or destination address.
    pub addr: [u8; 16],
    /// Interface name, NUL-padded; empty = any.
    pub ifname: [u8; 16],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), made only of integers and byte arrays, with no implicit padding
    // (the size asserts below fail the build if one appears).
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::Filter {}
}

const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 42 * 4);
const _: () = assert!(core::mem::size_of::<Filter>() == 40);

/// Global variable names (EbpfLoader::override_global).
pub const GLOBAL_OFFSETS: &str = "OFFSETS";
pub const GLOBAL_FILTER: &str = "FILTER";

/// Map names user space opens.
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_COUNTERS: &str = "COUNTERS";
pub const MAP_WATCHED_TGIDS: &str = "WATCHED_TGIDS";
pub const MAP_SYSCALL_KINDS: &str = "SYSCALL_KINDS";

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
    pub const COUNT: u32 = 4;
}
