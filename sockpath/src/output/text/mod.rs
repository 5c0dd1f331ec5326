//! Human output: a capture-style summary line per packet, its journey one stage per line, and
//! the owning processes' socket calls as strace prints them, all on one timeline.

use std::io::Write;

use super::{words, Sink, StartInfo};
use crate::{
    journey::{
        clock::time_of_day,
        model::{Item, Journey, Note, Summary, SyscallRecord},
        sockets::endpoint,
    },
    packet::Headers,
    text::{push_padded, uint},
};

pub struct TextSink<W: Write> {
    out: W,
    scratch: Scratch,
}

impl<W: Write> TextSink<W> {
    /// The writer, with what was written.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn new(out: W) -> Self {
        Self {
            out,
            scratch: Scratch::default(),
        }
    }
}

/// The packet as a capture shows it: `127.0.0.1:4444 → 127.0.0.1:4000 TCP [SYN, ACK] Seq=.. Ack=.. Win=.. Len=0`.
pub fn packet_line(h: &Headers) -> String {
    let mut line = String::with_capacity(112);
    match h.sport.zip(h.dport) {
        Some((s, d)) => {
            line.push_str(&endpoint(h.src, s));
            line.push_str(" → ");
            line.push_str(&endpoint(h.dst, d));
        }
        None => {
            line.push_str(&h.src.to_string());
            line.push_str(" → ");
            line.push_str(&h.dst.to_string());
        }
    }
    line.push(' ');
    line.push_str(&h.proto_name().to_uppercase());
    if let Some(t) = &h.tcp {
        line.push_str(" [");
        line.push_str(&t.flags.join(", "));
        line.push_str("] Seq=");
        line.push_str(uint(t.seq).as_str());
        if t.flags.contains(&"ACK") {
            line.push_str(" Ack=");
            line.push_str(uint(t.ack).as_str());
        }
        line.push_str(" Win=");
        line.push_str(uint(t.window).as_str());
    }
    line.push_str(" Len=");
    line.push_str(uint(h.payload_len).as_str());
    line
}

/// `12.3µs` or `1.234ms`, appended to `s`.
fn push_duration(s: &mut String, ns: u64) {
    // Integer arithmetic, rounded half up: float formatting cost more than the rest of a line.
    if ns < 1_000_000 {
        let tenths = (ns + 50) / 100;
        s.push_str(uint(tenths / 10).as_str());
        s.push('.');
        s.push_str(uint(tenths % 10).as_str());
        s.push_str("µs");
    } else {
        let thousandths = (ns + 500) / 1000;
        s.push_str(uint(thousandths / 1000).as_str());
        s.push('.');
        push_padded(s, thousandths % 1000, 3);
        s.push_str("ms");
    }
}

/// Strings reused from line to line: the text output runs for every packet.
#[derive(Default)]
struct Scratch {
    offset: String,
    hop: String,
    hook: String,
    /// A stage's detail or the outcome's sentence: rendered here, written in one piece.
    words: String,
}

