//! struct sk_buff: where the packet's headers are and which device it came from.

use sockpath_ebpf::{
    config::KernelOffsets,
    filter::Flow,
    net::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP},
};

use super::{read, read_ptr};
use crate::maps::{tracked_slot, Tracked, TRACKED};

/// ~0 in skb->mac_header/network_header means "not set" (skb_mac_header_was_set()).
const HEADER_UNSET: u16 = 0xffff;

/// Where device receive finds the packet: skb->protocol, mac_header, head and data.
pub struct Where {
    /// The ethertype, host order.
    pub ethertype: u16,
    pub mac_header: u16,
    pub head: u64,
    pub data: u64,
}

/// Reads `Where` in one probe read where sk_buff lays the fields out as every kernel so far
/// does (protocol, transport_header, network_header, mac_header, tail, end, head, data, side by
/// side); in four where BTF says otherwise. Device receive runs for every packet the machine
/// gets, and each probe read costs about 60 ns.
#[inline(always)]
pub fn where_(skb: u64, o: &KernelOffsets) -> Result<Where, i32> {
    let p = o.skb_protocol;
    if o.skb_mac_header == p + 6 && o.skb_head == p + 16 && o.skb_data == p + 24 {
        let b = read::<[u8; 32]>(skb, p)?;
        Ok(Where {
            ethertype: u16::from_be_bytes([b[0], b[1]]),
            mac_header: u16::from_ne_bytes([b[6], b[7]]),
            head: u64::from_ne_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
            data: u64::from_ne_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]),
        })
    } else {
        Ok(Where {
            ethertype: u16::from_be(read::<u16>(skb, p)?),
            mac_header: read::<u16>(skb, o.skb_mac_header)?,
            head: read_ptr(skb, o.skb_head)?,
            data: read_ptr(skb, o.skb_data)?,
        })
    }
}

/// skb->len and skb->data_len, in one read where they are side by side.
#[inline(always)]
pub fn lengths(skb: u64, o: &KernelOffsets) -> Result<(u32, u32), i32> {
    if o.skb_data_len == o.skb_len + 4 {
        let b = read::<[u8; 8]>(skb, o.skb_len)?;
        Ok((
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        ))
    } else {
        Ok((
            read::<u32>(skb, o.skb_len)?,
            read::<u32>(skb, o.skb_data_len)?,
        ))
    }
}

/// Parses IPv4/IPv6 + TCP/UDP ports at `nh` (the network header). IPv6 extension headers are not
/// walked: such packets (IPv6 fragments among them), ICMP and IPv4 fragments after the first
/// have no ports, so they only match a filter without a port.
#[inline(always)]
pub fn parse_flow(nh: u64, ethertype: u16) -> Result<Flow, i32> {
    let mut flow = Flow::default();
    // One read for the IP header and the ports behind it when there are no IP options (almost
    // always): this runs for every packet the machine receives. Read into uninitialised stack
    // (`read`), not a zeroed buffer: zeroing a byte array costs a byte-by-byte memset call.
    if ethertype == ETH_P_IP {
        let ip = read::<[u8; 24]>(nh, 0)?;
        if ip[0] >> 4 != 4 {
            return Err(-1);
        }
        flow.version = 4;
        flow.l4_proto = ip[9];
        flow.l4_off = ((ip[0] & 0x0f) as u16) * 4;
        // A fragment other than the first has no transport header: what follows its IP header
        // is payload, not ports. Nor has a header shorter than 20 bytes (ip_rcv() drops it):
        // its "transport header" would be inside the IP header.
        let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        if frag_off != 0
            || flow.l4_off < 20
            || (flow.l4_proto != IPPROTO_TCP && flow.l4_proto != IPPROTO_UDP)
        {
            return Ok(flow);
        }
        let ports = if flow.l4_off == 20 {
            [ip[20], ip[21], ip[22], ip[23]]
        } else {
            read::<[u8; 4]>(nh, flow.l4_off as u32)?
        };
        set_ports(&mut flow, ports);
    } else if ethertype == ETH_P_IPV6 {
        let ip = read::<[u8; 44]>(nh, 0)?;
        flow.version = 6;
        flow.l4_proto = ip[6];
        flow.l4_off = 40;
        if flow.l4_proto == IPPROTO_TCP || flow.l4_proto == IPPROTO_UDP {
            set_ports(&mut flow, [ip[40], ip[41], ip[42], ip[43]]);
        }
    } else {
        return Err(-1);
    }
    Ok(flow)
}

/// The source and destination addresses of the packet whose network header is at `nh` (IPv4
/// in the first 4 bytes): read again only when the filter has addresses, so that the other
/// packets' journey through device receive does not carry them.
#[inline(always)]
pub fn addrs(nh: u64, version: u8) -> Result<([u8; 16], [u8; 16]), i32> {
    let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
    if version == 4 {
        let a = read::<[u8; 8]>(nh, 12)?;
        s[..4].copy_from_slice(&a[..4]);
        d[..4].copy_from_slice(&a[4..]);
    } else {
        let a = read::<[u8; 32]>(nh, 8)?;
        s.copy_from_slice(&a[..16]);
        d.copy_from_slice(&a[16..]);
    }
    Ok((s, d))
}

