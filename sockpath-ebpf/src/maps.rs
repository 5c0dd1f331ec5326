//! Maps and globals shared by the hooks.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use sockpath_ebpf::{
    config::{counter, Filter, KernelOffsets, MAX_SYSCALL_NR},
    event::{CallInfo, PacketEvent, SyscallEvent},
};

/// Set by user space from the running kernel's BTF before load.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    skb_head: 0,
    skb_data: 0,
    skb_len: 0,
    skb_data_len: 0,
    skb_mac_header: 0,
    skb_network_header: 0,
    skb_transport_header: 0,
    skb_protocol: 0,
    skb_dev: 0,
    skb_sk: 0,
    dev_ifindex: 0,
    dev_name: 0,
    dev_nd_net: 0,
    net_inum: 0,
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_num: 0,
    skc_family: 0,
    skc_state: 0,
    skc_net: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    skc_listener: 0,
    sk_protocol: 0,
    sk_type: 0,
    sk_socket: 0,
    sk_err: 0,
    sk_reuseport_cb: 0,
    inet_sport: 0,
    tcp_copied_seq: 0,
    socket_sk: 0,
    socket_ino: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_private_data: 0,
    file_inode: 0,
    inode_mode: 0,
    inode_ino: 0,
    features: 0,
});

/// Set by user space from the command line before load.
#[unsafe(no_mangle)]
pub static FILTER: Global<Filter> = Global::new(Filter {
    port: 0,
    proto: 0,
    addr_version: 0,
    snaplen: 0,
    addr: [0; 16],
    ifname: [0; 16],
});

/// All events, in the order the CPUs produced them. User space sizes it (map_max_entries).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Per-CPU counters, indexed by `config::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// A packet that started a journey, keyed by its sk_buff address.
///
/// The fingerprint (head, network-header offset, port bytes) tells a later hook whether the
/// sk_buff at that address is still the same packet: sk_buffs are freed without any tracepoint
/// on many paths (TCP's pure ACKs and read data) and their addresses are reused at once.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Tracked {
    pub journey: u64,
    pub head: u64,
    pub nh_off: u16,
    pub l4_off: u16,
    pub ports: u32,
}

#[map]
pub static TRACKED: LruHashMap<u64, Tracked> = LruHashMap::with_max_entries(65536, 0);

/// What the CPU is doing right now.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct RxCtx {
    /// Non-zero while the CPU serves the NET_RX softirq.
    pub in_net_rx: u32,
    pub _pad: u32,
    /// The journey of the packet netif_receive_skb last announced in this softirq (0: unwatched).
    pub journey: u64,
    /// Per-CPU journey sequence number.
    pub seq: u64,
}

#[map]
pub static RX_CTX: PerCpuArray<RxCtx> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for building a packet event (too big for the 512-byte BPF stack).
#[map]
pub static PACKET_SCRATCH: PerCpuArray<PacketEvent> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for building a syscall event at entry.
#[map]
pub static SYSCALL_SCRATCH: PerCpuArray<SyscallEvent> = PerCpuArray::with_max_entries(1, 0);

/// Syscalls in flight, by thread id: filled at entry, completed and sent at exit.
#[map]
pub static PENDING_SYSCALLS: LruHashMap<u32, SyscallEvent> = LruHashMap::with_max_entries(8192, 0);

/// Read-family calls in flight, by thread id: the read they make is reported with them.
#[map]
pub static READ_CALLS: LruHashMap<u32, CallInfo> = LruHashMap::with_max_entries(8192, 0);

/// Processes that own a watched socket: only their read/write/close calls are followed.
/// User space seeds it with the owners of sockets that existed before start-up.
#[map]
pub static WATCHED_TGIDS: LruHashMap<u32, u8> = LruHashMap::with_max_entries(4096, 0);

/// syscall number -> `SyscallKind` (0 = not followed), filled by user space for the running
/// architecture.
#[map]
pub static SYSCALL_KINDS: Array<u8> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer on this CPU while the program runs.
        unsafe { *c += 1 };
    }
}
