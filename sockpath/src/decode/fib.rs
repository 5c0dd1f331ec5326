//! Route-lookup events: the kernel's routing decision for a watched flow.

use std::net::Ipv4Addr;

use sockpath_ebpf::event::FibEvent;

use super::header::{text, Meta};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibEv {
    pub meta: Meta,
    pub table: u32,
    pub err: i32,
    pub oif: i32,
    pub iif: i32,
    pub sport: u16,
    pub dport: u16,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub gw: Ipv4Addr,
    pub dev: String,
}

pub fn decode(meta: Meta, e: &FibEvent) -> FibEv {
    FibEv {
        meta,
        table: e.table,
        err: e.err,
        oif: e.oif,
        iif: e.iif,
        sport: e.sport,
        dport: e.dport,
        src: Ipv4Addr::from(e.src),
        dst: Ipv4Addr::from(e.dst),
        gw: Ipv4Addr::from(e.gw4),
        dev: text(&e.dev),
    }
}
