//! Packet (sk_buff) events: something happened to a packet a packet event announced.

use sockpath_ebpf::event::{
    Hop, QueueFullHook, SkbEvent, SkbWhat, DROP_AT_TIME_WAIT, DROP_TW_LEFT,
};

use super::{
    header::{text, Meta},
    DecodeError,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkbEv {
    pub meta: Meta,
    /// The `struct sk_buff` address.
    pub skb: u64,
    /// comm of the current task.
    pub comm: String,
    pub kind: SkbKind,
}

/// What happened to the packet, with what the kernel reported of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkbKind {
    /// kfree_skb: dropped for `reason` (enum skb_drop_reason, whose values differ between
    /// kernels) at code address `location`; `sk` is the socket it was for (0: none, or a
    /// kernel that does not say).
    /// `tw_substate`: the socket was a time-wait socket in this substate (kernels that pass
    /// rx_sk, 6.11 and later), with `tw_left` jiffies left on its timer when read.
    Drop {
        reason: i32,
        location: u64,
        sk: u64,
        tw_substate: Option<u8>,
        tw_left: Option<u32>,
    },
    /// tcp_send_reset: a RST was sent in answer to it, for `reason` (enum sk_rst_reason) by
    /// socket `sk` (0 when no socket wanted it).
    ResetSent { reason: i32, sk: u64 },
    /// icmp_send: an ICMP error of `type_` and `code` was sent about it.
    IcmpSent { type_: i32, code: i32 },
    /// The socket could not queue it: `rc` as the kernel returned it, seen `by` one of two
    /// tracepoints.
    QueueFail { rc: i32, by: QueueFullHook },
    /// It entered a receive-path function (fentry or kprobe).
    Hop { hop: Hop },
    /// consume_skb: freed once the kernel was done with it, at code address `location` (0: a
    /// kernel whose tracepoint does not say, before 6.3).
    Consumed { location: u64 },
    /// A TCP segment with these `flags` was sent in answer by `sk`, no full socket (a
    /// time-wait socket, or TCP's control socket).
    Answer { flags: u8, sk: u64 },
}

pub fn decode(meta: Meta, e: &SkbEvent) -> Result<SkbEv, DecodeError> {
    let what = SkbWhat::from_u16(e.what).ok_or(DecodeError::Code("skb", e.what.into()))?;
    let kind = match what {
        SkbWhat::Drop => SkbKind::Drop {
            reason: e.arg0,
            location: e.location,
            sk: e.sk,
            tw_substate: (e.arg1 & DROP_AT_TIME_WAIT != 0).then_some(e.arg1 as u8),
            tw_left: (e.arg1 & DROP_AT_TIME_WAIT != 0 && e.arg1 & DROP_TW_LEFT != 0)
                .then_some(e.arg2),
        },
        SkbWhat::ResetSent => SkbKind::ResetSent {
            reason: e.arg0,
            sk: e.sk,
        },
        SkbWhat::IcmpSent => SkbKind::IcmpSent {
            type_: e.arg0,
            code: e.arg1,
        },
        SkbWhat::QueueFail => SkbKind::QueueFail {
            rc: e.arg0,
            by: QueueFullHook::from_i32(e.arg1)
                .ok_or(DecodeError::Code("queue-full hook", e.arg1.into()))?,
        },
        SkbWhat::Hop => SkbKind::Hop {
            hop: u16::try_from(e.arg0)
                .ok()
                .and_then(Hop::from_u16)
                .ok_or(DecodeError::Code("hop", e.arg0.into()))?,
        },
        SkbWhat::Consumed => SkbKind::Consumed {
            location: e.location,
        },
        SkbWhat::Answer => SkbKind::Answer {
            flags: e.arg0 as u8,
            sk: e.sk,
        },
    };
    Ok(SkbEv {
        meta,
        skb: e.skb,
        comm: text(&e.comm),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(what: u16, arg0: i32, arg1: i32) -> Result<SkbKind, DecodeError> {
        let e = SkbEvent {
            what,
            arg0,
            arg1,
            location: 0x1234,
            sk: 0x55,
            ..Default::default()
        };
        decode(Meta::of(&e.header), &e).map(|s| s.kind)
    }

    #[test]
    fn each_kind_says_what_it_carries() {
        assert_eq!(
            kind(SkbWhat::Drop as u16, 2, 0),
            Ok(SkbKind::Drop {
                reason: 2,
                location: 0x1234,
                sk: 0x55,
                tw_substate: None,
                tw_left: None,
            })
        );
        assert_eq!(
            kind(SkbWhat::Drop as u16, 2, DROP_AT_TIME_WAIT | 5),
            Ok(SkbKind::Drop {
                reason: 2,
                location: 0x1234,
                sk: 0x55,
                tw_substate: Some(5),
                tw_left: None,
            })
        );
        assert_eq!(
            kind(SkbWhat::Answer as u16, 0x10, 0),
            Ok(SkbKind::Answer {
                flags: 0x10,
                sk: 0x55
            })
        );
        assert_eq!(
            kind(SkbWhat::ResetSent as u16, 1, 0),
            Ok(SkbKind::ResetSent {
                reason: 1,
                sk: 0x55
            })
        );
        assert_eq!(
            kind(SkbWhat::IcmpSent as u16, 3, 3),
            Ok(SkbKind::IcmpSent { type_: 3, code: 3 })
        );
        assert_eq!(
            kind(SkbWhat::QueueFail as u16, -12, 2),
            Ok(SkbKind::QueueFail {
                rc: -12,
                by: QueueFullHook::UdpFailQueueRcvSkb
            })
        );
        assert_eq!(
            kind(SkbWhat::Hop as u16, 5, 0),
            Ok(SkbKind::Hop { hop: Hop::TcpV4Rcv })
        );
        assert_eq!(
            kind(SkbWhat::Consumed as u16, 0, 0),
            Ok(SkbKind::Consumed { location: 0x1234 })
        );
    }

    #[test]
    fn unknown_codes_are_errors() {
        assert_eq!(kind(2, 0, 0), Err(DecodeError::Code("skb", 2)));
        assert_eq!(
            kind(SkbWhat::QueueFail as u16, -12, 3),
            Err(DecodeError::Code("queue-full hook", 3))
        );
        // Not taken modulo 2^16 either.
        for hop in [0, 9, -1, 65536 + 5] {
            assert_eq!(
                kind(SkbWhat::Hop as u16, hop, 0),
                Err(DecodeError::Code("hop", hop.into()))
            );
        }
    }
}
