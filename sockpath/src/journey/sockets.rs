//! What sockpath knows about sockets: their latest addresses and state, and which process holds
//! them (from the system calls seen, and from /proc for sockets older than sockpath).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use super::{
    model::{Owner, SocketView},
    names::tcp_state,
};
use crate::{decode::Socket, packet::Headers};

/// At most this many sockets are remembered; the least recently seen go first.
const MAX_SOCKETS: usize = 65536;

#[derive(Clone, Debug)]
struct Entry {
    sock: Socket,
    owner: Option<Owner>,
    /// When the owner closed its fd (the socket may live on, orphaned, in FIN_WAIT or TIME_WAIT).
    closed_at: Option<u64>,
    last_seen: u64,
}

#[derive(Default)]
pub struct SocketTable {
    by_sk: HashMap<u64, Entry>,
    /// Owners found in /proc, by socket inode.
    proc_owners: HashMap<u64, Owner>,
}

impl SocketTable {
    /// Records what an event showed of a socket. A struct sock address can be reused by a new
    /// socket: a different inode, or a socket going back to an earlier life (a fresh socket()),
    /// forgets the old owner.
    pub fn observe(&mut self, s: &Socket, ts: u64) {
        if s.sk == 0 {
            return;
        }
        if self.by_sk.len() >= MAX_SOCKETS && !self.by_sk.contains_key(&s.sk) {
            self.evict_oldest();
        }
        let e = self.by_sk.entry(s.sk).or_insert_with(|| Entry {
            sock: s.clone(),
            owner: None,
            closed_at: None,
            last_seen: ts,
        });
        if e.sock.ino != 0 && s.ino != 0 && e.sock.ino != s.ino {
            e.owner = None;
            e.closed_at = None;
        }
        // Request and time-wait sockets have no protocol field; keep what we knew.
        let protocol = if s.protocol == 0 { e.sock.protocol } else { s.protocol };
        let ino = if s.ino == 0 { e.sock.ino } else { s.ino };
        e.sock = Socket {
            protocol,
            ino,
            ..s.clone()
        };
        e.last_seen = e.last_seen.max(ts);
    }

    fn evict_oldest(&mut self) {
        if let Some((&sk, _)) = self.by_sk.iter().min_by_key(|(_, e)| e.last_seen) {
            self.by_sk.remove(&sk);
        }
    }

    /// A new socket() result: whatever lived at this address before is gone.
    pub fn reset(&mut self, s: &Socket, owner: Owner, ts: u64) {
        self.by_sk.remove(&s.sk);
        self.observe(s, ts);
        self.set_owner(s.sk, owner);
    }

    pub fn set_owner(&mut self, sk: u64, owner: Owner) {
        if let Some(e) = self.by_sk.get_mut(&sk) {
            e.owner = Some(owner);
            e.closed_at = None;
        }
    }

    /// The owner closed its fd at `ts`.
    pub fn closed(&mut self, sk: u64, ts: u64) {
        if let Some(e) = self.by_sk.get_mut(&sk) {
            e.closed_at = Some(ts);
        }
    }

    pub fn set_proc_owners(&mut self, owners: HashMap<u64, Owner>) {
        self.proc_owners = owners;
    }

    /// The owner of a socket now: from its system calls, else from /proc by inode.
    pub fn owner(&self, sk: u64) -> Option<Owner> {
        self.owner_at(sk, u64::MAX)
    }

    /// The owner of a socket at time `ts` (it may have closed its fd since).
    pub fn owner_at(&self, sk: u64, ts: u64) -> Option<Owner> {
        let e = self.by_sk.get(&sk)?;
        if e.closed_at.is_some_and(|c| c < ts) {
            return None;
        }
        e.owner
            .clone()
            .or_else(|| (e.sock.ino != 0).then(|| self.proc_owners.get(&e.sock.ino).cloned())?)
    }

    /// Whether a socket has an inode but no known owner (worth a /proc rescan).
    pub fn owner_unknown(&self, sk: u64) -> bool {
        self.by_sk
            .get(&sk)
            .is_some_and(|e| e.sock.ino != 0 && e.closed_at.is_none() && self.owner(sk).is_none())
    }

    pub fn get(&self, sk: u64) -> Option<&Socket> {
        self.by_sk.get(&sk).map(|e| &e.sock)
    }

    /// The socket as the output shows it, with its owner now.
    pub fn view(&self, s: &Socket) -> SocketView {
        self.view_at(s, u64::MAX)
    }

