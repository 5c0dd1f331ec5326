//! A journey's JSON object written straight to bytes, for every packet.
//!
//! It is the object serde_json writes from `Journey`'s `Serialize` (a test checks them byte for
//! byte), but serde_json spent about 26,000 instructions on each small-UDP journey (callgrind,
//! byte fixture), 40 % of the agent's work: it writes each of the ~60 keys and strings as three
//! separate escaped writes, and goes through a map for the flattened headers. Here keys are
//! literals and a string is copied in one go once a branch-free scan finds nothing to escape;
//! the rare string that needs escaping still goes through serde_json. Syscalls, notes and the
//! summary, a few per second at most, keep the derived serialization.

use std::{fmt, io::Write, net::IpAddr};

use super::words;
use crate::{
    journey::{
        clock,
        model::{Journey, Outcome, OutcomeKind, SocketView, Stage, StateChange},
    },
    packet::{self, Headers},
};

/// Appends `j` as one JSON object (no newline).
pub fn write(out: &mut Vec<u8>, j: &Journey) {
    let w = &mut W(out);
    w.raw(b"{\"id\":");
    w.num(j.id);
    w.raw(b",\"kernel_id\":");
    w.num(j.kernel_id);
    w.raw(b",\"ts_ns\":");
    w.num(j.ts_ns);
    w.raw(b",\"ts\":\"");
    w.raw(clock::rfc3339(j.ts.0).as_bytes());
    w.raw(b"\",\"cpu\":");
    w.num(j.cpu);
    w.raw(b",\"iface\":");
    w.str(&j.iface);
    w.raw(b",\"ifindex\":");
    w.num(j.ifindex);
    w.raw(b",\"netns\":");
    w.num(j.netns);
    w.raw(b",\"wire_len\":");
    w.num(j.wire_len);
    if let Some(h) = &j.headers {
        headers(w, h);
    }
    w.raw(b",\"stages\":[");
    for (i, s) in j.stages.iter().enumerate() {
        if i > 0 {
            w.raw(b",");
        }
        stage(w, s);
    }
    w.raw(b"],\"socket\":");
    opt_socket(w, j.socket.as_ref());
    w.raw(b",\"state_changes\":");
    state_changes(w, &j.state_changes);
    w.raw(b",\"outcome\":");
    outcome(w, &j.outcome);
    w.raw(b",\"complete\":");
    w.bool(j.complete);
    w.raw(b",\"incomplete_reason\":");
    w.opt_str(j.incomplete_reason.as_deref());
    if let Some(n) = j.sampled_one_in {
        w.raw(b",\"sampled_one_in\":");
        w.num(n);
    }
    if j.sampled_out {
        w.raw(b",\"sampled_out\":true");
    }
    w.raw(b"}");
}

/// Flattened into the journey, as `#[serde(flatten)]` does.
fn headers(w: &mut W, h: &Headers) {
    w.raw(b",\"ip_version\":");
    w.num(h.ip_version);
    w.raw(b",\"src\":");
    w.ip(h.src);
    w.raw(b",\"dst\":");
    w.ip(h.dst);
    w.raw(b",\"proto\":");
    match packet::proto_str(h.proto) {
        "other" => w.str(&packet::proto_name(h.proto)),
        name => w.str(name),
    }
    w.raw(b",\"sport\":");
    w.opt_num(h.sport);
    w.raw(b",\"dport\":");
    w.opt_num(h.dport);
    if let Some(t) = &h.tcp {
        w.raw(b",\"flags\":[");
        for (i, f) in t.flags.iter().enumerate() {
            if i > 0 {
                w.raw(b",");
            }
            w.str(f);
        }
        w.raw(b"],\"seq\":");
        w.num(t.seq);
        w.raw(b",\"ack\":");
        w.num(t.ack);
        w.raw(b",\"window\":");
        w.num(t.window);
    }
    w.raw(b",\"payload_len\":");
    w.num(h.payload_len);
    w.raw(b",\"ip_id\":");
    w.opt_num(h.ip_id);
}

fn stage(w: &mut W, s: &Stage) {
    w.raw(b"{\"name\":");
    w.str(s.name);
    w.raw(b",\"hook\":");
    w.str(s.hook.as_str());
    w.raw(b",\"hook_target\":");
    w.str(s.hook_target);
    w.raw(b",\"offset_ns\":");
    w.opt_num(s.offset_ns);
    w.raw(b",\"since_prev_ns\":");
    w.opt_num(s.since_prev_ns);
    w.raw(b",\"detail\":");
    w.words(|b| words::stage_detail(b, &s.data));
    w.raw(b"}");
}

