//! Dispatch: each decoded event goes to the journey it belongs to, as an observation.

use sockpath_ebpf::event::{SyscallKind, TcpState};

use super::{
    model::Item,
    obs::{Obs, ReadObs},
    open::Open,
    reads::Read,
    sockets::fits,
    Assembler,
};
use crate::{
    decode::{Event, FibEv, Meta, PacketRx, SkbEv, SkbKind, SockEv, SockKind, Socket, SyscallEv},
    packet::Headers,
};

impl Assembler {
    pub fn push(&mut self, ev: Event) {
        self.newest = self.newest.max(ev.ts_ns());
        match ev {
            Event::Packet(p) => self.packet(p),
            Event::Sock(s) => self.sock(s),
            Event::Skb(k) => self.skb(k),
            Event::Fib(f) => self.fib(f),
            Event::Syscall(s) => self.syscall(s),
        }
    }

    fn packet(&mut self, p: PacketRx) {
        let id = p.meta.journey;
        let headers = Headers::parse(p.ethertype, p.mac_len as usize, &p.data).ok();
        if !self.cfg.filter.packet_matches(&p.ifname, headers.as_ref()) {
            // In the kernel's set for another reason (another client's filter, an owner's
            // port): not a journey here, and its later events are not orphans.
            let seq = self.journeys.remove(id).map_or(0, |o| o.seq);
            self.journeys.left_out(id, seq);
            return;
        }
        // The packets this filter selects whose device receive was read (a daemon's watcher's
        // count; a session of its own reports the kernel's, which counts lost ones too).
        self.summary.packets_matched += 1;
        if let Some(o) = self.journeys.get(id) {
            if o.pkt.is_none() {
                // Events about the packet were read before its device-receive event (a record
                // committed late): the journey was opened for them, and is now whole.
                self.journeys.packet_came(id, p, headers);
                return;
            }
            // The kernel never reuses an id; a duplicate means a corrupt stream. The journey
            // that had it ends here; the id is the new one's from now on.
            if let Some(old) = self.journeys.remove(id) {
                self.finalize(old);
            }
        }
        if self.journeys.len() >= self.cfg.max_open {
            self.evict_oldest();
        }
        self.journeys
            .begin(id, p.meta.ts_ns, p.meta.cpu, Some(p), headers);
    }

    /// The open journey an exact-id event belongs to, creating an orphan (a journey whose
    /// device-receive event never arrived) if the id is unknown.
    fn exact(&mut self, id: u64, ts: u64, cpu: u16) -> Option<&mut Open> {
        if id == 0 {
            return None;
        }
        if !self.journeys.contains(id) {
            if self.journeys.was_finished(id) {
                return None;
            }
            self.journeys.begin(id, ts, cpu, None, None);
        }
        self.journeys.get_mut(id)
    }

    fn add(&mut self, id: u64, ts: u64, obs: Obs) {
        if let Some(o) = self.journeys.get_mut(id) {
            o.last = o.last.max(ts);
            o.obs.push(obs);
        }
    }