    /// The socket as the output shows it, with its owner at time `ts`. `s` is the socket as the
    /// event saw it.
    pub fn view_at(&self, s: &Socket, ts: u64) -> SocketView {
        let proto = match s.protocol {
            0 => self.get(s.sk).map(|k| k.protocol).unwrap_or(6),
            p => p,
        };
        let state = if proto == 17 {
            if s.rport == 0 { "UNCONNECTED" } else { "CONNECTED" }.to_string()
        } else {
            tcp_state(s.state).to_string()
        };
        SocketView {
            proto: crate::packet::proto_name(proto as u8),
            local: endpoint(s.laddr, s.lport),
            remote: endpoint(s.raddr, s.rport),
            state,
            sk: format!("{:#x}", s.sk),
            ino: self.get(s.sk).map(|k| k.ino).unwrap_or(s.ino),
            netns: s.netns,
            owner: self.owner_at(s.sk, ts),
        }
    }

    /// Forget sockets not seen for `age_ns` (they were destroyed or went quiet).
    pub fn expire(&mut self, now: u64, age_ns: u64) {
        self.by_sk
            .retain(|_, e| {
                now.saturating_sub(e.last_seen) < age_ns
                    || (e.owner.is_some() && e.closed_at.is_none())
            });
    }

    pub fn len(&self) -> usize {
        self.by_sk.len()
    }
}

pub fn endpoint(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr.to_canonical(), port).to_string()
}

fn same_addr(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Whether packet `h` could have reached socket `s`: the addresses fit (see [`delivers`]), and a
/// connection request (SYN without ACK) only reaches a listener or its request socket.
pub fn fits(h: &Headers, s: &Socket) -> bool {
    if h.has_flag("SYN") && !h.has_flag("ACK") && s.state != 10 && s.state != 12 {
        return false;
    }
    delivers(h, s)
}

/// Whether `s` is a socket the kernel could have delivered packet `h` to: the packet's
/// destination is the socket's local end (or the socket is bound to the wildcard address), and
/// the packet's source is the socket's remote end (or the socket is not connected: a listener, an
/// unconnected UDP socket).
pub fn delivers(h: &Headers, s: &Socket) -> bool {
    let (Some(sport), Some(dport)) = (h.sport, h.dport) else {
        return false;
    };
    if s.lport != dport {
        return false;
    }
    if !s.laddr.is_unspecified() && !same_addr(s.laddr, h.dst) {
        return false;
    }
    s.rport == 0 || (s.rport == sport && same_addr(s.raddr, h.src))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::packet::{fixture::tcp4, Headers};

    pub fn sock(sk: u64, l: u16, r: u16, state: u8) -> Socket {
        Socket {
            sk,
            ino: sk + 1000,
            netns: 1,
            family: 2,
            protocol: 6,
            lport: l,
            rport: r,
            state,
            laddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            raddr: if r == 0 {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            },
        }
    }

    #[test]
    fn delivery_matches_listener_and_established() {
        let h = Headers::parse(0x0800, 14, &tcp4(4444, 4000, 1, None, "S", &[])).unwrap();
        assert!(delivers(&h, &sock(1, 4000, 0, 10)));
        assert!(delivers(&h, &sock(2, 4000, 4444, 1)));
        assert!(!delivers(&h, &sock(3, 4000, 5555, 1)));
        assert!(!delivers(&h, &sock(4, 4444, 4000, 1)));
        let mut wild = sock(5, 4000, 0, 10);
        wild.laddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        assert!(delivers(&h, &wild));
        let mut mapped = sock(6, 4000, 4444, 1);
        mapped.laddr = "::ffff:127.0.0.1".parse().unwrap();
        mapped.raddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(delivers(&h, &mapped));
    }

    #[test]
    fn owner_from_proc_and_reset_on_reuse() {
        let mut t = SocketTable::default();
        let s = sock(7, 4000, 0, 10);
        t.observe(&s, 1);
        assert!(t.owner_unknown(7));
        t.set_proc_owners(HashMap::from([(
            s.ino,
            Owner {
                pid: 9,
                comm: "nc".into(),
                fd: 3,
            },
        )]));
        assert_eq!(t.owner(7).unwrap().pid, 9);
        // Same struct sock address, new socket (new inode): the old owner no longer applies.
        let mut s2 = s.clone();
        s2.ino += 1;
        t.set_owner(
            7,
            Owner {
                pid: 1,
                comm: "x".into(),
                fd: 4,
            },
        );
        t.observe(&s2, 2);
        assert!(t.owner(7).is_none());
    }

    #[test]
    fn endpoints_print_like_socket_addresses() {
        assert_eq!(endpoint("::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(endpoint("::ffff:10.0.0.1".parse().unwrap(), 80), "10.0.0.1:80");
    }
}