fn opt_socket(w: &mut W, s: Option<&SocketView>) {
    let Some(s) = s else {
        return w.raw(b"null");
    };
    w.raw(b"{\"proto\":");
    w.str(s.proto);
    w.raw(b",\"local\":");
    w.str(&s.local);
    w.raw(b",\"remote\":");
    w.str(&s.remote);
    w.raw(b",\"state\":");
    w.str(s.state);
    w.raw(b",\"sk\":");
    // The derived form writes it as "0x..." text.
    let _ = write!(w.0, "\"{:#x}\"", s.sk.0);
    w.raw(b",\"ino\":");
    w.num(s.ino);
    w.raw(b",\"netns\":");
    w.num(s.netns);
    w.raw(b",\"owner\":");
    match &s.owner {
        None => w.raw(b"null"),
        Some(o) => {
            w.raw(b"{\"pid\":");
            w.num(o.pid);
            w.raw(b",\"comm\":");
            w.str(&o.comm);
            w.raw(b",\"fd\":");
            w.num(o.fd);
            w.raw(b"}");
        }
    }
    w.raw(b"}");
}

fn state_changes(w: &mut W, changes: &[StateChange]) {
    w.raw(b"[");
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            w.raw(b",");
        }
        w.raw(b"{\"from\":");
        w.str(&c.from);
        w.raw(b",\"to\":");
        w.str(&c.to);
        w.raw(b",\"socket\":");
        w.str(&c.socket);
        w.raw(b"}");
    }
    w.raw(b"]");
}

fn outcome(w: &mut W, o: &Outcome) {
    w.raw(b"{\"kind\":");
    w.str(kind_name(o.kind));
    w.raw(b",\"reason\":");
    w.opt_str(o.reason.as_deref());
    w.raw(b",\"text\":");
    w.words(|b| words::outcome_text(b, o));
    w.raw(b",\"pid\":");
    w.opt_num(o.pid);
    w.raw(b",\"comm\":");
    w.opt_str(o.comm.as_deref());
    w.raw(b",\"syscall\":");
    w.opt_str(o.syscall);
    w.raw(b",\"fd\":");
    w.opt_num(o.fd);
    w.raw(b",\"bytes\":");
    w.opt_num(o.bytes);
    w.raw(b",\"reset_sent\":");
    w.bool(o.reset_sent);
    w.raw(b",\"icmp_sent\":");
    w.opt_str(o.icmp_sent.as_deref());
    if let Some(ms) = o.time_wait_left_ms {
        w.raw(b",\"time_wait_left_ms\":");
        w.num(ms);
    }
    w.raw(b"}");
}

/// `OutcomeKind`'s snake_case serde names.
fn kind_name(k: OutcomeKind) -> &'static str {
    match k {
        OutcomeKind::Read => "read",
        OutcomeKind::Queued => "queued",
        OutcomeKind::Accepted => "accepted",
        OutcomeKind::AcceptQueued => "accept_queued",
        OutcomeKind::SynAckSent => "syn_ack_sent",
        OutcomeKind::StateChanged => "state_changed",
        OutcomeKind::Consumed => "consumed",
        OutcomeKind::Dropped => "dropped",
        OutcomeKind::ResetReceived => "reset_received",
        OutcomeKind::Unknown => "unknown",
    }
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn num<N: itoa::Integer>(&mut self, n: N) {
        self.raw(itoa::Buffer::new().format(n).as_bytes());
    }

    fn opt_num<N: itoa::Integer>(&mut self, n: Option<N>) {
        match n {
            Some(n) => self.num(n),
            None => self.raw(b"null"),
        }
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    fn ip(&mut self, ip: IpAddr) {
        match ip {
            // Most packets: four numbers, without the formatting machinery.
            IpAddr::V4(a) => {
                self.raw(b"\"");
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.raw(b".");
                    }
                    self.num(o);
                }
                self.raw(b"\"");
            }
            // Hex digits and colons: nothing to escape.
            IpAddr::V6(a) => {
                let _ = write!(self.0, "\"{a}\"");
            }
        }
    }

    fn str(&mut self, s: &str) {
        if needs_escape(s.as_bytes()) {
            // Writing a str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.0, s);
        } else {
            self.raw(b"\"");
            self.raw(s.as_bytes());
            self.raw(b"\"");
        }
    }

    /// Words rendered straight into the buffer, as a JSON string: checked for what needs
    /// escaping once written, and in the rare case something does, written again by serde_json.
    fn words(&mut self, render: impl FnOnce(&mut Bytes<'_>) -> fmt::Result) {
        self.raw(b"\"");
        let start = self.0.len();
        // Writing into a Vec cannot fail.
        let _ = render(&mut Bytes(self.0));
        if needs_escape(&self.0[start..]) {
            let words = String::from_utf8_lossy(&self.0[start..]).into_owned();
            self.0.truncate(start - 1);
            self.str(&words);
        } else {
            self.raw(b"\"");
        }
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.raw(b"null"),
        }
    }
}

/// `fmt::Write` into the JSON buffer: words are rendered straight into it.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Whether JSON needs anything in `b` escaped: quote, backslash, control characters. A fold
/// without an early exit, so the compiler checks many bytes per instruction.
fn needs_escape(b: &[u8]) -> bool {
    b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == b'"') | (c == b'\\')
    })
}

/// Test helper: `write` gives exactly serde_json's bytes for `j`.
#[cfg(test)]
pub fn assert_same_as_serde(j: &Journey) {
    let mut fast = Vec::new();
    write(&mut fast, j);
    let serde = serde_json::to_vec(j).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&serde),
        "journey {}",
        j.id
    );
}

#[cfg(test)]
mod tests;
