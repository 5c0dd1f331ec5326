//! The sockets a lookup chose among: which sockets waited on a port, and when each listened.
//! A journey names the listener that took its packet among them.

use rustc_hash::FxHashMap;

use sockpath_ebpf::event::TcpState;

use super::{SocketTable, MAX_SPANS};
use crate::{decode::Socket, packet::IPPROTO_UDP};

/// (netns, port, protocol)
pub(super) type PortKey = (u32, u16, u16);

/// The `by_port` key of a socket, if it waits on a port.
pub(super) fn port_key(s: &Socket) -> Option<PortKey> {
    (s.lport != 0 && s.rport == 0).then_some((s.netns, s.lport, s.protocol))
}

/// Sockets with a local port and no remote one (listeners, unconnected UDP), by
/// (netns, port, protocol): `listeners_at` runs for every packet a listener takes, and must not
/// walk every socket known.
#[derive(Default)]
pub(super) struct PortIndex(FxHashMap<PortKey, Vec<u64>>);

impl PortIndex {
    /// Socket `sk` was listed under `old_key` (None: not listed) and now waits under
    /// `new_key`.
    pub fn moved(&mut self, sk: u64, old_key: Option<PortKey>, new_key: Option<PortKey>) {
        if old_key != new_key {
            if let Some(k) = old_key {
                self.unlist(k, sk);
            }
            if let Some(k) = new_key {
                self.0.entry(k).or_default().push(sk);
            }
        }
    }

    /// Socket `sk`, last seen as `s`, is forgotten.
    pub fn remove(&mut self, sk: u64, s: &Socket) {
        if let Some(k) = port_key(s) {
            self.unlist(k, sk);
        }
    }

    fn unlist(&mut self, key: PortKey, sk: u64) {
        if let Some(v) = self.0.get_mut(&key) {
            v.retain(|&x| x != sk);
            if v.is_empty() {
                self.0.remove(&key);
            }
        }
    }

    /// Sockets listed, all ports together.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}

/// When a socket was in TCP_LISTEN: (from, until).
#[derive(Clone, Debug, Default)]
pub(super) struct Listening(Vec<(u64, Option<u64>)>);

impl Listening {
    /// The socket was seen as `s` at `ts` (no earlier than anything seen before).
    pub fn saw(&mut self, s: &Socket, ts: u64) {
        let open = self.0.last().is_some_and(|(_, until)| until.is_none());
        let listens = s.in_state(TcpState::Listen);
        if listens && !open {
            self.0.push((ts, None));
            if self.0.len() > MAX_SPANS {
                self.0.remove(0);
            }
        } else if !listens && open {
            if let Some(last) = self.0.last_mut() {
                last.1 = Some(ts);
            }
        }
    }
}

fn during(ts: u64, from: u64, until: Option<u64>) -> bool {
    from <= ts && until.is_none_or(|u| u >= ts)
}

impl SocketTable {
    /// Sockets waiting for connections on `port` in namespace `netns` at time `ts`: TCP
    /// listeners, or UDP sockets bound and not connected and still held. The candidates a
    /// lookup chose among (one may have closed since).
    pub fn listeners_at(&self, netns: u32, port: u16, protocol: u16, ts: u64) -> Vec<Socket> {
        let Some(sks) = self.by_port.0.get(&(netns, port, protocol)) else {
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
                if protocol == u16::from(IPPROTO_UDP) {
                    e.owners.is_empty() || e.owners.iter().any(|sp| during(ts, sp.from, sp.until))
                } else {
                    let spans = &e.listening.0;
                    spans.iter().any(|&(f, u)| during(ts, f, u))
                        || (spans.is_empty() && s.in_state(TcpState::Listen))
                }
            })
            .map(|e| e.sock.clone())
            .collect();
        v.sort_by_key(|s| s.sk);
        v
    }
}

#[cfg(test)]
mod tests {
    use sockpath_ebpf::event::TcpState::*;

    use super::super::tests::{sks, sock};
    use super::*;

    #[test]
    fn listeners_on_a_port_follow_sockets_that_move() {
        let mut t = SocketTable::default();
        t.observe(&sock(7, 4000, 0, Listen), 100);
        t.observe(&sock(9, 4000, 0, Listen), 110);
        t.observe(&sock(5, 5000, 0, Listen), 120);
        assert_eq!(sks(&t, 4000, 130), vec![7, 9]);
        // Listener 9 closes and its memory becomes a connection on another port.
        t.observe(&sock(9, 4000, 0, Close), 200);
        t.observe(&sock(9, 6000, 4444, Established), 210);
        assert_eq!(sks(&t, 4000, 300), vec![7]);
        assert!(t.by_port.0.get(&(1, 4000, 6)).is_some_and(|v| v == &[7]));
        assert!(t.listeners_at(1, 4001, 6, 130).is_empty());
    }

    #[test]
    fn a_listener_is_listed_while_it_listened() {
        let mut t = SocketTable::default();
        t.observe(&sock(7, 4000, 0, Close), 100);
        t.observe(&sock(7, 4000, 0, Listen), 110);
        t.observe(&sock(7, 4000, 0, Close), 150);
        assert!(sks(&t, 4000, 105).is_empty());
        assert_eq!(sks(&t, 4000, 120), vec![7]);
        assert!(sks(&t, 4000, 151).is_empty());
    }
}
