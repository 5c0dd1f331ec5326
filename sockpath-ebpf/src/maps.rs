//! Maps and globals shared by the hooks.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    Global,
};
use sockpath_ebpf::{
    config::{
        counter, FilterConfig, KernelOffsets, FILTER_MAX_ADDRS, FILTER_MAX_COMMS,
        FILTER_MAX_IFACES, FILTER_MAX_TGIDS, FILTER_PORT_WORDS, MAX_SYSCALL_NR,
    },
    event::{PacketEvent, SyscallEvent},
    net::AddrKey,
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
    sk_flags: 0,
    sk_reuseport_cb: 0,
    inet_sport: 0,
    tcp_copied_seq: 0,
    socket_sk: 0,
    socket_ino: 0,
    task_files: 0,
    task_stack: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_private_data: 0,
    file_inode: 0,
    inode_mode: 0,
    inode_ino: 0,
    tw_substate: 0,
    sk_ack_backlog: 0,
    sk_max_ack_backlog: 0,
    icsk_syn_qlen: 0,
    tw_timer_expires: 0,
    net_max_syn_backlog: 0,
    net_syncookies: 0,
    features: 0,
});

/// Set by user space from the command line before load (`config::GLOBAL_SNAPLEN`).
#[unsafe(no_mangle)]
pub static SNAPLEN: Global<u32> = Global::new(0);

/// The watched set: flags and protocols (`config::FilterConfig`), rewritten by user space at run
/// time. Read once by each program run that filters.
#[map]
pub static FILTER: Array<FilterConfig> = Array::with_max_entries(1, 0);

/// The watched ports, one bit each (`config::FILTER_PORT_WORDS` words).
#[map]
pub static FILTER_PORTS: Array<u64> = Array::with_max_entries(FILTER_PORT_WORDS, 0);

/// The watched addresses, in `net::AddrKey` form (IPv4 v4-mapped).
#[map]
pub static FILTER_ADDRS: HashMap<AddrKey, u8> = HashMap::with_max_entries(FILTER_MAX_ADDRS, 0);

/// The watched interfaces' names, NUL-padded to 16 bytes.
#[map]
pub static FILTER_IFACES: HashMap<[u8; 16], u8> = HashMap::with_max_entries(FILTER_MAX_IFACES, 0);

/// Processes (tgid) whose sockets are watched (`--pid`).
#[map]
pub static FILTER_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(FILTER_MAX_TGIDS, 0);

/// Process names (comm, NUL-padded) whose sockets are watched (`--comm`).
#[map]
pub static FILTER_COMMS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(FILTER_MAX_COMMS, 0);

/// All events, in the order the CPUs produced them. User space sizes it (map_max_entries).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Per-CPU counters, indexed by `config::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// A packet that started a journey, in the slot its data buffer's address hashes to.
///
/// The fingerprint (head, network-header offset, port bytes) tells a later hook whether the
/// sk_buff at that address is still the same packet: sk_buffs are freed without any tracepoint
/// on many paths (TCP's pure ACKs and read data) and their addresses are reused at once.
///
/// A direct-mapped array rather than a hash map: every watched packet writes an entry, and an
/// array slot costs no lock, no hashing helper and no LRU bookkeeping. A colliding packet
/// overwrites the older entry, which only ends that older packet's tracking early (its journey
/// is then marked by what it is missing, like any journey whose hooks stop firing).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Tracked {
    /// The sk_buff address; 0 while the slot is free or being written.
    pub skb: u64,
    pub journey: u64,
    pub head: u64,
    pub nh_off: u16,
    pub l4_off: u16,
    pub ports: u32,
    /// For the statistics (`tally`): when device receive saw it, when it was queued on a
    /// socket (0: not yet), its port's key, and `tally::T_*` bits of what was counted.
    pub rx_ns: u64,
    pub queued_ns: u64,
    pub key: u32,
    pub counted: u32,
    /// `SAMPLE_*`: whether the packet's journey is followed (`watch --sample N`).
    pub sample: u32,
    pub _pad: u32,
}

/// `Tracked::sample`: the packet is followed, every hook reports it.
pub const SAMPLE_FOLLOWED: u32 = 0;
/// Matched but not among the one in N followed: only its end (drop, reset sent, ICMP error,
/// full queue) is reported, by the first hook that sees it, which sends its device-receive
/// event first (late, `CTX_SAMPLED_OUT`).
pub const SAMPLE_OUT: u32 = 1;
/// Sampled out, and its end was reported: the hooks after that report it too.
pub const SAMPLE_TOLD: u32 = 2;

pub const TRACKED_SLOTS: u32 = 1 << 16;

#[map]
pub static TRACKED: Array<Tracked> = Array::with_max_entries(TRACKED_SLOTS, 0);

/// The slot of a packet, from its data buffer's address (skb->head): the sk_buff address
/// itself cannot be hashed, the verifier allows no arithmetic but adding on a typed kernel
/// pointer. Buffers are 64-byte aligned; folding in higher bits spreads pages and slabs.
#[inline(always)]
pub fn tracked_slot(head: u64) -> u32 {
    ((head >> 6) ^ (head >> 18)) as u32 & (TRACKED_SLOTS - 1)
}

/// What the CPU is doing right now.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct RxCtx {
    /// Non-zero while the CPU serves the NET_RX softirq.
    pub in_net_rx: u32,
    /// Non-zero once a watched packet came by in this NET_RX softirq: until then, socket and
    /// packet hooks firing in it concern unwatched packets and return at once.
    pub watched: u32,
    /// The journey of the packet netif_receive_skb last announced in this softirq (0: unwatched).
    pub journey: u64,
    /// Per-CPU journey sequence number.
    pub seq: u64,
    /// The device of the last watched packet on this CPU, with its ifindex, namespace and
    /// name: consecutive packets almost always come from the same device, and reading these
    /// through its pointers costs four reads.
    pub dev: u64,
    pub ifindex: u32,
    pub netns: u32,
    pub ifname: [u8; 16],
    /// For the statistics (`tally`), of the packet `journey` names: when device receive saw
    /// it, its port's key, its slot in TRACKED, and whether its queueing was counted.
    pub rx_ns: u64,
    pub key: u32,
    pub slot: u32,
    pub queued: u32,
    /// Non-zero while the packet `journey` names was matched but not followed
    /// (`watch --sample N`): the socket, lookup and route hooks say nothing of it.
    pub sampled_out: u32,
    /// Matched packets still to let pass before the next followed one (`watch --sample N`):
    /// per CPU, so that deciding costs no atomic operation.
    pub sample_left: u64,
}

#[map]
pub static RX_CTX: PerCpuArray<RxCtx> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for building a packet event (too big for the 512-byte BPF stack).
#[map]
pub static PACKET_SCRATCH: PerCpuArray<PacketEvent> = PerCpuArray::with_max_entries(1, 0);

/// A zeroed syscall event to start each call's entry in PENDING_SYSCALLS from (too big for the
/// 512-byte BPF stack). Never written.
#[map]
pub static SYSCALL_ZERO: PerCpuArray<SyscallEvent> = PerCpuArray::with_max_entries(1, 0);

/// Syscalls in flight, by thread id: filled at entry, completed and sent at exit (which always
/// comes, even for a thread killed in the call), so a plain hash map without LRU upkeep.
#[map]
pub static PENDING_SYSCALLS: HashMap<u32, SyscallEvent> = HashMap::with_max_entries(8192, 0);

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
