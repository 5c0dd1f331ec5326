use super::*;
use crate::journey::model::OutcomeData;

#[test]
fn escaping_is_only_for_what_json_needs() {
    assert!(!needs_escape(
        b"queued on 127.0.0.1:4000 (nc[12] fd 3); reader woken"
    ));
    assert!(!needs_escape("caf\u{e9} \u{1f600}".as_bytes()));
    for bad in ["a\"b", "a\\b", "tab\there", "nl\n", "\u{1}"] {
        assert!(needs_escape(bad.as_bytes()), "{bad:?}");
    }
}

#[test]
fn strings_that_need_escaping_are_escaped_as_serde_json_does() {
    for s in ["plain", "we\"ird\\comm\t\n\u{7}", "caf\u{e9}"] {
        let mut out = Vec::new();
        W(&mut out).str(s);
        assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
    }
}
/// What the assembler's scenarios (which all check this writer) do not produce: IPv6, an
/// unnamed protocol, no headers, a process name that needs escaping, every optional set.
#[test]
fn unusual_journeys_are_written_as_serde_writes_them() {
    use std::sync::Arc;

    use crate::{
        journey::model::{Caller, Hex, HookKind, Owner, StageData, Timestamp},
        packet::TcpInfo,
    };

    let mut j = Journey {
        id: 7,
        kernel_id: u64::MAX,
        ts_ns: 1_795_263_221_874_751_533,
        ts: Timestamp(1_795_263_221_874_751_533),
        cpu: 1,
        iface: "veth\\\"0".into(),
        ifindex: 4,
        netns: 4_026_531_833,
        wire_len: 86,
        headers: Some(Headers {
            ip_version: 6,
            src: "fe80::1".parse().unwrap(),
            dst: "2001:db8::ff".parse().unwrap(),
            proto: 6,
            sport: Some(1),
            dport: Some(65535),
            tcp: Some(TcpInfo {
                flags: vec!["SYN", "ACK"],
                seq: u32::MAX,
                ack: 0,
                window: 512,
            }),
            payload_len: 0,
            ip_id: None,
        }),
        stages: vec![Stage {
            name: "read",
            hook: HookKind::Tracepoint,
            hook_target: "sock/sock_recv_length",
            offset_ns: Some(0),
            since_prev_ns: None,
            data: StageData::Read {
                bytes: 3,
                reader: Caller {
                    comm: "we\"\tird".into(),
                    pid: 3,
                    syscall: Some("recvfrom"),
                    fd: Some(5),
                },
            },
        }],
        socket: Some(SocketView {
            proto: "tcp",
            local: Arc::from("[fe80::1]:1"),
            remote: Arc::from("[2001:db8::ff]:65535"),
            state: "SYN_RECV",
            sk: Hex(0xffff_8881_02d4_a4c0),
            ino: 0,
            netns: 1,
            owner: Some(Owner {
                pid: 1,
                comm: Arc::from("we\\ird\u{1}"),
                fd: -1,
            }),
        }),
        state_changes: vec![StateChange {
            from: "LISTEN".into(),
            to: "SYN_RECV".into(),
            socket: "[fe80::1]:1".into(),
        }],
        outcome: Outcome {
            kind: OutcomeKind::Dropped,
            reason: Some("NO_SOCKET".into()),
            pid: Some(2),
            comm: Some("caf\u{e9}".into()),
            syscall: Some("recvfrom"),
            fd: Some(3),
            bytes: Some(0),
            reset_sent: true,
            icmp_sent: Some("port unreachable".into()),
            time_wait_left_ms: Some(59_948),
            data: OutcomeData::Dropped {
                no_socket: true,
                dst: Some("[2001:db8::ff]:65535".parse().unwrap()),
                connect: None,
            },
        },
        complete: false,
        incomplete_reason: Some("lost \"events\"".into()),
        sampled_one_in: None,
        sampled_out: false,
        frame: Vec::new(),
        mac_len: 0,
    };
    assert_same_as_serde(&j);
    j.headers.as_mut().unwrap().proto = 132;
    j.headers.as_mut().unwrap().tcp = None;
    assert_same_as_serde(&j);
    j.headers = None;
    j.socket.as_mut().unwrap().owner = None;
    assert_same_as_serde(&j);
    j.socket = None;
    j.stages.clear();
    j.state_changes.clear();
    assert_same_as_serde(&j);
    j.sampled_one_in = Some(100);
    assert_same_as_serde(&j);
    j.sampled_out = true;
    assert_same_as_serde(&j);
}

/// Every kind of stage and outcome, in words that need escaping or not.
#[test]
fn every_stage_and_outcome_is_written_as_serde_writes_it() {
    use crate::{
        journey::model::{HookKind, Stage, Timestamp},
        output::words::tests::{every_outcome, every_stage},
    };

    let stages = every_stage()
        .into_iter()
        .map(|(data, _)| Stage {
            name: "a stage",
            hook: HookKind::TpBtf,
            hook_target: "a_target",
            offset_ns: Some(1),
            since_prev_ns: Some(1),
            data,
        })
        .collect();
    let mut j = Journey {
        id: 1,
        kernel_id: 1,
        ts_ns: 1,
        ts: Timestamp(1),
        cpu: 0,
        iface: "lo".into(),
        ifindex: 1,
        netns: 1,
        wire_len: 60,
        headers: None,
        stages,
        socket: None,
        state_changes: Vec::new(),
        outcome: Outcome::new(OutcomeKind::Unknown, OutcomeData::NothingObserved),
        complete: true,
        incomplete_reason: None,
        sampled_one_in: None,
        sampled_out: false,
        frame: Vec::new(),
        mac_len: 0,
    };
    assert_same_as_serde(&j);
    for (o, _) in every_outcome() {
        j.outcome = o;
        assert_same_as_serde(&j);
        j.outcome.comm = Some("we\"ird\t".into());
        assert_same_as_serde(&j);
    }
}
