//! A journey as a capture frame's comments: one headline saying what became of the packet
//! ("delivered to nc (pid 1234) fd 4, read by read() 6 bytes", "dropped: NO_SOCKET, reset
//! sent"), then one comment per stage and one for the socket. Wireshark lists each under
//! "Packet comments" and `tshark -V` prints them; `frame.comment contains "..."` filters on them.
//!
//! Told from the model, in its words (`words`): a journey sockpath assembled (`watch --pcapng`)
//! and the same journey read back from its JSON (`annotate`) get the same comments.

use crate::{
    journey::model::{Journey, OutcomeKind, Owner, SocketView, Stage},
    text::{cat, int, uint},
};

/// Longest comment written: pcapng option lengths are 16 bits, and no reader needs more.
const MAX_COMMENT: usize = 2000;

/// `nc (pid 1234)`
fn who(comm: &str, pid: u32) -> String {
    cat(&[comm, " (pid ", uint(pid).as_str(), ")"])
}

/// `nc (pid 1234) fd 4`
fn owner_text(o: &Owner) -> String {
    cat(&[&who(&o.comm, o.pid), " fd ", int(o.fd).as_str()])
}

/// What became of the packet, in one line.
pub fn headline(j: &Journey) -> String {
    let o = &j.outcome;
    let reader = match (&o.comm, o.pid) {
        (Some(c), Some(p)) => Some(who(c, p)),
        _ => None,
    };
    let socket_owner = j.socket.as_ref().and_then(|s| s.owner.as_ref());
    let text = match o.kind {
        OutcomeKind::Read => {
            let fd = o.fd.map(|fd| format!(" fd {fd}")).unwrap_or_default();
            let call = o.syscall.unwrap_or("a read call");
            let bytes = o.bytes.unwrap_or(0);
            let rest = match j.headers.as_ref().map(|h| h.payload_len) {
                Some(p) if u64::from(p) > bytes => {
                    format!(" ({} still queued)", u64::from(p) - bytes)
                }
                _ => String::new(),
            };
            format!(
                "delivered to {}{fd}, read by {call}() {bytes} bytes{rest}",
                reader.as_deref().unwrap_or("a process")
            )
        }
        OutcomeKind::Accepted => {
            let call = o.syscall.unwrap_or("accept");
            let fd = o.fd.unwrap_or(-1);
            format!(
                "connection accepted by {}: {call}() = {fd}",
                reader.as_deref().unwrap_or("a process")
            )
        }
        OutcomeKind::Queued => match (&j.socket, socket_owner) {
            (Some(s), Some(ow)) => format!(
                "delivered to {} on {}, queued, not read while sockpath waited",
                owner_text(ow),
                s.local
            ),
            _ => o.text(),
        },
        OutcomeKind::Dropped if o.reason.is_none() => o.text(),
        OutcomeKind::Dropped => {
            let mut t = format!(
                "dropped: {}",
                o.reason.as_deref().unwrap_or("unknown reason")
            );
            if o.reset_sent {
                t.push_str(", reset sent");
            }
            if let Some(i) = &o.icmp_sent {
                t.push_str(&format!(", {i} sent"));
            }
            t
        }
        OutcomeKind::SynAckSent => match (&j.socket, socket_owner) {
            (Some(s), Some(ow)) => format!(
                "answered with SYN-ACK by listener {} of {}",
                s.local,
                owner_text(ow)
            ),
            _ => o.text(),
        },
        OutcomeKind::Consumed
        | OutcomeKind::StateChanged
        | OutcomeKind::AcceptQueued
        | OutcomeKind::ResetReceived => {
            let text = o.text();
            match socket_owner {
                Some(ow) if !text.contains(&format!("[{}]", ow.pid)) => {
                    format!("{text} (socket of {})", owner_text(ow))
                }
                _ => text,
            }
        }
        OutcomeKind::Unknown => o.text(),
    };
    let mut line = format!("sockpath journey {}: {text}", j.id);
    if !j.complete {
        line.push_str(&format!(
            " [INCOMPLETE: {}]",
            j.incomplete_reason.as_deref().unwrap_or("unknown")
        ));
    }
    line
}

