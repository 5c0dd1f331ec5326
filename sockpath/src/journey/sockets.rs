//! What sockpath knows about sockets: their latest addresses and state, and which process holds
//! them (from the system calls seen, and from /proc for sockets older than sockpath).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use rustc_hash::FxHashMap;
use sockpath_ebpf::net::{IPPROTO_TCP, IPPROTO_UDP};

use super::{
    model::{Hex, Owner, SocketView},
    names::tcp_state,
};
use crate::{decode::Socket, packet::Headers, text::uint};

/// At most this many sockets are remembered; the least recently seen go first.
const MAX_SOCKETS: usize = 65536;

/// A process holding a socket, from `from` until `until` (closed), and the socket's ports then
/// (a struct sock address is reused by unrelated sockets).
#[derive(Clone, Debug)]
struct Span {
    owner: Owner,
    from: u64,
    until: Option<u64>,
    ports: (u16, u16),
}

#[derive(Clone, Debug)]
struct Entry {
    sock: Socket,
    /// `sock`'s endpoints as text, made once (every journey prints them).
    local: Arc<str>,
    remote: Arc<str>,
    owners: Vec<Span>,
    /// When it was in TCP_LISTEN: (from, until).
    listening: Vec<(u64, Option<u64>)>,
    /// The last process seen closing it, when, and the socket's ports then: its holder even
    /// when no call before the close was seen (an accept() begun before sockpath started).
    closer: Option<(Owner, u64, (u16, u16))>,
    last_seen: u64,
}

/// At most this many owner changes are remembered per socket address.
const MAX_SPANS: usize = 8;

#[derive(Default)]
pub struct SocketTable {
    by_sk: FxHashMap<u64, Entry>,
    /// Owners found in /proc, by socket inode.
    proc_owners: FxHashMap<u64, Owner>,
    /// Sockets with a local port and no remote one (listeners, unconnected UDP), by
    /// (netns, port, protocol): `listeners_at` runs for every packet a listener takes, and
    /// must not walk every socket known.
    by_port: FxHashMap<PortKey, Vec<u64>>,
}

type PortKey = (u32, u16, u16);

/// The `by_port` key of a socket, if it waits on a port.
fn port_key(s: &Socket) -> Option<PortKey> {
    (s.lport != 0 && s.rport == 0).then_some((s.netns, s.lport, s.protocol))
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
            listening: Vec::new(),
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
        let open = e.listening.last().is_some_and(|(_, until)| until.is_none());
        if s.state == 10 && !open {
            e.listening.push((ts, None));
            if e.listening.len() > MAX_SPANS {
                e.listening.remove(0);
            }
        } else if s.state != 10 && open {
            if let Some(last) = e.listening.last_mut() {
                last.1 = Some(ts);
            }
        }
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
        let new_key = port_key(&e.sock);
        if old_key != new_key {
            if let Some(k) = old_key {
                self.unindex(k, s.sk);
            }
            if let Some(k) = new_key {
                self.by_port.entry(k).or_default().push(s.sk);
            }
        }
    }

    fn unindex(&mut self, key: PortKey, sk: u64) {
        if let Some(v) = self.by_port.get_mut(&key) {
            v.retain(|&x| x != sk);
            if v.is_empty() {
                self.by_port.remove(&key);
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((&sk, _)) = self.by_sk.iter().min_by_key(|(_, e)| e.last_seen) {
            if let Some(k) = self.by_sk.remove(&sk).and_then(|e| port_key(&e.sock)) {
                self.unindex(k, sk);
            }
        }
    }

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

    /// Sockets waiting for connections on `port` in namespace `netns` at time `ts`: TCP
    /// listeners, or UDP sockets bound and not connected and still held. The candidates a
    /// lookup chose among (one may have closed since).
    pub fn listeners_at(&self, netns: u32, port: u16, protocol: u16, ts: u64) -> Vec<Socket> {
        let during = |from: u64, until: Option<u64>| from <= ts && until.is_none_or(|u| u >= ts);
        let Some(sks) = self.by_port.get(&(netns, port, protocol)) else {
            return Vec::new();
        };
        let mut v: Vec<Socket> = sks
            .iter()
            .filter_map(|sk| self.by_sk.get(sk))
            .filter(|e| {
                let s = &e.sock;
                if s.netns != netns || s.lport != port || s.protocol != protocol || s.rport != 0 {
                    return false;
                }
                if protocol == IPPROTO_UDP as u16 {
                    e.owners.is_empty() || e.owners.iter().any(|sp| during(sp.from, sp.until))
                } else {
                    e.listening.iter().any(|(f, u)| during(*f, *u))
                        || (e.listening.is_empty() && s.state == 10)
                }
            })
            .map(|e| e.sock.clone())
            .collect();
        v.sort_by_key(|s| s.sk);
        v
    }

    /// Whether a socket has an inode but no known owner (worth a /proc rescan).
    pub fn owner_unknown(&self, sk: u64) -> bool {
        self.by_sk
            .get(&sk)
            .is_some_and(|e| e.sock.ino != 0 && e.owners.is_empty() && self.proc_owner(e).is_none())
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
            0 => self
                .get(s.sk)
                .map(|k| k.protocol)
                .unwrap_or(IPPROTO_TCP as u16),
            p => p,
        };
        let state = if proto == IPPROTO_UDP as u16 {
            if s.rport == 0 {
                "UNCONNECTED"
            } else {
                "CONNECTED"
            }
        } else {
            tcp_state(s.state)
        };
        // The endpoints as text, from the table when it holds this very socket.
        let entry = self.by_sk.get(&s.sk);
        let local = match entry {
            Some(e) if (e.sock.laddr, e.sock.lport) == (s.laddr, s.lport) => e.local.clone(),
            _ => endpoint(s.laddr, s.lport).into(),
        };
        let remote = match entry {
            Some(e) if (e.sock.raddr, e.sock.rport) == (s.raddr, s.rport) => e.remote.clone(),
            _ => endpoint(s.raddr, s.rport).into(),
        };
        SocketView {
            proto: crate::packet::proto_str(proto as u8),
            local,
            remote,
            state,
            sk: Hex(s.sk),
            ino: self.get(s.sk).map(|k| k.ino).unwrap_or(s.ino),
            netns: s.netns,
            owner: self.owner_at(s, ts),
        }
    }

    /// Forget sockets not seen for `age_ns` (they were destroyed or went quiet).
    pub fn expire(&mut self, now: u64, age_ns: u64) {
        self.by_sk.retain(|_, e| {
            now.saturating_sub(e.last_seen) < age_ns
                || e.owners.last().is_some_and(|sp| sp.until.is_none())
        });
    }
}

