use super::*;
use crate::packet::fixture::tcp4;

#[test]
fn packet_line_reads_like_wireshark_info() {
    let h = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 7, Some(9), "SA", &[])).unwrap();
    assert_eq!(
        packet_line(&h),
        "127.0.0.1:4444 → 127.0.0.1:4000 TCP [SYN, ACK] Seq=7 Ack=9 Win=65495 Len=0"
    );
}

#[test]
fn a_sampled_out_journey_says_it_was_told_from_its_end() {
    use crate::journey::model::{
        HookKind, Outcome, OutcomeData, OutcomeKind, Stage, StageData, Timestamp,
    };
    let frame = crate::packet::fixture::udp4(40000, 4000, b"x");
    let device = |offset| Stage {
        name: "netif_receive_skb",
        hook: HookKind::TpBtf,
        hook_target: "netif_receive_skb",
        offset_ns: Some(offset),
        since_prev_ns: None,
        data: StageData::Device {
            ifname: "lo".into(),
            ifindex: 1,
            wire_len: 43,
        },
    };
    let mut outcome = Outcome::new(
        OutcomeKind::Dropped,
        OutcomeData::Dropped {
            no_socket: true,
            dst: Some("127.0.0.1:4000".parse().unwrap()),
            connect: None,
        },
    );
    outcome.reason = Some("NO_SOCKET".into());
    let j = Journey {
        id: 3,
        kernel_id: 3,
        ts_ns: 0,
        ts: Timestamp(0),
        cpu: 0,
        iface: "lo".into(),
        ifindex: 1,
        netns: 1,
        wire_len: 43,
        headers: Headers::parse(0x0800, 14, &frame).ok(),
        stages: vec![device(0)],
        socket: None,
        state_changes: Vec::new(),
        outcome,
        complete: true,
        incomplete_reason: None,
        sampled_one_in: Some(10),
        sampled_out: true,
        frame: Vec::new(),
        mac_len: 14,
    };
    let text = journey_text(&j);
    let first = text.lines().next().unwrap();
    assert!(
        first.ends_with("(journey 3; sampled out: told from its end, nothing between followed)"),
        "{text}"
    );
    assert!(!text.contains("INCOMPLETE"), "{text}");
    let followed = Journey {
        sampled_out: false,
        ..j
    };
    assert!(journey_text(&followed)
        .lines()
        .next()
        .unwrap()
        .ends_with("(journey 3)"));
}

#[test]
fn a_sampled_summary_gives_the_kernels_counts() {
    use crate::{counts::Counted, journey::model::Sampled};
    let mut s = Summary {
        packets_matched: 247,
        journeys: 30,
        complete: 30,
        dropped: 12,
        ..Summary::default()
    };
    assert_eq!(summary_text(&s).lines().count(), 1);
    s.sampled_one_in = Some(10);
    s.sampled = Some(Sampled {
        followed: 25,
        told_at_end: 5,
        counted: Counted {
            matched: 247,
            queued: 202,
            read: 202,
            dropped: 45,
            icmp_sent: 7,
            queue_full: 38,
            drops: vec![("SOCKET_RCVBUFF".into(), 38), ("NO_SOCKET".into(), 7)],
            ..Counted::default()
        },
    });
    let text = summary_text(&s);
    assert_eq!(
        text.lines().nth(1).unwrap(),
        "--- sampled one in 10: 25 journeys followed in full, 5 told from their end only (drop, reset, ICMP error or full queue); the kernel counted every one of the 247 matched packets: 202 queued, 0 to an accept queue, 202 read, 0 accepted, 0 consumed, 45 dropped (SOCKET_RCVBUFF 38, NO_SOCKET 7), 0 resets sent, 7 ICMP errors sent, 38 full queues"
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["sampled_one_in"], 10);
    assert_eq!(json["sampled"]["counted"]["matched"], 247);
    assert_eq!(
        json["sampled"]["counted"]["drops"],
        serde_json::json!([["SOCKET_RCVBUFF", 38], ["NO_SOCKET", 7]])
    );
    // Without sampling the JSON summary is what it was.
    let plain = serde_json::to_value(Summary::default()).unwrap();
    assert!(plain.get("sampled_one_in").is_none() && plain.get("sampled").is_none());
}

#[test]
fn durations_pick_a_unit() {
    let mut s = String::new();
    push_duration(&mut s, 1500);
    s.push(' ');
    push_duration(&mut s, 2_500_000);
    assert_eq!(s, "1.5µs 2.500ms");
}
