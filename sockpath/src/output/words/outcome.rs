//! The outcome's sentence, and its JSON object (the sentence as `text`).

use std::fmt::Write;

use serde::{ser::SerializeStruct, Serialize, Serializer};

use super::{addr, connect, failed_read, owner, process, sock, who, R};
use crate::{
    journey::model::{AfterReset, Outcome, OutcomeData, TimeWaitAnswer, Transition},
    text::{int, uint},
};

/// The process fields' reader: `nc[123] via read(4)`.
fn reader<W: Write + ?Sized>(w: &mut W, o: &Outcome) -> R {
    who(
        w,
        o.comm.as_deref().unwrap_or_default(),
        o.pid.unwrap_or_default(),
        o.syscall,
        o.fd,
    )
}

/// `TCP ESTABLISHED -> CLOSE_WAIT`; a connection that lives on as a time-wait socket is said to
/// go to TIME_WAIT.
fn tcp<W: Write + ?Sized>(w: &mut W, t: &Transition) -> R {
    w.write_str("TCP ")?;
    w.write_str(t.from)?;
    w.write_str(" -> ")?;
    w.write_str(if t.time_wait { "TIME_WAIT" } else { t.to })?;
    if t.fin_wait2 {
        w.write_str(" (a time-wait socket in FIN_WAIT2 continues it)")?;
    }
    Ok(())
}

