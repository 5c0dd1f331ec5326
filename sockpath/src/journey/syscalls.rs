//! Socket system calls: who owns which socket, which calls concern a watched socket, and how
//! strace would print them.
//!
//! socket() and the setsockopt()/bind() that follow come before anything says whether the
//! socket will be watched (a client binds port 4444, then connects to the watched port 4000), so
//! they wait here, per socket, until a later call decides; undecided ones are dropped after a
//! while.

use crate::journey::model::Timestamp;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use sockpath_ebpf::event::SyscallKind;

use super::{
    clock::Clock,
    model::{Item, Note, Owner, StateChange, SyscallRecord},
    names,
    sockets::SocketTable,
    state_change,
};
use crate::{
    decode::{SockEv, Socket, SyscallEv},
    filter::WatchFilter,
};

/// Undecided sockets are forgotten after this long.
const UNDECIDED_TTL_NS: u64 = 30_000_000_000;
const MAX_UNDECIDED: usize = 4096;

pub struct Syscalls {
    filter: WatchFilter,
    undecided: FxHashMap<u64, (u64, Vec<SyscallEv>)>,
    /// State changes made in process context, waiting for the thread's system call to return.
    changes: FxHashMap<u32, Vec<(u64, StateChange)>>,
    notes: Vec<Item>,
}

impl Syscalls {
    pub fn undecided_len(&self) -> usize {
        self.undecided.len()
    }
    pub fn changes_len(&self) -> usize {
        self.changes.len()
    }
    pub fn notes_len(&self) -> usize {
        self.notes.len()
    }
    pub fn new(filter: WatchFilter) -> Self {
        Self {
            filter,
            undecided: FxHashMap::default(),
            changes: FxHashMap::default(),
            notes: Vec::new(),
        }
    }

    /// A state change no packet explains: part of the current thread's system call (connect,
    /// close, shutdown) if one returns soon, else a line of its own. Only for a watched socket
    /// of a watched owner: the thread making the change, or in softirq the socket's holder.
    pub fn state_change(&mut self, s: &SockEv, sockets: &SocketTable, clock: &Clock) {
        if !self.filter.socket_matches(&s.sock) {
            return;
        }
        let owner_ok = if self.filter.owners.is_empty() {
            true
        } else if s.meta.net_rx {
            sockets
                .owner(s.sock.sk)
                .is_some_and(|o| self.filter.owner_matches(o.pid, &o.comm))
        } else {
            self.filter.owner_matches(s.meta.pid, &s.comm)
        };
        if !owner_ok {
            return;
        }
        let change = state_change(&s.sock, s.arg0 as u8, s.arg1 as u8);
        if s.meta.net_rx {
            self.notes
                .push(note(s.meta.ts_ns, change, clock, "in softirq"));
        } else {
            self.changes
                .entry(s.meta.tid)
                .or_default()
                .push((s.meta.ts_ns, change));
        }
    }