    fn sock(&mut self, s: SockEv) {
        let ts = s.meta.ts_ns;
        self.observe_sockets(&s.kind, ts);
        let SockEv { meta, comm, kind } = s;
        match kind {
            SockKind::TcpRcv { sock, .. } => {
                let id = meta.journey;
                let Some(o) = self.exact(id, ts, meta.cpu) else {
                    return;
                };
                o.last = o.last.max(ts);
                o.obs.push(Obs::TcpRcv {
                    ts,
                    sock: sock.clone(),
                });
                if !meta.net_rx {
                    self.reads.backlog_processed(meta.tid, id, sock.sk);
                }
                self.delivered(id, &sock);
            }
            SockKind::SynAck { listener, request } => {
                if let Some(id) = self.attribute(meta.journey, meta.cpu, ts, &request) {
                    self.add(
                        id,
                        ts,
                        Obs::SynAck {
                            ts,
                            listener,
                            req: request,
                        },
                    );
                }
            }
            SockKind::DataReady { sock } => {
                if let Some(id) = self.socket_event(&meta, &sock, None) {
                    self.add(
                        id,
                        ts,
                        Obs::DataReady {
                            ts,
                            sock: sock.clone(),
                        },
                    );
                    if !sock.in_state(TcpState::Listen) {
                        self.delivered(id, &sock);
                    }
                }
            }
            SockKind::StateChange { sock, from, to } => {
                let Some(id) = self.socket_event(&meta, &sock, Some((from, to))) else {
                    // A system call (connect, close) or a timer changed it.
                    self.syscalls.state_change(
                        &meta,
                        &comm,
                        &sock,
                        from,
                        to,
                        &self.sockets,
                        &self.clock,
                    );
                    return;
                };
                let child = sock.sk;
                let lport = sock.lport;
                self.add(
                    id,
                    ts,
                    Obs::State {
                        ts,
                        sock,
                        from: from as u8,
                        to: to as u8,
                    },
                );
                if (from, to) == (TcpState::SynRecv, TcpState::Established) && lport != 0 {
                    // SYN_RECV -> ESTABLISHED on a child socket: the connection now waits in the
                    // listener's accept queue.
                    if let Some(o) = self.journeys.get_mut(id) {
                        self.reads.accept_queued(o, child);
                    }
                }
            }
            SockKind::ReceiveReset { sock } => {
                if let Some(id) = self.socket_event(&meta, &sock, None) {
                    // Its reader learns of the reset from its next read, which the journey
                    // waits for (a connect() in progress learns from connect(), which the
                    // connect pairing tells).
                    if super::reads::reset_reaches_reader(&sock) {
                        if let Some(o) = self.journeys.get_mut(id) {
                            self.reads.reset(o, sock.sk);
                        }
                    }
                    self.add(id, ts, Obs::ReceiveReset { ts, sock });
                }
            }
            SockKind::ErrorReport { sock, err } => {
                if let Some(id) = self.socket_event(&meta, &sock, None) {
                    self.add(id, ts, Obs::ErrorReport { ts, err });
                }
            }
            SockKind::Recv {
                sock,
                ret,
                flags,
                copied_seq,
                call,
            } => self.recv(Read {
                meta: &meta,
                comm: &comm,
                sock: &sock,
                ret,
                flags,
                copied_seq,
                call: call.as_ref(),
            }),
            SockKind::Lookup {
                table,
                found,
                tw_substate,
                tw_left,
                accept_queue,
                syn_queue,
                syn_sysctls,
            } => {
                // A lookup ran in the softirq processing the CPU's current packet. A socket
                // found must fit the packet (the kernel also looks sockets up for other
                // reasons, e.g. for the packet inside an ICMP error); a miss is taken as the
                // packet's.
                let Some(o) = self.journeys.get_mut(meta.journey) else {
                    return;
                };
                if let (Some(f), Some(h)) = (&found, &o.headers) {
                    if !fits(h, f) {
                        return;
                    }
                }
                o.last = o.last.max(ts);
                o.obs.push(Obs::Lookup { ts, table, found });
                if tw_substate.is_some() {
                    o.tw_substate = tw_substate;
                    o.tw_left = tw_left;
                }
                if accept_queue.is_some() {
                    o.accept_queue = accept_queue;
                    o.syn_queue = syn_queue;
                    o.syn_sysctls = syn_sysctls;
                }
            }
            SockKind::Destroy { sock } => {
                // Closed by its owner without a read after the reset: nothing more to wait for.
                if let Some(id) = self.reads.destroyed(sock.sk) {
                    if let Some(o) = self.journeys.get_mut(id) {
                        o.awaiting = false;
                        o.last = o.last.max(ts);
                        o.obs.push(Obs::ClosedAfterReset {
                            ts,
                            comm,
                            pid: meta.pid,
                        });
                    }
                }
            }
        }
    }

