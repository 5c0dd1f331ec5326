//! Device receive: the first stage of every journey, and where the filter runs.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_probe_read_kernel_buf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use sockpath_ebpf::{
    config::counter,
    event::{EventKind, PACKET_EVENT_FIXED, SNAP_MAX},
};

use crate::{
    emit::{self, rx_ctx},
    filter,
    kernel::{
        offsets, read, read_ptr,
        skb::{self, parse_flow, track},
    },
    maps::{count, Tracked, EVENTS, PACKET_SCRATCH},
};

/// `TP_PROTO(struct sk_buff *skb)`, fired in __netif_receive_skb_core() after the driver (or
/// loopback/veth) handed the packet over and eth_type_trans() pulled the link-layer header:
/// skb->data points at the network header.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: BtfTracePointContext) -> i32 {
    count(counter::PACKETS_SEEN);
    let skb: u64 = ctx.arg(0);
    let journey = match try_netif_receive_skb(skb) {
        Ok(j) => j,
        Err(_) => {
            count(counter::READ_ERRORS);
            0
        }
    };
    if let Some(c) = rx_ctx() {
        // SAFETY: per-CPU slot. An unwatched packet clears the slot so that its socket events
        // are not taken for the previous packet's.
        unsafe { (*c).journey = journey };
    }
    0
}

fn try_netif_receive_skb(skb: u64) -> Result<u64, i32> {
    let o = offsets();
    let f = filter::get();
    let data = read_ptr(skb, o.skb_data)?;
    let ethertype = u16::from_be(read::<u16>(skb, o.skb_protocol)?);
    let Ok(flow) = parse_flow(data, ethertype) else {
        // Not IP (ARP, LLDP, ...): never a journey, not an error.
        return Ok(0);
    };
    if !filter::packet_matches(&f, &flow) {
        return Ok(0);
    }
    let (ifindex, ifname, netns) = skb::device(skb, &o);
    if !filter::ifname_matches(&f, &ifname) {
        return Ok(0);
    }

    let head = read_ptr(skb, o.skb_head)?;
    let nh_off = (data - head) as u16;
    let Some(c) = rx_ctx() else { return Ok(0) };
    // SAFETY: per-CPU slot.
    let journey = unsafe {
        (*c).seq += 1;
        // CPU in the top bits: ids are unique across CPUs without a shared counter.
        (((bpf_get_smp_processor_id() as u64) + 1) << 48) | ((*c).seq & 0xffff_ffff_ffff)
    };
    // SAFETY: per-CPU slot.
    unsafe { (*c).watched = 1 };
    track(
        skb,
        Tracked {
            skb,
            journey,
            head,
            nh_off,
            l4_off: flow.l4_off,
            ports: flow.ports,
        },
    );
    count(counter::PACKETS_MATCHED);

    let Some(ev) = PACKET_SCRATCH.get_ptr_mut(0) else {
        return Ok(journey);
    };
    // SAFETY: per-CPU scratch slot, only this program on this CPU uses it.
    let ev = unsafe { &mut *ev };
    let len = read::<u32>(skb, o.skb_len)?;
    let data_len = read::<u32>(skb, o.skb_data_len)?;
    let mac_header = read::<u16>(skb, o.skb_mac_header)?;
    let mac_len = if skb::header_unset(mac_header) || mac_header > nh_off {
        0
    } else {
        nh_off - mac_header
    };
    // Only the linear part can be read: paged data needs the pages mapped.
    let linear = len.saturating_sub(data_len) + mac_len as u32;
    let mut cap = f.snaplen;
    if cap > linear {
        cap = linear;
    }
    if cap > SNAP_MAX as u32 {
        cap = SNAP_MAX as u32;
    }
    let start = head + (nh_off - mac_len) as u64;
    let cap = cap as usize;
    if cap > 0 && cap <= SNAP_MAX {
        // SAFETY: cap is bounded by the destination's size.
        unsafe { bpf_probe_read_kernel_buf(start as *const u8, &mut ev.data[..cap])? };
    }
    let size = PACKET_EVENT_FIXED + cap;
    ev.header = emit::header(
        EventKind::Packet,
        size,
        sockpath_ebpf::event::CTX_NET_RX,
        journey,
    );
    ev.skb = skb;
    ev.len = len;
    ev.wire_len = len + mac_len as u32;
    ev.ifindex = ifindex;
    ev.netns = netns;
    ev.ifname = ifname;
    ev.mac_len = mac_len;
    ev.cap_len = cap as u16;
    ev.ethertype = ethertype;
    ev._pad = 0;
    // SAFETY: the slice covers the fixed part plus `cap` valid data bytes of the scratch event.
    let bytes = unsafe { core::slice::from_raw_parts(ev as *const _ as *const u8, size) };
    if size <= core::mem::size_of_val(ev) && EVENTS.output::<[u8]>(bytes, 0).is_err() {
        count(counter::EVENTS_LOST);
    }
    Ok(journey)
}
