//! The words a journey is told with, rendered from the model's data: a stage's detail
//! (`stage`, `lookup`) and the outcome's sentence (`outcome`). The text output, the JSON (a
//! stage's `detail`, the outcome's `text`) and the pcapng comments all take them from here.
//!
//! Renderers write into any `fmt::Write`: the JSON writer renders straight into its buffer, the
//! text output into a `String` it reuses, serde through its own writer, the rest into a new
//! `String` (`Stage::detail()`, `Outcome::text()`).

mod lookup;
mod outcome;
mod stage;
#[cfg(test)]
pub mod tests;

use std::fmt::{self, Write};

pub use self::{outcome::write as outcome_text, stage::write as stage_detail};
use crate::{
    journey::{
        model::{Caller, Connect, Outcome, SocketView, Stage},
        names,
        sockets::endpoint,
    },
    text::{int, uint},
};

impl Stage {
    /// What the stage saw, in words: JSON's `detail`.
    pub fn detail(&self) -> String {
        let mut s = String::new();
        let _ = stage::write(&mut s, &self.data);
        s
    }
}

impl Outcome {
    /// What became of the packet, in one sentence: JSON's `text`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = outcome::write(&mut s, self);
        s
    }
}

type R = fmt::Result;

/// `127.0.0.1:4000`, `[::1]:4000`.
fn addr<W: Write + ?Sized>(w: &mut W, a: std::net::SocketAddr) -> R {
    w.write_str(&endpoint(a.ip(), a.port()))
}

/// `nc[123]`
fn process<W: Write + ?Sized>(w: &mut W, comm: &str, pid: u32) -> R {
    w.write_str(comm)?;
    w.write_char('[')?;
    w.write_str(uint(pid).as_str())?;
    w.write_char(']')
}

/// `nc[123] via read(4)`, or `nc[123]` while the call is not known.
fn who<W: Write + ?Sized>(
    w: &mut W,
    comm: &str,
    pid: u32,
    syscall: Option<&str>,
    fd: Option<i32>,
) -> R {
    process(w, comm, pid)?;
    if let Some(c) = syscall {
        w.write_str(" via ")?;
        w.write_str(c)?;
        w.write_char('(')?;
        if let Some(fd) = fd {
            w.write_str(int(fd).as_str())?;
        }
        w.write_char(')')?;
    }
    Ok(())
}

fn caller<W: Write + ?Sized>(w: &mut W, c: &Caller) -> R {
    who(w, &c.comm, c.pid, c.syscall, c.fd)
}

/// ` (nc[123] fd 4)`, or nothing when the owner is unknown.
fn owner<W: Write + ?Sized>(w: &mut W, v: &SocketView) -> R {
    if let Some(o) = &v.owner {
        w.write_str(" (")?;
        process(w, &o.comm, o.pid)?;
        w.write_str(" fd ")?;
        w.write_str(int(o.fd).as_str())?;
        w.write_char(')')?;
    }
    Ok(())
}

/// `127.0.0.1:4000 <- 127.0.0.1:4444 ESTABLISHED (nc[123] fd 4)`: the remote end only when it
/// has one.
fn sock<W: Write + ?Sized>(w: &mut W, v: &SocketView) -> R {
    w.write_str(&v.local)?;
    if v.has_peer() {
        w.write_str(" <- ")?;
        w.write_str(&v.remote)?;
    }
    w.write_char(' ')?;
    w.write_str(v.state)?;
    owner(w, v)
}

/// `read(4) = -1 ECONNRESET in nc[123]`; `a read failed with ECONNRESET in nc[123]` when the
/// call is not known (io_uring).
fn failed_read<W: Write + ?Sized>(
    w: &mut W,
    comm: &str,
    pid: u32,
    syscall: Option<&str>,
    fd: Option<i32>,
    errno: &str,
) -> R {
    match syscall {
        Some(c) => {
            w.write_str(c)?;
            w.write_char('(')?;
            if let Some(fd) = fd {
                w.write_str(int(fd).as_str())?;
            }
            w.write_str(") = -1 ")?;
            w.write_str(errno)?;
        }
        None => {
            w.write_str("a read failed with ")?;
            w.write_str(errno)?;
        }
    }
    w.write_str(" in ")?;
    process(w, comm, pid)
}

/// `0`, or `-1 ECONNREFUSED`.
fn syscall_result<W: Write + ?Sized>(w: &mut W, ret: i64) -> R {
    if ret >= 0 {
        w.write_str(int(ret).as_str())
    } else {
        w.write_str("-1 ")?;
        w.write_str(&names::errno(-ret))
    }
}

/// `; connect() returned -1 ECONNREFUSED in nc[123]`, or nothing.
fn connect<W: Write + ?Sized>(w: &mut W, c: Option<&Connect>) -> R {
    if let Some(c) = c {
        w.write_str("; connect() returned ")?;
        syscall_result(w, c.ret)?;
        w.write_str(" in ")?;
        process(w, &c.comm, c.pid)?;
    }
    Ok(())
}