pub fn write<W: Write + ?Sized>(w: &mut W, o: &Outcome) -> R {
    let reason = o.reason.as_deref().unwrap_or_default();
    match &o.data {
        OutcomeData::Read { payload } => {
            let got = o.bytes.unwrap_or_default();
            if got >= *payload {
                w.write_str(uint(*payload).as_str())?;
                w.write_str(" bytes delivered and read by ")?;
                reader(w, o)
            } else {
                write!(w, "{got} of {payload} bytes read by ")?;
                reader(w, o)?;
                w.write_str(", the rest still queued")
            }
        }
        OutcomeData::Unread { payload, local } => write!(
            w,
            "{payload} bytes queued on {local}, not read while sockpath waited"
        ),
        OutcomeData::QueuedOn { local } => {
            w.write_str("queued on ")?;
            addr(w, *local)
        }
        OutcomeData::Accepted => {
            w.write_str("connection accepted: ")?;
            w.write_str(o.syscall.unwrap_or("accept"))?;
            w.write_str("() = ")?;
            w.write_str(int(o.fd.unwrap_or(-1)).as_str())?;
            w.write_str(" in ")?;
            process(
                w,
                o.comm.as_deref().unwrap_or_default(),
                o.pid.unwrap_or_default(),
            )
        }
        OutcomeData::AcceptQueued { listener } => {
            w.write_str("handshake complete: connection waits in ")?;
            match listener {
                Some(l) => addr(w, *l)?,
                None => w.write_str("the listener")?,
            }
            w.write_str("'s accept queue (not accepted while sockpath waited)")
        }
        OutcomeData::SynAck { listener } => {
            w.write_str("listener ")?;
            w.write_str(&listener.local)?;
            owner(w, listener)?;
            w.write_str(" answered with SYN-ACK")
        }
        OutcomeData::StateChanged {
            change,
            connect: c,
            eof,
        } => {
            tcp(w, change)?;
            connect(w, c.as_ref())?;
            if *eof {
                w.write_str("; end of file read by ")?;
                reader(w, o)?;
            }
            Ok(())
        }
        OutcomeData::Purged { change } => {
            tcp(w, change)?;
            w.write_str("; the socket had been closed, its queue purged (QUEUE_PURGE)")
        }
        OutcomeData::EndOfFile => {
            w.write_str("end of file read by ")?;
            reader(w, o)
        }
        OutcomeData::Consumed { flags } => {
            for (i, f) in flags.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                w.write_str(f)?;
            }
            w.write_str(" processed by the established socket")
        }
        OutcomeData::ConsumedAt { location, why } => {
            match why {
                Some(why) => {
                    super::stage::consumed_why(w, *why)?;
                    w.write_str(", then freed by the kernel")?;
                }
                None => w.write_str("consumed by the kernel")?,
            }
            match location {
                Some(l) => write!(w, " at {l}"),
                None => Ok(()),
            }
        }
        OutcomeData::TimeWait {
            local,
            remote,
            substate,
            answer,
        } => {
            w.write_str("handled by the time-wait socket ")?;
            addr(w, *local)?;
            w.write_str(" <- ")?;
            addr(w, *remote)?;
            if let Some(s) = substate {
                write!(w, " ({s})")?;
            }
            match answer {
                TimeWaitAnswer::Sent(flags) => write!(w, ": {} sent", flags.join(","))?,
                TimeWaitAnswer::Reset => w.write_str(": RST sent")?,
                TimeWaitAnswer::NewSyn { listener } => {
                    w.write_str(": a new SYN reusing the port; listener ")?;
                    w.write_str(&listener.local)?;
                    owner(w, listener)?;
                    w.write_str(" answered with SYN-ACK")?;
                }
                TimeWaitAnswer::Nothing => w.write_str(": nothing sent")?,
            }
            if !reason.is_empty() {
                write!(w, "; then freed as a drop ({reason})")?;
            }
            Ok(())
        }
        OutcomeData::SynCookie {
            listener,
            queue,
            syn_queue,
        } => {
            match listener {
                Some(l) => {
                    w.write_str("listener ")?;
                    w.write_str(&l.local)?;
                    owner(w, l)?;
                }
                None => w.write_str("the listener")?,
            }
            w.write_str(" answered with a SYN cookie")?;
            match (queue, syn_queue) {
                (Some((_, max)), Some(syn)) if syn >= max => write!(
                    w,
                    ": its SYN queue was full ({syn} of {max} handshakes in progress)"
                )?,
                (Some((_, max)), Some(syn)) => write!(
                    w,
                    " though its SYN queue was not full ({syn} of {max}): net.ipv4.tcp_syncookies=2"
                )?,
                _ => w.write_str(": its SYN queue was full, or net.ipv4.tcp_syncookies=2")?,
            }
            w.write_str(
                "; no request socket kept: the client sees a plain SYN-ACK, and its ACK, if the \
                 cookie checks out, creates the connection",
            )
        }
        OutcomeData::SynNotAnswered {
            listener,
            queue,
            syn_queue,
            syn_sysctls,
            retransmission,
        } => {
            w.write_str("SYN not answered by ")?;
            match listener {
                Some(l) => {
                    w.write_str("listener ")?;
                    w.write_str(&l.local)?;
                    owner(w, l)?;
                }
                None => w.write_str("the listener")?,
            }
            // The kernel checks the SYN queue first (tcp_conn_request()): full, and without SYN
            // cookies, the SYN is dropped; then the accept queue.
            match (queue, syn_queue) {
                (Some((_, max)), Some(syn)) if syn >= max => write!(
                    w,
                    ": SYN queue full ({syn} of {max} handshakes in progress) and no SYN cookies \
                     (net.ipv4.tcp_syncookies)"
                )?,
                (Some((len, max)), _) if len > max => {
                    write!(w, ": accept queue full ({len} of {max})")?
                }
                // Then, without SYN cookies, tcp_conn_request() keeps the last quarter of
                // tcp_max_syn_backlog for peers it has seen alive before (tcp_peer_is_proven():
                // TCP metrics with an RTT for the peer's address).
                (Some(_), Some(syn))
                    if syn_sysctls.is_some_and(|(backlog, cookies)| {
                        cookies == 0 && (backlog as i64 - *syn as i64) < (backlog >> 2) as i64
                    }) =>
                {
                    let (backlog, _) = syn_sysctls.unwrap_or_default();
                    write!(
                        w,
                        ": its SYN queue ({syn} handshakes in progress) had reached 3/4 of \
                         net.ipv4.tcp_max_syn_backlog ({backlog}; {backlog} - {syn} < {backlog} / 4) \
                         with no SYN cookies (net.ipv4.tcp_syncookies=0): the last quarter is kept \
                         for peers the kernel has seen alive before, and this client was not one"
                    )?
                }
                (Some((len, max)), syn) => {
                    write!(
                        w,
                        ": neither queue full as the lookup read them (accept queue {len} of {max}"
                    )?;
                    if let Some(syn) = syn {
                        write!(w, ", SYN queue {syn}")?;
                    }
                    match syn_sysctls {
                        // Read, and the rule above did not hold.
                        Some((backlog, cookies)) => write!(
                            w,
                            ") nor the SYN backlog's own check met (net.ipv4.tcp_max_syn_backlog \
                             {backlog}, net.ipv4.tcp_syncookies={cookies}): another cause"
                        )?,
                        None => w.write_str(
                            "): the SYN backlog's own check (net.ipv4.tcp_max_syn_backlog, \
                             without SYN cookies) or another",
                        )?,
                    }
                }
                (None, _) => w.write_str(
                    ": its accept queue or SYN queue was full, or without SYN cookies its SYN \
                     queue had reached 3/4 of net.ipv4.tcp_max_syn_backlog (no hook at the \
                     listener here to read which)",
                )?,
            }
            w.write_str(": SYN dropped, the client sends it again when its retransmission timer fires (1 s, then longer)")?;
            if let Some(r) = retransmission {
                write!(
                    w,
                    "; retransmission {} of the SYN of journey {}, {:.1} s after it",
                    r.n,
                    r.first,
                    r.after_ns as f64 / 1e9
                )?;
            }
            Ok(())
        }
        OutcomeData::ResetReceived {
            socket,
            connect: c,
            after,
        } => {
            w.write_str("connection reset")?;
            if let Some(s) = socket {
                w.write_str(" on ")?;
                sock(w, s)?;
            }
            if let Some(e) = &o.reason {
                write!(w, ": {e} reported to the socket's user")?;
            }
            connect(w, c.as_ref())?;
            match after {
                AfterReset::ReadFailed { errno } => {
                    w.write_str("; ")?;
                    failed_read(
                        w,
                        o.comm.as_deref().unwrap_or_default(),
                        o.pid.unwrap_or_default(),
                        o.syscall,
                        o.fd,
                        errno,
                    )
                }
                AfterReset::Closed { comm, pid } => {
                    w.write_str("; closed by ")?;
                    process(w, comm, *pid)?;
                    w.write_str(" without a read after the reset")
                }
                AfterReset::NotRead => w.write_str("; no read of the error while sockpath waited"),
                AfterReset::Nothing => Ok(()),
            }
        }
        OutcomeData::Dropped {
            no_socket,
            dst,
            connect: c,
        } => {
            if *no_socket {
                w.write_str("no socket for ")?;
                if let Some(d) = dst {
                    addr(w, *d)?;
                }
                w.write_str(": ")?;
            }
            if o.reset_sent {
                w.write_str("RST sent, ")?;
            }
            if let Some(i) = &o.icmp_sent {
                write!(w, "{i} sent, ")?;
            }
            write!(w, "dropped ({reason})")?;
            connect(w, c.as_ref())
        }
        OutcomeData::ResetSent => write!(w, "RST sent ({reason})"),
        OutcomeData::AckFreedUnseen => w.write_str(
            "consumed (inferred): a pure ACK the kernel processed and freed where no hook sees \
             it (no drop, reset or error was seen, and no event was lost)",
        ),
        OutcomeData::NothingObserved => w.write_str("nothing observed after device receive"),
        OutcomeData::Logged(words) => w.write_str(words),
    }
}

/// The outcome's JSON object: its fields, with the sentence as `text` after `reason`.
impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("Outcome", 10)?;
        o.serialize_field("kind", &self.kind)?;
        o.serialize_field("reason", &self.reason)?;
        o.serialize_field("text", &Sentence(self))?;
        o.serialize_field("pid", &self.pid)?;
        o.serialize_field("comm", &self.comm)?;
        o.serialize_field("syscall", &self.syscall)?;
        o.serialize_field("fd", &self.fd)?;
        o.serialize_field("bytes", &self.bytes)?;
        o.serialize_field("reset_sent", &self.reset_sent)?;
        o.serialize_field("icmp_sent", &self.icmp_sent)?;
        if let Some(ms) = self.time_wait_left_ms {
            o.serialize_field("time_wait_left_ms", &ms)?;
        }
        o.end()
    }
}

/// The sentence, for serde: written through its string escaper.
struct Sentence<'a>(&'a Outcome);

impl Serialize for Sentence<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Sentence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> R {
        write(f, self.0)
    }
}