    pub fn push(
        &mut self,
        s: SyscallEv,
        sockets: &mut SocketTable,
        clock: &Clock,
    ) -> Vec<SyscallRecord> {
        let ts = s.meta.ts_ns;
        // close() reports its socket as it was on entry; the others as they are on return. The
        // listener of an accept() was read on entry, which may be long before.
        let seen = if s.kind == SyscallKind::Close {
            s.enter_ns
        } else {
            ts
        };
        sockets.observe(&s.sock, seen);
        sockets.observe(&s.other, s.enter_ns);
        let owner = |fd: i32| Owner {
            pid: s.meta.pid,
            comm: s.comm.as_str().into(),
            fd,
        };
        match s.kind {
            SyscallKind::Socket | SyscallKind::Accept | SyscallKind::Accept4 if s.ret >= 0 => {
                sockets.set_owner(&s.sock, owner(s.ret as i32), s.enter_ns)
            }
            SyscallKind::Socket
            | SyscallKind::Accept
            | SyscallKind::Accept4
            | SyscallKind::Close => {}
            _ if s.fd >= 0 && sockets.owner(s.sock.sk).is_none() => {
                sockets.set_owner(&s.sock, owner(s.fd), s.enter_ns)
            }
            _ => {}
        }
        let sk = s.sock.sk;
        let decider = match s.kind {
            SyscallKind::Accept | SyscallKind::Accept4 => &s.other,
            _ => &s.sock,
        };
        let addr_match = matches!(s.kind, SyscallKind::Bind | SyscallKind::Connect)
            && s.addr.is_some_and(|(_, p)| self.filter.port_named(p));
        // Only a watched owner's calls (every process's, without --pid/--comm).
        let owner_ok = self.filter.owner_matches(s.meta.pid, &s.comm);
        let matches = owner_ok && (self.filter.socket_matches(decider) || addr_match);
        let undecided_kind = owner_ok
            && (s.kind == SyscallKind::Socket
                || (s.sock.lport == 0 && s.sock.rport == 0 && s.kind != SyscallKind::Close)
                || s.kind == SyscallKind::Bind);

        if s.kind == SyscallKind::Close {
            sockets.closed_by(&s.sock, s.enter_ns, owner(s.fd));
            if self.undecided.remove(&sk).is_some() || !matches {
                return Vec::new();
            }
        }
        if matches {
            let mut out: Vec<SyscallRecord> = self
                .undecided
                .remove(&sk)
                .map(|(_, evs)| evs)
                .unwrap_or_default()
                .iter()
                .map(|e| self.record(e, sockets, clock))
                .collect();
            out.push(self.record(&s, sockets, clock));
            return out;
        }
        if undecided_kind && sk != 0 {
            if self.undecided.len() >= MAX_UNDECIDED && !self.undecided.contains_key(&sk) {
                if let Some((&old, _)) = self.undecided.iter().min_by_key(|(_, (t, _))| *t) {
                    self.undecided.remove(&old);
                }
            }
            let e = self.undecided.entry(sk).or_insert((ts, Vec::new()));
            if s.kind == SyscallKind::Socket {
                // A new socket at a reused address: what was held for the old one is void.
                e.1.clear();
                e.0 = ts;
            }
            e.1.push(s);
        }
        Vec::new()
    }

    fn record(&mut self, s: &SyscallEv, sockets: &SocketTable, clock: &Clock) -> SyscallRecord {
        let wall = clock.wall_ns(s.enter_ns);
        let changes = self
            .changes
            .get_mut(&s.meta.tid)
            .map(|v| {
                let (mine, rest): (Vec<_>, Vec<_>) = v
                    .drain(..)
                    .partition(|(t, _)| *t >= s.enter_ns && *t <= s.meta.ts_ns);
                *v = rest;
                mine.into_iter().map(|(_, c)| c).collect()
            })
            .unwrap_or_default();
        let sock = if s.sock.sk != 0 {
            Some(sockets.view(&s.sock))
        } else {
            None
        };
        SyscallRecord {
            ts_ns: wall,
            ts: Timestamp(wall),
            duration_ns: s.meta.ts_ns.saturating_sub(s.enter_ns),
            pid: s.meta.pid,
            tid: s.meta.tid,
            comm: s.comm.clone(),
            syscall: s.kind.name().to_string(),
            fd: (s.fd >= 0).then_some(s.fd),
            ret: s.ret,
            errno: (s.ret < 0).then(|| names::errno(-s.ret)),
            text: strace(s),
            socket: sock,
            state_changes: changes,
        }
    }

    /// Drops undecided sockets that waited too long, and turns state changes no system call
    /// claimed into lines of their own.
    pub fn tick(&mut self, now: u64, settle_ns: u64, clock: &Clock) -> Vec<Item> {
        self.undecided
            .retain(|_, (t, _)| now.saturating_sub(*t) < UNDECIDED_TTL_NS);
        let mut out = std::mem::take(&mut self.notes);
        for list in self.changes.values_mut() {
            let (old, keep): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|(t, _)| now.saturating_sub(*t) >= settle_ns);
            *list = keep;
            out.extend(old.into_iter().map(|(t, c)| note(t, c, clock, "")));
        }
        self.changes.retain(|_, v| !v.is_empty());
        out
    }
}

