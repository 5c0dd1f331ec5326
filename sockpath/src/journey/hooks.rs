//! Which kind of hook serves each journey stage on the running kernel, so a journey can say how
//! each of its stages was seen (and name the function or tracepoint).

use std::collections::HashMap;

use serde::Serialize;
use sockpath_ebpf::event::{Hop, LookupTable};

use super::model::HookKind;

/// The stages of a journey the probe registry knows hooks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    DeviceReceive,
    Softirq,
    Route,
    IpReceive,
    LocalDeliver,
    Transport,
    Lookup,
    EstablishedReceive,
    SynAck,
    Queue,
    TcpState,
    Read,
    Drop,
    ResetSent,
    ResetReceived,
    IcmpSent,
    QueueFull,
    Destroyed,
    Syscalls,
}

/// The hook kind chosen for each stage.
#[derive(Clone, Debug)]
pub struct HookChoice {
    kinds: HashMap<Stage, HookKind>,
}

impl Default for HookChoice {
    /// What a tracepoint-only kernel (the 6.18 this project builds on) gets.
    fn default() -> Self {
        use Stage::*;
        let mut kinds = HashMap::new();
        for s in [
            DeviceReceive,
            Softirq,
            EstablishedReceive,
            SynAck,
            Queue,
            TcpState,
            Read,
            Drop,
            ResetSent,
            ResetReceived,
            IcmpSent,
            QueueFull,
            Destroyed,
        ] {
            kinds.insert(s, HookKind::TpBtf);
        }
        kinds.insert(Route, HookKind::Tracepoint);
        kinds.insert(Syscalls, HookKind::Tracepoint);
        Self { kinds }
    }
}

impl HookChoice {
    pub fn new(kinds: HashMap<Stage, HookKind>) -> Self {
        Self { kinds }
    }

    /// How `stage` is seen here (`Inferred` when no hook serves it).
    pub fn kind(&self, stage: Stage) -> HookKind {
        self.kinds
            .get(&stage)
            .copied()
            .unwrap_or(HookKind::Inferred)
    }

    /// `(kind, target)` for a stage whose target does not depend on the event.
    pub fn hook(&self, stage: Stage) -> (HookKind, &'static str) {
        let kind = self.kind(stage);
        let function = matches!(
            kind,
            HookKind::Fentry | HookKind::Fexit | HookKind::Kprobe | HookKind::Kretprobe
        );
        let target = match (stage, function) {
            (Stage::Queue, true) => "sock_def_readable",
            (Stage::Queue, false) => "sk_data_ready",
            (Stage::Read, true) => "inet_recvmsg",
            (Stage::Read, false) => "sock_recv_length",
            (Stage::ResetSent, true) => "tcp_v4_send_reset",
            (Stage::ResetSent, false) => "tcp_send_reset",
            (Stage::IcmpSent, true) => "__icmp_send",
            (Stage::IcmpSent, false) => "icmp_send",
            (Stage::DeviceReceive, _) => "netif_receive_skb",
            (Stage::EstablishedReceive, _) => "tcp_probe",
            (Stage::SynAck, _) => "net_dev_queue",
            (Stage::TcpState, _) => "inet_sock_set_state",
            (Stage::Drop, _) => "kfree_skb",
            (Stage::Route, _) => "fib/fib_table_lookup",
            _ => "",
        };
        (kind, target)
    }

    /// The hook of a receive-path function the packet entered.
    pub fn hop(&self, hop: Hop) -> (HookKind, &'static str) {
        let stage = match hop {
            Hop::IpRcv | Hop::Ipv6Rcv => Stage::IpReceive,
            Hop::IpLocalDeliver | Hop::Ip6Input => Stage::LocalDeliver,
            _ => Stage::Transport,
        };
        (self.kind(stage), hop.function())
    }

    /// The lookup function that searched `table` for an IPv`version` packet.
    pub fn lookup(&self, table: LookupTable, version: u8) -> (HookKind, &'static str) {
        let f = match (table, version) {
            (LookupTable::Established, 4) => "__inet_lookup_established",
            (LookupTable::Established, _) => "__inet6_lookup_established",
            (LookupTable::Listener, 4) => "__inet_lookup_listener",
            (LookupTable::Listener, _) => "inet6_lookup_listener",
            (LookupTable::Udp, 4) => "__udp4_lib_lookup",
            (LookupTable::Udp, _) => "__udp6_lib_lookup",
        };
        (self.kind(Stage::Lookup), f)
    }
}
