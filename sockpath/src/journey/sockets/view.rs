//! A socket as the output shows it: protocol, endpoints, state and owner.

use sockpath_ebpf::event::TcpState;

use super::{endpoint, SocketTable};
use crate::{
    decode::Socket,
    journey::model::{Hex, SocketView},
    packet::{self, IPPROTO_TCP, IPPROTO_UDP},
};

impl SocketTable {
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
                .unwrap_or(u16::from(IPPROTO_TCP)),
            p => p,
        };
        let state = if proto == u16::from(IPPROTO_UDP) {
            if s.rport == 0 {
                "UNCONNECTED"
            } else {
                "CONNECTED"
            }
        } else {
            s.tcp_state().map_or("UNKNOWN", TcpState::name)
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
            proto: packet::proto_str(proto as u8),
            local,
            remote,
            state,
            sk: Hex(s.sk),
            ino: self.get(s.sk).map(|k| k.ino).unwrap_or(s.ino),
            netns: s.netns,
            owner: self.owner_at(s, ts),
        }
    }
}