fn note(ts: u64, c: StateChange, clock: &Clock, ctx: &str) -> Item {
    let wall = clock.wall_ns(ts);
    let ctx = if ctx.is_empty() {
        String::new()
    } else {
        format!(" ({ctx})")
    };
    Item::Note(Note {
        ts_ns: wall,
        ts: Timestamp(wall),
        kind: "state_change".into(),
        text: format!("socket {}: {} -> {}{ctx}", c.socket, c.from, c.to),
    })
}

fn sockaddr(addr: Option<(IpAddr, u16)>) -> String {
    match addr {
        Some((IpAddr::V4(a), p)) => {
            format!("{{sa_family=AF_INET, sin_port=htons({p}), sin_addr=inet_addr(\"{a}\")}}")
        }
        Some((IpAddr::V6(a), p)) => {
            format!("{{sa_family=AF_INET6, sin6_port=htons({p}), sin6_addr=inet_pton(\"{a}\")}}")
        }
        None => "NULL".into(),
    }
}

fn peer(s: &Socket) -> Option<(IpAddr, u16)> {
    (s.sk != 0 && s.rport != 0).then_some((s.raddr, s.rport))
}

fn result(ret: i64) -> String {
    if ret >= 0 {
        return ret.to_string();
    }
    let e = -ret;
    let msg = std::io::Error::from_raw_os_error(e as i32).to_string();
    let msg = msg.split(" (os error").next().unwrap_or(&msg).to_string();
    format!("-1 {} ({msg})", names::errno(e))
}

/// The call as strace prints it (user-space buffers, which sockpath does not copy, show as ...).
pub fn strace(s: &SyscallEv) -> String {
    let a = &s.args;
    let fd = s.fd;
    let args = match s.kind {
        SyscallKind::Socket => format!(
            "{}, {}, {}",
            names::family(a[0]),
            names::sock_type(a[1]),
            names::ip_proto(a[2])
        ),
        SyscallKind::Bind | SyscallKind::Connect => {
            format!("{fd}, {}, {}", sockaddr(s.addr), a[0])
        }
        SyscallKind::Listen => format!("{fd}, {}", a[0]),
        SyscallKind::Accept | SyscallKind::Accept4 => {
            let addr = if a[0] == 0 {
                "NULL, NULL".to_string()
            } else {
                match peer(&s.sock) {
                    Some(p) => format!(
                        "{}, [{}]",
                        sockaddr(Some(p)),
                        if p.0.is_ipv4() { 16 } else { 28 }
                    ),
                    None => "..., ...".to_string(),
                }
            };
            if s.kind == SyscallKind::Accept4 {
                format!("{fd}, {addr}, {}", accept_flags(a[2]))
            } else {
                format!("{fd}, {addr}")
            }
        }
        SyscallKind::Setsockopt => {
            let (level, name) = names::sockopt(a[0], a[1]);
            if a[3] >= 4 {
                format!("{fd}, {level}, {name}, [{}], {}", a[2] as u32 as i32, a[3])
            } else {
                format!("{fd}, {level}, {name}, ..., {}", a[3])
            }
        }
        SyscallKind::Shutdown => format!("{fd}, {}", names::shutdown_how(a[0])),
        SyscallKind::Close => format!("{fd}"),
        SyscallKind::Read => format!("{fd}, ..., {}", a[0]),
        SyscallKind::Recvfrom => format!("{fd}, ..., {}, ...", a[0]),
        SyscallKind::Recvmsg => format!("{fd}, ..., {}", a[0]),
    };
    format!("{}({args}) = {}", s.kind.name(), result(s.ret))
}

fn accept_flags(f: u64) -> String {
    let mut parts = Vec::new();
    if f as i32 & libc::SOCK_CLOEXEC != 0 {
        parts.push("SOCK_CLOEXEC");
    }
    if f as i32 & libc::SOCK_NONBLOCK != 0 {
        parts.push("SOCK_NONBLOCK");
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}
