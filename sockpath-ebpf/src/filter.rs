//! The in-kernel filter: decide as early and as cheaply as possible that an event is not wanted,
//! so unrelated traffic costs a few instructions.

use sockpath_ebpf::{config::Filter, event::SockInfo};

use crate::{kernel::skb::Flow, maps::FILTER};

/// The filter global, by reference (see `kernel::offsets` for why).
#[inline(always)]
pub fn get() -> &'static Filter {
    let p: *const Filter = (&FILTER as *const aya_ebpf::Global<Filter>).cast();
    // SAFETY: Global<T> is repr(transparent) over an initialised T.
    unsafe { &*core::ptr::read_volatile(&p) }
}

#[inline(always)]
fn addr_eq(a: &[u8; 16], b: &[u8; 16], version: u8) -> bool {
    if version == 4 {
        a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
    } else {
        let mut i = 0;
        while i < 16 {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
}

#[inline(always)]
fn is_zero(a: &[u8; 16]) -> bool {
    let mut i = 0;
    while i < 16 {
        if a[i] != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// Port, protocol and address checks for a received packet (the interface is checked apart, as
/// it costs a read of the device name).
#[inline(always)]
pub fn packet_matches(f: &Filter, flow: &Flow) -> bool {
    if f.port != 0 && flow.sport != f.port && flow.dport != f.port {
        return false;
    }
    if f.proto != 0 && flow.l4_proto != f.proto {
        return false;
    }
    if f.addr_version != 0 {
        if f.addr_version != flow.version {
            return false;
        }
        if !addr_eq(&flow.saddr, &f.addr, f.addr_version)
            && !addr_eq(&flow.daddr, &f.addr, f.addr_version)
        {
            return false;
        }
    }
    true
}

#[inline(always)]
pub fn ifname_matches(f: &Filter, name: &[u8; 16]) -> bool {
    if f.ifname[0] == 0 {
        return true;
    }
    let mut i = 0;
    while i < 16 {
        if f.ifname[i] != name[i] {
            return false;
        }
        if name[i] == 0 {
            return true;
        }
        i += 1;
    }
    true
}

/// Whether a socket is one the user asked about. A socket bound to the wildcard address matches
/// an address filter: it is the one that receives packets for that address.
#[inline(always)]
pub fn sock_matches(f: &Filter, si: &SockInfo) -> bool {
    if f.port != 0 && si.lport != f.port && si.rport != f.port {
        return false;
    }
    if f.proto != 0 && si.protocol != 0 && si.protocol != f.proto as u16 {
        return false;
    }
    if f.addr_version != 0 {
        let v = if si.family == 10 { 6 } else { 4 };
        if v != f.addr_version {
            return false;
        }
        if !addr_eq(&si.laddr, &f.addr, v) && !addr_eq(&si.raddr, &f.addr, v) && !is_zero(&si.laddr)
        {
            return false;
        }
    }
    true
}

/// A socket neither bound nor connected yet: its first calls (socket, setsockopt) are sent so
/// user space can show them once a later call decides whether the socket is watched.
#[inline(always)]
pub fn sock_undecided(si: &SockInfo) -> bool {
    si.lport == 0 && si.rport == 0
}
