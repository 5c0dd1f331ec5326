//! Device receive: the first stage of every journey, and where the filter runs.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel_buf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use sockpath_ebpf::{
    config::counter,
    event::{EventKind, CTX_NET_RX, CTX_SAMPLED_OUT, PACKET_EVENT_FIXED, SNAP_MAX},
    filter::{packet_addrs_match, packet_matches, FilterSet},
    stats::port_key,
};

use crate::{
    emit::{self, rx_ctx},
    kernel::{
        offsets, read, read_ptr,
        skb::{self, parse_flow, track},
    },
    maps::{
        count, tracked_slot, RxCtx, Tracked, EVENTS, PACKET_SCRATCH, SAMPLE_FOLLOWED, SAMPLE_OUT,
    },
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
    let followed = follows(c);
    c.sampled_out = u32::from(!followed);
    let (rx_ns, key) = if tally::stats() {
        let to = f.any_port() || f.has_port(flow.dport);
        let port = if to { flow.dport } else { flow.sport };
        let key = port_key(port, flow.l4_proto, !to);
        (tally::matched(key), key)
    } else if !followed {
        // The late device-receive event of a sampled-out packet carries this time.
        // SAFETY: helper without preconditions.
        (unsafe { bpf_ktime_get_ns() }, 0)
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
            sample: if followed {
                SAMPLE_FOLLOWED
            } else {
                SAMPLE_OUT
            },
            _pad: 0,
        },
    );
    count(counter::PACKETS_MATCHED);
    if !tally::journeys() || !followed {
        return Ok(journey);
    }
    let (len, data_len) = skb::lengths(skb, o)?;
    send_packet(&Rx {
        skb,
        journey,
        head,
        nh_off,
        mac_header: w.mac_header,
        ethertype,
        len,
        data_len,
        ifindex,
        netns,
        ifname,
        ctx: CTX_NET_RX,
        ts_ns: 0,
    })?;
    Ok(journey)
}

/// Whether this matched packet is one the journeys follow: all of them, or with
/// `watch --sample N` the first of every N on this CPU (a per-CPU countdown: no atomic
/// operation, and on one CPU exactly one in N).
#[inline(always)]
fn follows(c: &mut RxCtx) -> bool {
    let n = tally::sample_one_in();
    if n <= 1 || !tally::journeys() {
        return true;
    }
    if c.sample_left == 0 {
        c.sample_left = (n - 1) as u64;
        true
    } else {
        c.sample_left -= 1;
        false
    }
}

/// What a device-receive event says of its packet.
pub(crate) struct Rx {
    pub skb: u64,
    pub journey: u64,
    pub head: u64,
    pub nh_off: u16,
    pub mac_header: u16,
    pub ethertype: u16,
    /// skb->len and skb->data_len as device receive saw them.
    pub len: u32,
    pub data_len: u32,
    pub ifindex: u32,
    pub netns: u32,
    pub ifname: [u8; 16],
    /// `CTX_*` flags.
    pub ctx: u16,
    /// The event's time when not now (a late event's device receive); 0: now.
    pub ts_ns: u64,
}

/// Writes a packet's device-receive event, with up to the snap length of its bytes.
#[inline(always)]
pub(crate) fn send_packet(r: &Rx) -> Result<(), i32> {
    let Some(ev) = PACKET_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    // SAFETY: per-CPU scratch slot, only one program at a time on this CPU uses it.
    let ev = unsafe { &mut *ev };
    let nh_off = r.nh_off;
    let mac_header = r.mac_header;
    let mac_len = if skb::header_unset(mac_header) || mac_header > nh_off {
        0
    } else {
        nh_off - mac_header
    };
    // Only the linear part can be read: paged data needs the pages mapped.
    let linear = r.len.saturating_sub(r.data_len) + mac_len as u32;
    let mut cap = watched::snaplen();
    if cap > linear {
        cap = linear;
    }
    if cap > SNAP_MAX as u32 {
        cap = SNAP_MAX as u32;
    }
    let start = r.head + (nh_off - mac_len) as u64;
    let cap = cap as usize;
    if cap > 0 && cap <= SNAP_MAX {
        // SAFETY: cap is bounded by the destination's size.
        unsafe { bpf_probe_read_kernel_buf(start as *const u8, &mut ev.data[..cap])? };
    }
    let size = PACKET_EVENT_FIXED + cap;
    ev.header = emit::header(EventKind::Packet, size, r.ctx, r.journey);
    if r.ts_ns != 0 {
        ev.header.ts_ns = r.ts_ns;
    }
    ev.skb = r.skb;
    ev.len = r.len;
    ev.wire_len = r.len + mac_len as u32;
    ev.ifindex = r.ifindex;
    ev.netns = r.netns;
    ev.ifname = r.ifname;
    ev.mac_len = mac_len;
    ev.cap_len = cap as u16;
    ev.ethertype = r.ethertype;
    ev._pad = 0;
    // SAFETY: the slice covers the fixed part plus `cap` valid data bytes of the scratch event.
    let bytes = unsafe { core::slice::from_raw_parts(ev as *const _ as *const u8, size) };
    if size <= core::mem::size_of_val(ev) && EVENTS.output::<[u8]>(bytes, emit::RB_FLAGS).is_err() {
        count(counter::EVENTS_LOST);
    }
    Ok(())
}

/// The device-receive event of a sampled-out packet, sent by the first hook that saw its end:
/// read again from the sk_buff, whose head and network header the tracking entry kept (the
/// data pointer has moved on since, past the headers the stack pulled).
#[inline(always)]
pub(crate) fn send_late_packet(skb: u64, t: &Tracked) -> Result<(), i32> {
    let o = offsets();
    let data = read_ptr(skb, o.skb_data)?;
    let (len_now, data_len) = skb::lengths(skb, o)?;
    let nh = t.head + t.nh_off as u64;
    let len = if data > nh {
        len_now + (data - nh) as u32
    } else {
        len_now
    };
    let mac_header = read::<u16>(skb, o.skb_mac_header)?;
    let ethertype = u16::from_be(read::<u16>(skb, o.skb_protocol)?);
    let dev = read_ptr(skb, o.skb_dev).unwrap_or(0);
    let ifindex = if dev == 0 {
        0
    } else {
        read::<u32>(dev, o.dev_ifindex).unwrap_or(0)
    };
    let (ifname, netns) = skb::device(dev, o);
    let (net_rx, _) = emit::current_journey();
    send_packet(&Rx {
        skb,
        journey: t.journey,
        head: t.head,
        nh_off: t.nh_off,
        mac_header,
        ethertype,
        len,
        data_len,
        ifindex,
        netns,
        ifname,
        ctx: net_rx | CTX_SAMPLED_OUT,
        ts_ns: t.rx_ns,
    })
}