    /// What a socket event shows of its sockets, for the socket table.
    fn observe_sockets(&mut self, kind: &SockKind, ts: u64) {
        match kind {
            SockKind::StateChange { sock, to, .. } => {
                // The tracepoint fires before the new state is stored: record the new one.
                let mut now = sock.clone();
                now.state = *to as u8;
                self.sockets.observe(&now, ts);
            }
            SockKind::SynAck { listener, request } => {
                self.sockets.observe(listener, ts);
                self.sockets.observe(request, ts);
            }
            SockKind::Lookup { found, .. } => {
                if let Some(f) = found {
                    self.sockets.observe(f, ts);
                }
            }
            SockKind::DataReady { sock }
            | SockKind::TcpRcv { sock, .. }
            | SockKind::Recv { sock, .. }
            | SockKind::ReceiveReset { sock }
            | SockKind::ErrorReport { sock, .. }
            | SockKind::Destroy { sock } => self.sockets.observe(sock, ts),
        }
    }

    /// The journey of an event that names only its socket (and, for a state change, the
    /// change).
    fn socket_event(
        &self,
        meta: &Meta,
        sock: &Socket,
        change: Option<(TcpState, TcpState)>,
    ) -> Option<u64> {
        if meta.net_rx {
            self.attribute(meta.journey, meta.cpu, meta.ts_ns, sock)
        } else {
            self.attribute_process(meta, sock, change)
        }
    }

    fn skb(&mut self, k: SkbEv) {
        let ts = k.meta.ts_ns;
        let Some(o) = self.exact(k.meta.journey, ts, k.meta.cpu) else {
            return;
        };
        o.last = o.last.max(ts);
        if matches!(k.kind, SkbKind::Drop { .. }) {
            o.awaiting = false;
        }
        if let SkbKind::Drop {
            tw_substate: Some(substate),
            tw_left,
            ..
        } = k.kind
        {
            // What the lookup saw, where a hook saw it, is the substate the segment found (and
            // the time left then).
            if o.tw_substate.is_none() {
                o.tw_substate = Some(substate);
                o.tw_left = tw_left;
            }
        }
        o.obs.push(match k.kind {
            SkbKind::Drop {
                reason,
                location,
                sk,
                ..
            } => Obs::Drop {
                ts,
                reason,
                location,
                sk,
            },
            SkbKind::ResetSent { reason, sk } => Obs::ResetSent { ts, sk, reason },
            SkbKind::IcmpSent { type_, code } => Obs::Icmp { ts, type_, code },
            SkbKind::QueueFail { rc, by } => Obs::QueueFail { ts, rc, by },
            SkbKind::Hop { hop } => Obs::Hop { ts, hop },
            SkbKind::Consumed { location } => Obs::Consumed { ts, location },
            // A RST has its own stage (tcp_send_reset).
            SkbKind::Answer { flags, .. } if flags & 0x04 != 0 => return,
            SkbKind::Answer { flags, .. } => Obs::Answer { ts, flags },
        });
    }

    fn fib(&mut self, f: FibEv) {
        let id = f.meta.journey;
        let fits = self.journeys.get(id).is_some_and(|o| {
            o.headers.as_ref().is_some_and(|h| {
                h.dst == std::net::IpAddr::V4(f.dst)
                    && (f.dport == 0 || h.dport.is_none_or(|p| p == f.dport))
            })
        });
        if fits {
            let ts = f.meta.ts_ns;
            self.add(id, ts, Obs::Fib(f));
        }
    }

    fn syscall(&mut self, s: SyscallEv) {
        let ts = s.meta.ts_ns;
        if s.kind == SyscallKind::Connect {
            self.connect_returned(&s);
        }
        if matches!(s.kind, SyscallKind::Accept | SyscallKind::Accept4) && s.ret >= 0 {
            self.accepted(
                s.sock.sk,
                ReadObs {
                    ts,
                    pid: s.meta.pid,
                    comm: s.comm.clone(),
                    bytes: 0,
                    syscall: Some(s.kind.name()),
                    fd: Some(s.ret as i32),
                },
            );
        }
        let items = self.syscalls.push(s, &mut self.sockets, &self.clock);
        self.summary.syscalls += items.len() as u64;
        self.ready
            .extend(items.into_iter().map(|r| Item::Syscall(Box::new(r))));
    }
}
