//! Who holds a socket: the process a system call showed, from when until when, or the one
//! /proc named for a socket older than sockpath.

use super::{Entry, SocketTable, MAX_SPANS};
use crate::{decode::Socket, journey::model::Owner};

/// A process holding a socket, from `from` until `until` (closed), and the socket's ports then
/// (a struct sock address is reused by unrelated sockets).
#[derive(Clone, Debug)]
pub(super) struct Span {
    pub owner: Owner,
    pub from: u64,
    pub until: Option<u64>,
    pub ports: (u16, u16),
}

impl SocketTable {
    /// `owner` holds socket `s` from `ts` on (socket(), accept(), or any call on its fd).
    pub fn set_owner(&mut self, s: &Socket, owner: Owner, ts: u64) {
        self.observe(s, ts);
        let Some(e) = self.by_sk.get_mut(&s.sk) else {
            return;
        };
        if let Some(last) = e.owners.last_mut() {
            if last.until.is_none() && last.owner == owner {
                last.ports = (s.lport, s.rport);
                return;
            }
            if last.until.is_none() {
                last.until = Some(ts);
            }
        }
        e.owners.push(Span {
            owner,
            from: ts,
            until: None,
            ports: (s.lport, s.rport),
        });
        if e.owners.len() > MAX_SPANS {
            e.owners.remove(0);
        }
    }

    /// The owner closed its fd at `ts`.
    pub fn closed(&mut self, sk: u64, ts: u64) {
        if let Some(span) = self.by_sk.get_mut(&sk).and_then(|e| e.owners.last_mut()) {
            if span.until.is_none() {
                span.until = Some(ts);
            }
        }
    }

    /// `by` closed its fd for socket `s` at `ts` (`closed`, and who it was).
    pub fn closed_by(&mut self, s: &Socket, ts: u64, by: Owner) {
        if let Some(e) = self.by_sk.get_mut(&s.sk) {
            e.closer = Some((by, ts, (s.lport, s.rport)));
        }
        self.closed(s.sk, ts);
    }

    /// Who held socket `s` at time `ts` (`owner_at`), or, if its holder had closed it by then,
    /// that last holder (same ports): the kernel finishes a closed connection for it.
    pub fn holder_or_last_at(&self, s: &Socket, ts: u64) -> Option<Owner> {
        self.owner_at(s, ts).or_else(|| {
            let e = self.by_sk.get(&s.sk)?;
            let ports = (s.lport, s.rport);
            e.owners
                .iter()
                .rev()
                .find(|sp| sp.until.is_some_and(|u| u <= ts) && sp.ports == ports)
                .map(|sp| sp.owner.clone())
                .or_else(|| {
                    e.closer
                        .as_ref()
                        .filter(|(_, at, p)| *at <= ts && *p == ports)
                        .map(|(o, _, _)| o.clone())
                })
        })
    }

    pub fn set_proc_owners(&mut self, owners: std::collections::HashMap<u64, Owner>) {
        self.proc_owners = owners.into_iter().collect();
    }

    /// The owner of a socket now.
    pub fn owner(&self, sk: u64) -> Option<Owner> {
        let e = self.by_sk.get(&sk)?;
        match e.owners.last() {
            Some(span) if span.until.is_none() => Some(span.owner.clone()),
            Some(_) => None,
            None => self.proc_owner(e),
        }
    }

    fn proc_owner(&self, e: &Entry) -> Option<Owner> {
        (e.sock.ino != 0)
            .then(|| self.proc_owners.get(&e.sock.ino).cloned())
            .flatten()
    }

    /// The owner of socket `s` at time `ts`: who held it then; or, for a connection still in
    /// the accept queue then, the process that accepted it later (same ports).
    pub fn owner_at(&self, s: &Socket, ts: u64) -> Option<Owner> {
        let e = self.by_sk.get(&s.sk)?;
        if let Some(span) = e
            .owners
            .iter()
            .rev()
            .find(|sp| sp.from <= ts && sp.until.is_none_or(|u| u >= ts))
        {
            return Some(span.owner.clone());
        }
        if let Some(span) = e
            .owners
            .iter()
            .find(|sp| sp.from > ts && sp.ports == (s.lport, s.rport))
        {
            return Some(span.owner.clone());
        }
        if e.owners.is_empty() {
            return self.proc_owner(e);
        }
        None
    }

    /// Whether a socket has an inode but no known owner (worth a /proc rescan).
    pub fn owner_unknown(&self, sk: u64) -> bool {
        self.by_sk
            .get(&sk)
            .is_some_and(|e| e.sock.ino != 0 && e.owners.is_empty() && self.proc_owner(e).is_none())
    }
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::event::TcpState::*;

    use super::super::tests::sock;
    use super::*;

    fn owner(pid: u32, fd: i32) -> Owner {
        Owner {
            pid,
            comm: "p".into(),
            fd,
        }
    }

    #[test]
    fn owner_from_proc_until_a_syscall_says_otherwise() {
        let mut t = SocketTable::default();
        let s = sock(7, 4000, 0, Listen);
        t.observe(&s, 1);
        assert!(t.owner_unknown(7));
        t.set_proc_owners(std::collections::HashMap::from([(s.ino, owner(9, 3))]));
        assert_eq!(t.owner(7).unwrap().pid, 9);
        assert_eq!(t.owner_at(&s, 1).unwrap().pid, 9);
    }

    #[test]
    fn reused_address_keeps_each_owner_in_its_time() {
        let mut t = SocketTable::default();
        let listener = sock(7, 4000, 0, Listen);
        t.set_owner(&listener, owner(1, 3), 10);
        t.closed(7, 20);
        // The same struct sock address, a new socket of another process.
        let fresh = sock(7, 0, 0, Close);
        t.set_owner(&fresh, owner(2, 5), 30);
        assert_eq!(t.owner_at(&listener, 15).unwrap().pid, 1);
        assert_eq!(t.owner_at(&fresh, 35).unwrap().pid, 2);
        assert_eq!(t.owner(7).unwrap().pid, 2);
        // Between the two lives nobody held it.
        assert!(t.owner_at(&listener, 25).is_none());
    }

    #[test]
    fn accepted_child_is_owned_by_the_acceptor_even_before_accept() {
        let mut t = SocketTable::default();
        let child = sock(8, 4000, 4444, Established);
        t.observe(&child, 5);
        t.set_owner(&child, owner(1, 4), 50);
        assert_eq!(t.owner_at(&child, 10).unwrap().fd, 4);
    }
}
