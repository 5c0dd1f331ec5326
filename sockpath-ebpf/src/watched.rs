//! What is watched now: the filter set in the `FILTER*` maps, which user space rewrites at run
//! time. The predicates themselves are the shared ones (`sockpath_ebpf::filter`); this module
//! answers their questions from the maps, and decides as early and as cheaply as possible that
//! an event is not wanted, so unrelated traffic costs a few instructions.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use sockpath_ebpf::{
    config::{
        proto_bit, FILTER_ACTIVE, FILTER_ADDR_V4, FILTER_ADDR_V6, FILTER_ANY_ADDR,
        FILTER_ANY_IFACE, FILTER_ANY_PORT, FILTER_ANY_PROTO, FILTER_COMMS, FILTER_LEARN_PORTS,
        FILTER_OWNERS,
    },
    filter::FilterSet,
    net::AddrKey,
};

use crate::maps::{
    FILTER, FILTER_ADDRS, FILTER_COMMS as COMMS, FILTER_IFACES, FILTER_PORTS, FILTER_TGIDS, SNAPLEN,
};

/// The set's flags and protocols, copied from the `FILTER` map at the start of a program run
/// (8 bytes; the ports, addresses and owners are looked up in their maps when asked).
#[derive(Clone, Copy)]
pub struct Watched {
    flags: u32,
    protos: u32,
}

/// The watched set now. A missing entry (impossible for an array map) watches nothing.
#[inline(always)]
pub fn get() -> Watched {
    match FILTER.get(0) {
        Some(c) => Watched {
            flags: c.flags,
            protos: c.protos,
        },
        None => Watched {
            flags: 0,
            protos: 0,
        },
    }
}

/// Bytes of each packet to keep (a load-time constant to the verifier).
#[inline(always)]
pub fn snaplen() -> u32 {
    SNAPLEN.load()
}

impl Watched {
    #[inline(always)]
    fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Anything is watched at all: the first check on every packet.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.has(FILTER_ACTIVE)
    }

    /// A received packet's interface (NUL-padded name, see `kernel::skb::device`).
    #[inline(always)]
    pub fn ifname_matches(&self, name: &[u8; 16]) -> bool {
        // SAFETY: the value is not kept past the lookup.
        self.has(FILTER_ANY_IFACE) || unsafe { FILTER_IFACES.get(name) }.is_some()
    }

    /// The current process is one whose sockets are watched (`--pid`, `--comm`).
    #[inline(always)]
    pub fn owner_matches(&self) -> bool {
        if !self.has(FILTER_OWNERS) {
            return false;
        }
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        if FILTER_TGIDS.get_ptr(tgid).is_some() {
            return true;
        }
        if !self.has(FILTER_COMMS) {
            return false;
        }
        match bpf_get_current_comm() {
            Ok(comm) => COMMS.get_ptr(comm).is_some(),
            Err(_) => false,
        }
    }

    /// An owner process's socket got local port `port`: watch it from now on, if the set asks
    /// the kernel to learn owners' ports. A plain read-modify-write of the word (kernels before
    /// 5.12 have no atomic or): a concurrent update of the same word by another CPU or by user
    /// space can lose a bit, which the next bind/listen/connect/accept or /proc scan restores.
    #[inline(always)]
    pub fn learn_port(&self, port: u16) {
        if port == 0 || !self.has(FILTER_LEARN_PORTS) {
            return;
        }
        if let Some(w) = FILTER_PORTS.get_ptr_mut((port >> 6) as u32) {
            let bit = 1u64 << (port & 63);
            // SAFETY: a valid array slot.
            unsafe {
                let v = core::ptr::read_volatile(w);
                if v & bit == 0 {
                    core::ptr::write_volatile(w, v | bit);
                }
            }
        }
    }
}

impl FilterSet for Watched {
    #[inline(always)]
    fn any_port(&self) -> bool {
        self.has(FILTER_ANY_PORT)
    }

    #[inline(always)]
    fn has_port(&self, port: u16) -> bool {
        match FILTER_PORTS.get((port >> 6) as u32) {
            Some(w) => *w & (1u64 << (port & 63)) != 0,
            None => false,
        }
    }

    #[inline(always)]
    fn has_proto(&self, proto: u8) -> bool {
        self.has(FILTER_ANY_PROTO) || self.protos & proto_bit(proto) != 0
    }

    #[inline(always)]
    fn any_addr(&self) -> bool {
        self.has(FILTER_ANY_ADDR)
    }

    #[inline(always)]
    fn has_v4_addr(&self) -> bool {
        self.has(FILTER_ADDR_V4)
    }

    #[inline(always)]
    fn has_v6_addr(&self) -> bool {
        self.has(FILTER_ADDR_V6)
    }

    #[inline(always)]
    fn has_addr(&self, addr: &AddrKey) -> bool {
        // SAFETY: the value is not kept past the lookup.
        unsafe { FILTER_ADDRS.get(addr) }.is_some()
    }
}