fn offset(ns: Option<u64>) -> String {
    match ns {
        None => "inferred".to_string(),
        Some(ns) if ns < 1_000_000 => format!("+{:.1}µs", ns as f64 / 1e3),
        Some(ns) => format!("+{:.3}ms", ns as f64 / 1e6),
    }
}

fn stage_text(s: &Stage) -> String {
    let mut t = format!("{} {}", offset(s.offset_ns), s.name);
    if s.observed() && !s.hook_target.is_empty() {
        t.push_str(&format!(" [{} {}]", s.hook.as_str(), s.hook_target));
    }
    let detail = s.detail();
    if !detail.is_empty() {
        t.push_str(": ");
        t.push_str(&detail);
    }
    t
}

fn socket_text(s: &SocketView) -> String {
    let peer = if s.has_peer() {
        format!(" <- {}", s.remote)
    } else {
        String::new()
    };
    let owner = s
        .owner
        .as_ref()
        .map(|o| format!(", {}", owner_text(o)))
        .unwrap_or_default();
    format!("socket {}{peer} {}{owner}", s.local, s.state)
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_COMMENT {
        let mut end = MAX_COMMENT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The frame's comments: the headline, each stage, the socket.
pub fn comments(j: &Journey) -> Vec<String> {
    let mut v = vec![headline(j)];
    v.extend(j.stages.iter().map(stage_text));
    if let Some(s) = &j.socket {
        v.push(socket_text(s));
    }
    v.into_iter().map(clip).collect()
}

/// Journeys as the JSON output prints them, for tests here and in `annotate`.
#[cfg(test)]
pub mod fixture {
    use serde_json::{json, Value};

    /// The data segment of the netcat experiment, read by nc.
    pub fn read_journey() -> Value {
        json!({
            "type": "journey", "id": 4, "kernel_id": 77, "ts_ns": 1_700_000_000_218_067_000u64,
            "ts": "2023-11-14T22:13:20.218067000Z", "cpu": 1, "iface": "lo", "ifindex": 1,
            "netns": 4026531840u32, "wire_len": 72, "ip_version": 4,
            "src": "127.0.0.1", "dst": "127.0.0.1", "proto": "tcp", "sport": 4444, "dport": 4000,
            "flags": ["ACK", "PSH"], "seq": 1000, "ack": 2000, "window": 64,
            "payload_len": 6, "ip_id": 4242,
            "stages": [
                {"name": "netif_receive_skb", "hook": "tp_btf", "hook_target": "netif_receive_skb",
                 "offset_ns": 0, "detail": "dev lo (ifindex 1), 72 bytes"},
                {"name": "ip_rcv", "hook": "inferred", "hook_target": "", "offset_ns": null,
                 "detail": "headers valid, local destination"},
                {"name": "read", "hook": "tp_btf", "hook_target": "sock_recv_length",
                 "offset_ns": 489_100, "detail": "6 bytes read by nc[1234] via read(4)"}
            ],
            "socket": {"proto": "tcp", "local": "127.0.0.1:4000", "remote": "127.0.0.1:4444",
                       "state": "ESTABLISHED", "sk": "ffff8880", "ino": 99, "netns": 4026531840u32,
                       "owner": {"pid": 1234, "comm": "nc", "fd": 4}},
            "state_changes": [],
            "outcome": {"kind": "read", "reason": null,
                        "text": "6 bytes delivered and read by nc[1234] via read(4)",
                        "pid": 1234, "comm": "nc", "syscall": "read", "fd": 4, "bytes": 6,
                        "reset_sent": false, "icmp_sent": null},
            "complete": true, "incomplete_reason": null
        })
    }

    /// A SYN to a closed port: reset, dropped.
    pub fn refused_journey() -> Value {
        json!({
            "type": "journey", "id": 9, "kernel_id": 78, "ts_ns": 1_700_000_000_326_313_000u64,
            "ts": "2023-11-14T22:13:20.326313000Z", "cpu": 0, "iface": "lo", "ifindex": 1,
            "netns": 4026531840u32, "wire_len": 74, "ip_version": 4,
            "src": "127.0.0.1", "dst": "127.0.0.1", "proto": "tcp", "sport": 60030, "dport": 4000,
            "flags": ["SYN"], "seq": 436928157u32, "ack": 0, "window": 65495,
            "payload_len": 0, "ip_id": 777,
            "stages": [
                {"name": "netif_receive_skb", "hook": "tp_btf", "hook_target": "netif_receive_skb",
                 "offset_ns": 0, "detail": "dev lo (ifindex 1), 74 bytes"},
                {"name": "tcp_send_reset", "hook": "tp_btf", "hook_target": "tcp_send_reset",
                 "offset_ns": 7600, "detail": "RST sent, no socket (reason NO_SOCKET)"}
            ],
            "socket": null, "state_changes": [],
            "outcome": {"kind": "dropped", "reason": "NO_SOCKET",
                        "text": "no socket for 127.0.0.1:4000: RST sent, dropped (NO_SOCKET)",
                        "pid": null, "comm": null, "syscall": null, "fd": null, "bytes": null,
                        "reset_sent": true, "icmp_sent": null},
            "complete": true, "incomplete_reason": null
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{fixture::*, *};

    fn view(v: serde_json::Value) -> Journey {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn read_headline_names_process_fd_call_and_bytes() {
        assert_eq!(
            headline(&view(read_journey())),
            "sockpath journey 4: delivered to nc (pid 1234) fd 4, read by read() 6 bytes"
        );
    }

    #[test]
    fn partial_read_says_what_is_still_queued() {
        let mut v = read_journey();
        v["outcome"]["bytes"] = 2.into();
        assert!(headline(&view(v)).ends_with("read by read() 2 bytes (4 still queued)"));
    }

    #[test]
    fn drop_headline_names_reason_and_answer() {
        assert_eq!(
            headline(&view(refused_journey())),
            "sockpath journey 9: dropped: NO_SOCKET, reset sent"
        );
        let mut v = refused_journey();
        v["outcome"]["reset_sent"] = false.into();
        v["outcome"]["icmp_sent"] = "ICMP port unreachable".into();
        assert_eq!(
            headline(&view(v)),
            "sockpath journey 9: dropped: NO_SOCKET, ICMP port unreachable sent"
        );
    }

    #[test]
    fn syn_ack_headline_names_the_listener_and_its_owner() {
        let mut v = read_journey();
        v["outcome"]["kind"] = "syn_ack_sent".into();
        v["socket"]["state"] = "LISTEN".into();
        v["socket"]["owner"]["fd"] = 3.into();
        assert_eq!(
            headline(&view(v)),
            "sockpath journey 4: answered with SYN-ACK by listener 127.0.0.1:4000 of nc (pid 1234) fd 3"
        );
    }

    #[test]
    fn incomplete_journeys_say_so() {
        let mut v = refused_journey();
        v["complete"] = false.into();
        v["incomplete_reason"] = "events lost".into();
        assert!(headline(&view(v)).ends_with("[INCOMPLETE: events lost]"));
    }

    #[test]
    fn owner_is_added_when_the_outcome_text_lacks_it() {
        let mut v = read_journey();
        v["outcome"] = serde_json::json!({"kind": "consumed", "reason": null,
            "text": "ACK processed by the established socket", "pid": null, "comm": null,
            "syscall": null, "fd": null, "bytes": null, "reset_sent": false, "icmp_sent": null});
        assert_eq!(
            headline(&view(v)),
            "sockpath journey 4: ACK processed by the established socket (socket of nc (pid 1234) fd 4)"
        );
    }

    #[test]
    fn one_comment_per_stage_then_the_socket() {
        let c = comments(&view(read_journey()));
        assert_eq!(
            c[1..],
            [
                "+0.0µs netif_receive_skb [tp_btf netif_receive_skb]: dev lo (ifindex 1), 72 bytes",
                "inferred ip_rcv: headers valid, local destination",
                "+489.1µs read [tp_btf sock_recv_length]: 6 bytes read by nc[1234] via read(4)",
                "socket 127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED, nc (pid 1234) fd 4",
            ]
        );
    }

    #[test]
    fn long_comments_are_clipped_on_a_character_boundary() {
        let mut v = read_journey();
        v["stages"][0]["detail"] = "é".repeat(3000).into();
        let c = comments(&view(v));
        assert!(c[1].len() <= MAX_COMMENT + '…'.len_utf8());
        assert!(c[1].ends_with('…'));
    }
}
