//! A socket lookup's result in words, and why a listener was the one.

use std::{fmt::Write, net::SocketAddr};

use super::{addr, owner, sock, R};
use crate::journey::model::{ListenerWhy, Lookup, SocketView};

/// `127.0.0.1:4000 <- 127.0.0.1:4444`
fn ends<W: Write + ?Sized>(w: &mut W, local: SocketAddr, remote: SocketAddr) -> R {
    addr(w, local)?;
    w.write_str(" <- ")?;
    addr(w, remote)
}

pub fn write<W: Write + ?Sized>(w: &mut W, l: &Lookup) -> R {
    match l {
        Lookup::Unparsed => Ok(()),
        Lookup::NoEstablished { dst, src } => {
            w.write_str("no established socket for ")?;
            ends(w, *dst, *src)
        }
        Lookup::NoListener { dst } => {
            w.write_str("no listener for ")?;
            addr(w, *dst)
        }
        Lookup::NoBound { dst } => {
            w.write_str("no socket bound to ")?;
            addr(w, *dst)
        }
        Lookup::Request { local, remote } => {
            w.write_str("request socket ")?;
            ends(w, *local, *remote)?;
            w.write_str(" (handshake in progress)")
        }
        Lookup::TimeWait {
            local,
            remote,
            substate,
            after,
            left_ms,
        } => {
            w.write_str("time-wait socket ")?;
            ends(w, *local, *remote)?;
            match (substate, after) {
                (Some(s), false) => write!(w, " ({s})")?,
                (Some(s), true) => write!(w, " ({s} once it handled the segment)")?,
                (None, _) => {}
            }
            match (left_ms, substate) {
                (Some(ms), Some(s)) => write!(w, ": {:.1} s left of {s}", *ms as f64 / 1000.0),
                _ => Ok(()),
            }
        }
        Lookup::Established { socket } => {
            w.write_str("established match: ")?;
            sock(w, socket)
        }
        Lookup::Chosen {
            socket,
            why: reasons,
        } => {
            sock(w, socket)?;
            why(w, reasons)
        }
        Lookup::ImpliedListener {
            socket,
            why: reasons,
        } => {
            w.write_str("listener ")?;
            sock(w, socket)?;
            why(w, reasons)
        }
        Lookup::ImpliedRequest { local, remote } => {
            w.write_str("request socket for ")?;
            ends(w, *local, *remote)?;
            w.write_str(" (handshake in progress)")
        }
        Lookup::ImpliedConnection { socket, state } => {
            w.write_str("4-tuple match ")?;
            w.write_str(&socket.local)?;
            w.write_str(" <- ")?;
            w.write_str(&socket.remote)?;
            w.write_str(" (")?;
            w.write_str(state)?;
            w.write_char(')')
        }
        Lookup::ImpliedBound {
            socket,
            why: reasons,
        } => {
            w.write_str("bound socket ")?;
            w.write_str(&socket.local)?;
            why(w, reasons)
        }
        Lookup::ImpliedNone { dst } => {
            w.write_str("no socket for ")?;
            addr(w, *dst)
        }
        Lookup::NotObserved => w.write_str("result not observed"),
    }
}

/// `127.0.0.1:4000 (nc[123] fd 3)`
fn listener<W: Write + ?Sized>(w: &mut W, v: &SocketView) -> R {
    w.write_str(&v.local)?;
    owner(w, v)
}

/// `: ` and the reasons, `; ` between them; nothing when there are none.
fn why<W: Write + ?Sized>(w: &mut W, reasons: &[ListenerWhy]) -> R {
    for (i, r) in reasons.iter().enumerate() {
        w.write_str(if i == 0 { ": " } else { "; " })?;
        match r {
            ListenerWhy::OnlyReuseportMember => {
                w.write_str("the only member of its SO_REUSEPORT group")?;
            }
            ListenerWhy::ReuseportHash { others } => {
                w.write_str("the SO_REUSEPORT group member the kernel picked by the hash of the connection's addresses and ports (the other member")?;
                w.write_str(if others.len() > 1 { "s: " } else { ": " })?;
                for (i, o) in others.iter().enumerate() {
                    if i > 0 {
                        w.write_str(", ")?;
                    }
                    listener(w, o)?;
                }
                w.write_char(')')?;
            }
            ListenerWhy::BeatsWildcard { dst, wildcard } => {
                write!(
                    w,
                    "bound to the destination address {dst}, it beats the wildcard listener "
                )?;
                listener(w, wildcard)?;
            }
            ListenerWhy::OtherAddress { other, dst } => {
                listener(w, other)?;
                write!(w, " is bound to another address than {dst}")?;
            }
        }
    }
    Ok(())
}
