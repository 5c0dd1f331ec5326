//! Human output: a capture-style summary line per packet, its journey one stage per line, and
//! the owning processes' socket calls as strace prints them, all on one timeline.

use std::io::Write;

use super::{Sink, StartInfo};
use crate::{
    journey::{
        clock::time_of_day,
        model::{Item, Journey, Note, Summary, SyscallRecord},
        sockets::endpoint,
    },
    packet::Headers,
};

pub struct TextSink<W: Write> {
    out: W,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

/// The packet as a capture shows it: `127.0.0.1:4444 → 127.0.0.1:4000 TCP [SYN, ACK] Seq=.. Ack=.. Win=.. Len=0`.
pub fn packet_line(h: &Headers) -> String {
    let ports = h.sport.zip(h.dport);
    let (src, dst) = match ports {
        Some((s, d)) => (endpoint(h.src, s), endpoint(h.dst, d)),
        None => (h.src.to_string(), h.dst.to_string()),
    };
    let proto = h.proto_name().to_uppercase();
    let mut line = format!("{src} → {dst} {proto}");
    if let Some(t) = &h.tcp {
        line.push_str(&format!(" [{}] Seq={}", t.flags.join(", "), t.seq));
        if t.flags.contains(&"ACK") {
            line.push_str(&format!(" Ack={}", t.ack));
        }
        line.push_str(&format!(" Win={}", t.window));
    }
    line.push_str(&format!(" Len={}", h.payload_len));
    line
}

fn duration(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else {
        format!("{:.3}ms", ns as f64 / 1e6)
    }
}

fn offset(ns: Option<u64>) -> String {
    match ns {
        None => "inferred".to_string(),
        Some(ns) => format!("+{}", duration(ns)),
    }
}

pub fn journey_text(j: &Journey) -> String {
    let mut s = String::new();
    let what = match &j.headers {
        Some(h) => packet_line(h),
        None if j.iface.is_empty() => "packet not seen at device receive (event lost)".to_string(),
        None => format!("{} bytes, headers not parsed", j.wire_len),
    };
    let iface = if j.iface.is_empty() { "?" } else { &j.iface };
    s.push_str(&format!(
        "{} {iface} {what}  (journey {})\n",
        time_of_day(j.ts_ns),
        j.id
    ));
    for st in &j.stages {
        let hook = if st.observed() {
            format!("{} {}", st.hook.as_str(), st.hook_target)
        } else {
            String::new()
        };
        // The hop's own latency, when it differs from the time since device receive.
        let hop = match (st.since_prev_ns, st.offset_ns) {
            (Some(d), Some(o)) if d != o => format!("(+{})", duration(d)),
            _ => String::new(),
        };
        s.push_str(&format!(
            "    {:>10} {:>10}  {:<21} {:<37} {}\n",
            offset(st.offset_ns),
            hop,
            st.name,
            hook,
            st.detail
        ));
    }
    let mark = if j.complete {
        String::new()
    } else {
        format!(
            "  [INCOMPLETE: {}]",
            j.incomplete_reason.as_deref().unwrap_or("unknown")
        )
    };
    s.push_str(&format!("    => {}{mark}\n", j.outcome.text));
    s
}

pub fn syscall_text(r: &SyscallRecord) -> String {
    let mut s = format!(
        "{} {}[{}] {}  <{:.6}s>\n",
        time_of_day(r.ts_ns),
        r.comm,
        r.pid,
        r.text,
        r.duration_ns as f64 / 1e9
    );
    for c in &r.state_changes {
        s.push_str(&format!(
            "    socket {}: {} -> {}\n",
            c.socket, c.from, c.to
        ));
    }
    s
}

pub fn note_text(n: &Note) -> String {
    let mark = if n.kind == "lost" { "!!" } else { "--" };
    format!("{} {mark} {}\n", time_of_day(n.ts_ns), n.text)
}

pub fn summary_text(s: &Summary) -> String {
    let mut t = format!(
        "--- sockpath: {} packets matched ({} seen at device receive), {} journeys ({} complete, {} incomplete), {} dropped, {} resets sent, {} syscalls, {} events lost",
        s.packets_matched,
        s.packets_seen,
        s.journeys,
        s.complete,
        s.incomplete,
        s.dropped,
        s.resets_sent,
        s.syscalls,
        s.events_lost
    );
    if s.evicted > 0 {
        t.push_str(&format!(
            ", {} journeys given up on (too many in flight)",
            s.evicted
        ));
    }
    if s.read_errors > 0 {
        t.push_str(&format!(
            ", {} packets with unreadable headers",
            s.read_errors
        ));
    }
    if s.decode_errors > 0 {
        t.push_str(&format!(", {} malformed events", s.decode_errors));
    }
    t.push('\n');
    t
}

impl<W: Write> Sink for TextSink<W> {
    fn start(&mut self, info: &StartInfo) -> std::io::Result<()> {
        writeln!(
            self.out,
            "sockpath: watching {} on kernel {}; {} hooks attached in {:.0} ms",
            info.filter,
            info.kernel,
            info.hooks.len(),
            info.attach_ms
        )?;
        self.out.flush()
    }

    fn item(&mut self, item: &Item) -> std::io::Result<()> {
        let text = match item {
            Item::Journey(j) => journey_text(j),
            Item::Syscall(r) => syscall_text(r),
            Item::Note(n) => note_text(n),
        };
        self.out.write_all(text.as_bytes())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn summary(&mut self, s: &Summary) -> std::io::Result<()> {
        self.out.write_all(summary_text(s).as_bytes())?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
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
    fn offsets_pick_a_unit() {
        assert_eq!(offset(None), "inferred");
        assert_eq!(offset(Some(1500)), "+1.5µs");
        assert_eq!(offset(Some(2_500_000)), "+2.500ms");
    }
}
