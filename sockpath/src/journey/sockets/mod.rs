//! What sockpath knows about sockets: their latest addresses and state, and which process holds
//! them (from the system calls seen, and from /proc for sockets older than sockpath).
//!
//! The table (`SocketTable`, here) is read by owner (`owners`), by listening port (`listeners`)
//! and as the output shows a socket (`view`); `endpoint` and `delivery` are what a socket's
//! addresses mean for the text and for the packets it may take.

mod delivery;
mod endpoint;
mod listeners;
mod owners;
mod view;

use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use self::{delivery::fits, endpoint::endpoint};
use self::{
    listeners::{port_key, Listening},
    owners::Span,
};
use super::model::Owner;
use crate::decode::Socket;

/// At most this many sockets are remembered; the least recently seen go first.
const MAX_SOCKETS: usize = 65536;

/// At most this many owner changes, and listening spans, are remembered per socket address.
const MAX_SPANS: usize = 8;

#[derive(Clone, Debug)]
struct Entry {
    sock: Socket,
    /// `sock`'s endpoints as text, made once (every journey prints them).
    local: Arc<str>,
    remote: Arc<str>,
    owners: Vec<Span>,
    listening: Listening,
    /// The last process seen closing it, when, and the socket's ports then: its holder even
    /// when no call before the close was seen (an accept() begun before sockpath started).
    closer: Option<(Owner, u64, (u16, u16))>,
    last_seen: u64,
}

impl Entry {
    /// A process holds the socket now.
    fn held(&self) -> bool {
        self.owners.last().is_some_and(|sp| sp.until.is_none())
    }
}

#[derive(Default)]
pub struct SocketTable {
    by_sk: FxHashMap<u64, Entry>,
    /// Owners found in /proc, by socket inode.
    proc_owners: FxHashMap<u64, Owner>,
    /// Sockets by the port they wait on (see `listeners`).
    by_port: listeners::PortIndex,
}

impl SocketTable {
    pub fn len(&self) -> usize {
        self.by_sk.len()
    }

    /// Records what an event showed of a socket at time `ts`. Events do not arrive in time
    /// order (a system call is reported when it returns, with what its socket looked like on
    /// entry): a snapshot older than what is known only fills in what was missing.
    pub fn observe(&mut self, s: &Socket, ts: u64) {
        if s.sk == 0 {
            return;
        }
        if self.by_sk.len() >= MAX_SOCKETS && !self.by_sk.contains_key(&s.sk) {
            self.evict_oldest();
        }
        let new = !self.by_sk.contains_key(&s.sk);
        let e = self.by_sk.entry(s.sk).or_insert_with(|| Entry {
            sock: s.clone(),
            local: endpoint(s.laddr, s.lport).into(),
            remote: endpoint(s.raddr, s.rport).into(),
            owners: Vec::new(),
            listening: Listening::default(),
            closer: None,
            last_seen: ts,
        });
        if e.sock.ino == 0 {
            e.sock.ino = s.ino;
        }
        if ts < e.last_seen {
            return;
        }
        e.last_seen = ts;
        e.listening.saw(s, ts);
        if (e.sock.laddr, e.sock.lport) != (s.laddr, s.lport) {
            e.local = endpoint(s.laddr, s.lport).into();
        }
        if (e.sock.raddr, e.sock.rport) != (s.raddr, s.rport) {
            e.remote = endpoint(s.raddr, s.rport).into();
        }
        // Request and time-wait sockets have no protocol field; keep what we knew.
        let protocol = if s.protocol == 0 {
            e.sock.protocol
        } else {
            s.protocol
        };
        let ino = if s.ino == 0 { e.sock.ino } else { s.ino };
        // A socket just met has no index entry yet, whatever its key.
        let old_key = if new { None } else { port_key(&e.sock) };
        e.sock = Socket {
            protocol,
            ino,
            ..s.clone()
        };
        self.by_port.moved(s.sk, old_key, port_key(&e.sock));
    }

    fn evict_oldest(&mut self) {
        if let Some((&sk, _)) = self.by_sk.iter().min_by_key(|(_, e)| e.last_seen) {
            self.forget(sk);
        }
    }

    /// Removes socket `sk` from the table and from its index.
    fn forget(&mut self, sk: u64) {
        if let Some(e) = self.by_sk.remove(&sk) {
            self.by_port.remove(sk, &e.sock);
        }
    }

    pub fn get(&self, sk: u64) -> Option<&Socket> {
        self.by_sk.get(&sk).map(|e| &e.sock)
    }

    /// Forget sockets not seen for `age_ns` (they were destroyed or went quiet), unless a
    /// process still holds them.
    pub fn expire(&mut self, now: u64, age_ns: u64) {
        let old: Vec<u64> = self
            .by_sk
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last_seen) >= age_ns && !e.held())
            .map(|(&sk, _)| sk)
            .collect();
        for sk in old {
            self.forget(sk);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use sockpath_ebpf::event::TcpState::{self, *};

    use super::*;

    pub fn sock(sk: u64, l: u16, r: u16, state: TcpState) -> Socket {
        Socket {
            sk,
            ino: sk + 1000,
            netns: 1,
            family: 2,
            protocol: 6,
            lport: l,
            rport: r,
            state: state as u8,
            reuseport: false,
            laddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            raddr: if r == 0 {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            },
        }
    }

    pub fn sks(t: &SocketTable, port: u16, ts: u64) -> Vec<u64> {
        t.listeners_at(1, port, 6, ts)
            .iter()
            .map(|s| s.sk)
            .collect()
    }

    /// Expired sockets leave the port index too: it does not grow without bound, and a socket
    /// address met again is listed once.
    #[test]
    fn expired_sockets_leave_the_port_index() {
        let mut t = SocketTable::default();
        t.observe(&sock(7, 4000, 0, Listen), 100);
        t.observe(&sock(8, 4001, 0, Listen), 100);
        t.expire(100 + 50, 50);
        assert_eq!(t.len(), 0);
        assert_eq!(t.by_port.len(), 0, "the index kept expired sockets");
        // The same struct sock address listens on the same port again.
        t.observe(&sock(7, 4000, 0, Listen), 200);
        assert_eq!(sks(&t, 4000, 210), vec![7]);
    }

    #[test]
    fn held_sockets_do_not_expire() {
        let mut t = SocketTable::default();
        let s = sock(7, 4000, 0, Listen);
        t.set_owner(
            &s,
            Owner {
                pid: 1,
                comm: "p".into(),
                fd: 3,
            },
            100,
        );
        t.observe(&sock(8, 4000, 0, Listen), 100);
        t.expire(1_000, 50);
        assert_eq!(t.len(), 1);
        assert_eq!(sks(&t, 4000, 1_000), vec![7]);
    }

    #[test]
    fn evicted_sockets_leave_the_port_index() {
        let mut t = SocketTable::default();
        for sk in 1..=MAX_SOCKETS as u64 + 1 {
            t.observe(&sock(sk, 4000, 0, Listen), sk);
        }
        assert_eq!(t.len(), MAX_SOCKETS);
        assert_eq!(t.by_port.len(), MAX_SOCKETS);
        assert!(t.get(1).is_none());
    }
}