fn write_journey<W: Write>(w: &mut W, j: &Journey, sc: &mut Scratch) -> std::io::Result<()> {
    let iface = if j.iface.is_empty() { "?" } else { &j.iface };
    write!(w, "{} {iface} ", time_of_day(j.ts_ns))?;
    match &j.headers {
        Some(h) => w.write_all(packet_line(h).as_bytes())?,
        None if j.iface.is_empty() => {
            w.write_all(b"packet not seen at device receive (event lost)")?
        }
        None => write!(w, "{} bytes, headers not parsed", j.wire_len)?,
    }
    if j.sampled_out {
        // Not among the one in N followed: only its end was seen, then its device receive.
        writeln!(
            w,
            "  (journey {}; sampled out: told from its end, nothing between followed)",
            j.id
        )?;
    } else {
        writeln!(w, "  (journey {})", j.id)?;
    }
    for st in &j.stages {
        sc.offset.clear();
        match st.offset_ns {
            None => sc.offset.push_str("inferred"),
            Some(ns) => {
                sc.offset.push('+');
                push_duration(&mut sc.offset, ns);
            }
        }
        // The hop's own latency, when it differs from the time since device receive.
        sc.hop.clear();
        if let (Some(d), Some(o)) = (st.since_prev_ns, st.offset_ns) {
            if d != o {
                sc.hop.push_str("(+");
                push_duration(&mut sc.hop, d);
                sc.hop.push(')');
            }
        }
        sc.hook.clear();
        if st.observed() {
            sc.hook.push_str(st.hook.as_str());
            sc.hook.push(' ');
            sc.hook.push_str(st.hook_target);
        }
        sc.words.clear();
        let _ = words::stage_detail(&mut sc.words, &st.data);
        writeln!(
            w,
            "    {:>10} {:>10}  {:<21} {:<37} {}",
            sc.offset, sc.hop, st.name, sc.hook, sc.words
        )?;
    }
    sc.words.clear();
    let _ = words::outcome_text(&mut sc.words, &j.outcome);
    write!(w, "    => {}", sc.words)?;
    if !j.complete {
        write!(
            w,
            "  [INCOMPLETE: {}]",
            j.incomplete_reason.as_deref().unwrap_or("unknown")
        )?;
    }
    w.write_all(b"\n")
}

fn write_syscall<W: Write>(w: &mut W, r: &SyscallRecord) -> std::io::Result<()> {
    writeln!(
        w,
        "{} {}[{}] {}  <{:.6}s>",
        time_of_day(r.ts_ns),
        r.comm,
        r.pid,
        r.text,
        r.duration_ns as f64 / 1e9
    )?;
    for c in &r.state_changes {
        writeln!(w, "    socket {}: {} -> {}", c.socket, c.from, c.to)?;
    }
    Ok(())
}

fn write_note<W: Write>(w: &mut W, n: &Note) -> std::io::Result<()> {
    // Lost: events the kernel could not write; missed: items a daemon dropped for a watcher
    // that read too slowly.
    let mark = if n.kind == "lost" || n.kind == "missed" {
        "!!"
    } else {
        "--"
    };
    writeln!(w, "{} {mark} {}", time_of_day(n.ts_ns), n.text)
}

/// A journey as the text output prints it.
#[cfg(test)]
pub fn journey_text(j: &Journey) -> String {
    let mut v = Vec::new();
    let _ = write_journey(&mut v, j, &mut Scratch::default());
    String::from_utf8_lossy(&v).into_owned()
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
    if let Some(n) = s.sampled_one_in {
        t.push_str(&sampled_text(n, s.sampled.as_ref()));
    }
    t
}

/// The summary's second line in a sampled session: what was followed, and what the kernel
/// counted of every matched packet.
fn sampled_text(n: u32, s: Option<&crate::journey::model::Sampled>) -> String {
    let d = crate::journey::model::Sampled::default();
    let s = s.unwrap_or(&d);
    let c = &s.counted;
    let mut t = format!(
        "--- sampled one in {n}: {} journeys followed in full, {} told from their end only (drop, reset, ICMP error or full queue); the kernel counted every one of the {} matched packets: {} queued, {} to an accept queue, {} read, {} accepted, {} consumed, {} dropped",
        s.followed,
        s.told_at_end,
        c.matched,
        c.queued,
        c.accept_queued,
        c.read,
        c.accepted,
        c.consumed,
        c.dropped,
    );
    if !c.drops.is_empty() {
        let reasons: Vec<String> = c.drops.iter().map(|(r, k)| format!("{r} {k}")).collect();
        t.push_str(&format!(" ({})", reasons.join(", ")));
    }
    t.push_str(&format!(
        ", {} resets sent, {} ICMP errors sent, {} full queues",
        c.reset_sent, c.icmp_sent, c.queue_full
    ));
    if c.uncounted > 0 {
        t.push_str(&format!(
            ", {} packets of ports the statistics had no room for",
            c.uncounted
        ));
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
        match item {
            Item::Journey(j) => write_journey(&mut self.out, j, &mut self.scratch),
            Item::Syscall(r) => write_syscall(&mut self.out, r),
            Item::Note(n) => write_note(&mut self.out, n),
        }
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
mod tests;
