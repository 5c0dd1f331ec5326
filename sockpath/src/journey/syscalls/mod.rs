//! Socket system calls: who owns which socket, which calls concern a watched socket, and how
//! strace would print them.
//!
//! socket() and the setsockopt()/bind() that follow come before anything says whether the
//! socket will be watched (a client binds port 4444, then connects to the watched port 4000), so
//! they wait here, per socket, until a later call decides; undecided ones are dropped after a
//! while.

mod strace;

use rustc_hash::FxHashMap;

use sockpath_ebpf::event::{SyscallKind, TcpState};

use self::strace::strace;
use super::{
    clock::Clock,
    model::{Item, Note, Owner, StateChange, SyscallRecord, Timestamp},
    names,
    obs::state_change,
    sockets::SocketTable,
};
use crate::{
    decode::{Meta, Socket, SyscallEv},
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
    /// of a watched owner: the thread making the change (`comm`), or in softirq the socket's
    /// holder.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one state-change event"
    )]
    pub fn state_change(
        &mut self,
        meta: &Meta,
        comm: &str,
        sock: &Socket,
        from: TcpState,
        to: TcpState,
        sockets: &SocketTable,
        clock: &Clock,
    ) {
        if !self.filter.socket_matches(sock) {
            return;
        }
        let owner_ok = if self.filter.owners.is_empty() {
            true
        } else if meta.net_rx {
            sockets
                .owner(sock.sk)
                .is_some_and(|o| self.filter.owner_matches(o.pid, &o.comm))
        } else {
            self.filter.owner_matches(meta.pid, comm)
        };
        if !owner_ok {
            return;
        }
        let change = state_change(sock, from as u8, to as u8);
        if meta.net_rx {
            self.notes
                .push(note(meta.ts_ns, change, clock, "in softirq"));
        } else {
            self.changes
                .entry(meta.tid)
                .or_default()
                .push((meta.ts_ns, change));
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