/// `127.0.0.1:4000`, `[::1]:4000` (IPv4-mapped IPv6 as IPv4). IPv4 by hand: it runs several
/// times for every packet.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            let mut s = String::with_capacity(21);
            for (i, o) in a.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(uint(*o).as_str());
            }
            s.push(':');
            s.push_str(uint(port).as_str());
            s
        }
        v6 => SocketAddr::new(v6, port).to_string(),
    }
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
            reuseport: false,
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
        let s = sock(7, 4000, 0, 10);
        t.observe(&s, 1);
        assert!(t.owner_unknown(7));
        t.set_proc_owners(std::collections::HashMap::from([(s.ino, owner(9, 3))]));
        assert_eq!(t.owner(7).unwrap().pid, 9);
        assert_eq!(t.owner_at(&s, 1).unwrap().pid, 9);
    }

    #[test]
    fn reused_address_keeps_each_owner_in_its_time() {
        let mut t = SocketTable::default();
        let listener = sock(7, 4000, 0, 10);
        t.set_owner(&listener, owner(1, 3), 10);
        t.closed(7, 20);
        // The same struct sock address, a new socket of another process.
        let fresh = sock(7, 0, 0, 7);
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
        let child = sock(8, 4000, 4444, 1);
        t.observe(&child, 5);
        t.set_owner(&child, owner(1, 4), 50);
        assert_eq!(t.owner_at(&child, 10).unwrap().fd, 4);
    }

    #[test]
    fn listeners_on_a_port_follow_sockets_that_move() {
        let mut t = SocketTable::default();
        t.observe(&sock(7, 4000, 0, 10), 100);
        t.observe(&sock(9, 4000, 0, 10), 110);
        t.observe(&sock(5, 5000, 0, 10), 120);
        let sks = |t: &SocketTable, ts| -> Vec<u64> {
            t.listeners_at(1, 4000, 6, ts)
                .iter()
                .map(|s| s.sk)
                .collect()
        };
        assert_eq!(sks(&t, 130), vec![7, 9]);
        // Listener 9 closes and its memory becomes a connection on another port.
        t.observe(&sock(9, 4000, 0, 7), 200);
        t.observe(&sock(9, 6000, 4444, 1), 210);
        assert_eq!(sks(&t, 300), vec![7]);
        assert!(t.by_port.get(&(1, 4000, 6)).is_some_and(|v| v == &[7]));
        assert!(t.listeners_at(1, 4001, 6, 130).is_empty());
    }

    #[test]
    fn endpoints_print_like_socket_addresses() {
        assert_eq!(endpoint("::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(
            endpoint("::ffff:10.0.0.1".parse().unwrap(), 80),
            "10.0.0.1:80"
        );
    }
}