#[inline(always)]
fn set_ports(flow: &mut Flow, ports: [u8; 4]) {
    flow.sport = u16::from_be_bytes([ports[0], ports[1]]);
    flow.dport = u16::from_be_bytes([ports[2], ports[3]]);
    flow.ports = u32::from_ne_bytes(ports);
}

/// Whether `skb` (whose data buffer is at `head`) is still the packet `t` remembers: the
/// network-header offset and the port bytes too.
#[inline(always)]
fn same_packet(skb: u64, head: u64, t: &Tracked, o: &KernelOffsets) -> bool {
    if t.skb != skb || t.head != head {
        return false;
    }
    let Ok(nh) = read::<u16>(skb, o.skb_network_header) else {
        return false;
    };
    if nh != t.nh_off || nh == HEADER_UNSET {
        return false;
    }
    if t.ports == 0 {
        return true;
    }
    match read::<u32>(head + nh as u64, t.l4_off as u32) {
        Ok(p) => p == t.ports,
        Err(_) => false,
    }
}

/// Remembers a watched packet. The slot's `skb` is cleared first and set last, so a reader on
/// another CPU never takes a half-written entry for a whole one (x86 keeps stores in order;
/// volatile keeps the compiler from reordering them).
#[inline(always)]
pub fn track(skb: u64, t: Tracked) {
    let Some(slot) = TRACKED.get_ptr_mut(tracked_slot(t.head)) else {
        return;
    };
    // SAFETY: a valid array slot; see above for the order of the writes.
    unsafe {
        core::ptr::write_volatile(&mut (*slot).skb, 0);
        (*slot).journey = t.journey;
        (*slot).head = t.head;
        (*slot).nh_off = t.nh_off;
        (*slot).l4_off = t.l4_off;
        (*slot).ports = t.ports;
        (*slot).rx_ns = t.rx_ns;
        (*slot).queued_ns = t.queued_ns;
        (*slot).key = t.key;
        (*slot).counted = t.counted;
        (*slot).sample = t.sample;
        core::ptr::write_volatile(&mut (*slot).skb, skb);
    }
}

/// Forgets `skb` (it was freed) if its slot still holds it.
#[inline(always)]
pub fn untrack(skb: u64, o: &KernelOffsets) {
    let Ok(head) = read::<u64>(skb, o.skb_head) else {
        return;
    };
    if let Some(slot) = TRACKED.get_ptr_mut(tracked_slot(head)) {
        // SAFETY: a valid array slot.
        unsafe {
            if core::ptr::read_volatile(&(*slot).skb) == skb {
                core::ptr::write_volatile(&mut (*slot).skb, 0);
            }
        }
    }
}

/// The journey id of `skb` if it is a tracked packet whose hooks report it: followed, or
/// sampled out and told at its end.
#[inline(always)]
pub fn tracked_followed(skb: u64, o: &KernelOffsets) -> Option<u64> {
    tracked_entry(skb, o)
        .filter(|(_, t)| t.sample != crate::maps::SAMPLE_OUT)
        .map(|(_, t)| t.journey)
}

/// `skb`'s slot in TRACKED and a copy of its entry, if it is a packet a journey was started
/// for and it still is.
#[inline(always)]
pub fn tracked_entry(skb: u64, o: &KernelOffsets) -> Option<(u32, Tracked)> {
    if skb == 0 {
        return None;
    }
    let head = read::<u64>(skb, o.skb_head).ok()?;
    let index = tracked_slot(head);
    let slot = TRACKED.get_ptr(index)?;
    // SAFETY: a valid array slot, copied out; the address is checked again after the copy so
    // that an entry rewritten meanwhile is not used.
    let t = unsafe {
        let t = *slot;
        if core::ptr::read_volatile(&(*slot).skb) != t.skb {
            return None;
        }
        t
    };
    if same_packet(skb, head, &t, o) {
        Some((index, t))
    } else {
        None
    }
}

/// Marks `skb`'s entry (slot `index`) as sampled out and told: its end was reported.
#[inline(always)]
pub fn told(skb: u64, index: u32) {
    if let Some(e) = TRACKED.get_ptr_mut(index) {
        // SAFETY: a valid array slot, checked to still hold this packet.
        unsafe {
            if core::ptr::read_volatile(&(*e).skb) == skb {
                (*e).sample = crate::maps::SAMPLE_TOLD;
            }
        }
    }
}

/// A device's name (zeroed after its NUL, so it can be a map key) and the inode of its network
/// namespace.
#[inline(always)]
pub fn device(dev: u64, o: &KernelOffsets) -> ([u8; 16], u32) {
    if dev == 0 {
        return ([0; 16], 0);
    }
    let mut name = read::<[u8; 16]>(dev, o.dev_name).unwrap_or([0; 16]);
    // A renamed device keeps the tail of a longer old name behind the new one's NUL.
    let mut ended = false;
    let mut i = 0;
    while i < 16 {
        if name[i] == 0 {
            ended = true;
        }
        if ended {
            name[i] = 0;
        }
        i += 1;
    }
    let netns = match read_ptr(dev, o.dev_nd_net) {
        Ok(net) => read::<u32>(net, o.net_inum).unwrap_or(0),
        Err(_) => 0,
    };
    (name, netns)
}

pub fn header_unset(v: u16) -> bool {
    v == HEADER_UNSET
}
