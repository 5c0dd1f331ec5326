//! Device receive: the first stage of every journey, and where the filter runs.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_probe_read_kernel_buf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use sockpath_ebpf::{
    config::counter,
    event::{EventKind, PACKET_EVENT_FIXED, SNAP_MAX},
    filter::{packet_addrs_match, packet_matches, FilterSet},
    stats::port_key,
};

use crate::{
    emit::{self, rx_ctx},
    kernel::{
        offsets, read, read_ptr,
        skb::{self, parse_flow, track},
    },
    maps::{count, tracked_slot, RxCtx, Tracked, EVENTS, PACKET_SCRATCH},
    tally, watched,
};

/// `TP_PROTO(struct sk_buff *skb)`, fired in __netif_receive_skb_core() after the driver (or
/// loopback/veth) handed the packet over and eth_type_trans() pulled the link-layer header:
/// skb->data points at the network header.
#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: BtfTracePointContext) -> i32 {
    count(counter::PACKETS_SEEN);
    let Some(c) = rx_ctx() else {
        return 0;
    };
    // SAFETY: per-CPU slot, used by this program on this CPU only while it runs.
    let c = unsafe { &mut *c };
    let skb: u64 = ctx.arg(0);
    // An unwatched packet clears the journey so that its socket events are not taken for the
    // previous packet's.
    c.journey = match try_netif_receive_skb(skb, c) {
        Ok(j) => j,
        Err(_) => {
            count(counter::READ_ERRORS);
            0
        }
    };
    0
}

fn try_netif_receive_skb(skb: u64, c: &mut RxCtx) -> Result<u64, i32> {
    let f = watched::get();
    if !f.active() {
        return Ok(0);
    }
    let o = offsets();
    let w = skb::where_(skb, o)?;
    let (data, ethertype) = (w.data, w.ethertype);
    let Ok(flow) = parse_flow(data, ethertype) else {
        // Not IP (ARP, LLDP, ...): never a journey, not an error.
        return Ok(0);
    };
    if !packet_matches(&f, &flow) {
        return Ok(0);
    }
    if !f.any_addr() {
        let (saddr, daddr) = skb::addrs(data, flow.version)?;
        if !packet_addrs_match(&f, flow.version, &saddr, &daddr) {
            return Ok(0);
        }
    }
    // The device: from the per-CPU cache when the pointer and ifindex are the ones seen last
    // (a freed device's memory reused for another would not have its ifindex).
    let dev = read_ptr(skb, o.skb_dev).unwrap_or(0);
    let ifindex = if dev == 0 {
        0
    } else {
        read::<u32>(dev, o.dev_ifindex).unwrap_or(0)
    };
    if dev != c.dev || ifindex != c.ifindex {
        let (name, netns) = skb::device(dev, o);
        c.dev = dev;
        c.ifindex = ifindex;
        c.ifname = name;
        c.netns = netns;
    }
    if !f.ifname_matches(&c.ifname) {
        return Ok(0);
    }
    let (ifname, netns) = (c.ifname, c.netns);

    let head = w.head;
    let nh_off = (data - head) as u16;
    c.seq += 1;
    // CPU in the top bits: ids are unique across CPUs without a shared counter.
    // SAFETY: helper without preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() } as u64;
    let journey = ((cpu + 1) << 48) | (c.seq & 0xffff_ffff_ffff);
    c.watched = 1;
    let (rx_ns, key) = if tally::stats() {
        let to = f.any_port() || f.has_port(flow.dport);
        let port = if to { flow.dport } else { flow.sport };
        let key = port_key(port, flow.l4_proto, !to);
        (tally::matched(key), key)
    } else {
        (0, 0)
    };
    c.rx_ns = rx_ns;
    c.key = key;
    c.slot = tracked_slot(head);
    c.queued = 0;
    track(
        skb,
        Tracked {
            skb,
            journey,
            head,
            nh_off,
            l4_off: flow.l4_off,
            ports: flow.ports,
            rx_ns,
            queued_ns: 0,
            key,
            counted: 0,
        },
    );
    count(counter::PACKETS_MATCHED);
    if !tally::journeys() {
        return Ok(journey);
    }

    let Some(ev) = PACKET_SCRATCH.get_ptr_mut(0) else {
        return Ok(journey);
    };
    // SAFETY: per-CPU scratch slot, only this program on this CPU uses it.
    let ev = unsafe { &mut *ev };
    let (len, data_len) = skb::lengths(skb, o)?;
    let mac_header = w.mac_header;
    let mac_len = if skb::header_unset(mac_header) || mac_header > nh_off {
        0
    } else {
        nh_off - mac_header
    };
    // Only the linear part can be read: paged data needs the pages mapped.
    let linear = len.saturating_sub(data_len) + mac_len as u32;
    let mut cap = watched::snaplen();
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
    if size <= core::mem::size_of_val(ev) && EVENTS.output::<[u8]>(bytes, emit::RB_FLAGS).is_err() {
        count(counter::EVENTS_LOST);
    }
    Ok(journey)
}
