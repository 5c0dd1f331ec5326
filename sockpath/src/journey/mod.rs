//! Journey assembly: raw events in, finished journeys and syscall records out.
//!
//! A journey starts with a packet at device receive. Events that name the packet (tcp_probe,
//! kfree_skb, ...) join it by id; events that name only a socket (sk_data_ready, state changes)
//! join the packet the CPU was processing in its NET_RX softirq, checked against the packet's
//! addresses and ports (and found by them when the kernel batched several packets). Reads join
//! by TCP sequence numbers (how far the reader consumed the stream) or, for UDP, by the datagram
//! copied to the reader. A journey is finished when it reached an end (read, accepted, dropped)
//! and nothing more came for a while, or when it waited too long.

mod build;
pub mod clock;
pub mod hooks;
pub mod model;
pub mod names;
pub mod sockets;
mod syscalls;

use crate::journey::model::Timestamp;
use std::collections::{BTreeSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

use sockpath_ebpf::event::{Hop, LookupTable, SkbWhat, SockWhat, SyscallKind};

use self::{
    clock::Clock,
    model::{Item, Note, Owner, StateChange, Summary},
    names::{tcp_state, KernelNames},
    sockets::{fits, SocketTable},
};
use crate::{
    decode::{Event, FibEv, PacketRx, SkbEv, SockEv, Socket, SyscallEv},
    filter::WatchFilter,
    packet::{Headers, IPPROTO_TCP, IPPROTO_UDP},
};

/// How many of the latest open journeys an event that names no journey is tried against. The
/// packet it belongs to is among the last few the CPU received (a NAPI batch is at most 64; a
/// socket's backlog is processed when its owner releases it), far fewer than this.
const ATTRIBUTE_WINDOW: usize = 1024;

#[derive(Clone, Debug)]
pub struct Config {
    pub filter: WatchFilter,
    /// A journey is finished this long after its last event, once it needs nothing more. The
    /// time is the time up to which every event has been read (see `Assembler::tick`), so a
    /// reader that falls behind finishes nothing early; this only covers events of one packet
    /// taken on different CPUs and committed to the ring out of order.
    pub settle_ns: u64,
    /// A journey waiting for a read or an accept is finished this long after it started.
    pub hold_ns: u64,
    /// Journeys open at once; past this the oldest is finished as incomplete (memory bound).
    pub max_open: usize,
    /// Which hook serves each stage on this kernel.
    pub hooks: hooks::HookChoice,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            filter: WatchFilter::default(),
            settle_ns: 30_000_000,
            hold_ns: 2_000_000_000,
            max_open: 20_000,
            hooks: hooks::HookChoice::default(),
        }
    }
}

/// One thing observed about a packet after device receive.
#[derive(Clone, Debug)]
pub(crate) enum Obs {
    Fib(FibEv),
    /// tcp_probe: established-state receive on this socket.
    TcpRcv {
        ts: u64,
        sock: Socket,
    },
    /// SYN-ACK sent by `listener` for request socket `req`.
    SynAck {
        ts: u64,
        listener: Socket,
        req: Socket,
    },
    State {
        ts: u64,
        sock: Socket,
        from: u8,
        to: u8,
    },
    DataReady {
        ts: u64,
        sock: Socket,
    },
    ReceiveReset {
        ts: u64,
        sock: Socket,
    },
    ErrorReport {
        ts: u64,
        err: i32,
    },
    ResetSent {
        ts: u64,
        sk: u64,
        reason: i32,
    },
    Icmp {
        ts: u64,
        type_: i32,
        code: i32,
    },
    Drop {
        ts: u64,
        reason: i32,
        location: u64,
        sk: u64,
    },
    QueueFail {
        ts: u64,
        rc: i32,
    },
    /// Payload bytes of this packet taken by a reader.
    Read(ReadObs),
    /// The reader saw end-of-file (read() = 0) after this FIN.
    Eof(ReadObs),
    Accepted(ReadObs),
    /// The packet entered a receive-path function (fentry/kprobe).
    Hop {
        ts: u64,
        hop: Hop,
    },
    /// A socket lookup for the packet returned `found` (None: no socket).
    Lookup {
        ts: u64,
        table: LookupTable,
        found: Option<Socket>,
    },
    /// The connect() this packet completed (SYN-ACK) or refused (RST) returned `ret`.
    Connected {
        r: ReadObs,
        ret: i64,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct ReadObs {
    pub ts: u64,
    pub pid: u32,
    pub comm: String,
    pub bytes: u64,
    /// Filled in when the reader's system call returns.
    pub syscall: Option<&'static str>,
    pub fd: Option<i32>,
}

pub(crate) struct Open {
    pub seq: u64,
    pub kernel_id: u64,
    pub t0: u64,
    pub last: u64,
    pub cpu: u16,
    pub pkt: Option<PacketRx>,
    pub headers: Option<Headers>,
    pub obs: Vec<Obs>,
    /// Payload waiting to be read, or a connection waiting to be accepted.
    pub awaiting: bool,
    pub lost: bool,
    pub evicted: bool,
    /// Sockets whose waiting lists name this journey (accept, FIN, unread data), so finishing it
    /// removes it from those lists only.
    pub waits_on: Vec<u64>,
}

impl Open {
    fn terminal(&self) -> bool {
        self.obs
            .iter()
            .any(|o| matches!(o, Obs::Drop { .. } | Obs::Accepted(_)))
    }
}

/// TCP payload of one packet on a socket's receive queue, not yet fully read.
struct Segment {
    journey: u64,
    end: u32,
    /// Sequence number up to which it has been read.
    read_upto: u32,
}

/// `a` is before `b` in TCP sequence space (RFC 1982 comparison).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// How long a loss window is remembered after it closed.
const LOSS_MEMORY_NS: u64 = 10_000_000_000;

pub struct Assembler {
    cfg: Config,
    names: KernelNames,
    clock: Clock,
    open: FxHashMap<u64, Open>,
    /// The open journeys by start time: the oldest, for eviction and the output's watermark,
    /// without a scan of all of them for every packet.
    by_t0: BTreeSet<(u64, u64)>,
    /// Recently finished journey ids (late events for them are not orphans).
    finished: FxHashSet<u64>,
    finished_order: VecDeque<u64>,
    /// Those of them the filter left out (the kernel's set is wider than the filter): nothing
    /// more is said about them.
    hidden: FxHashSet<u64>,
    pub(crate) sockets: SocketTable,
    segments: FxHashMap<u64, Vec<Segment>>,
    /// UDP socket -> datagrams queued on it, oldest first: each read takes the oldest.
    datagrams: FxHashMap<u64, VecDeque<u64>>,
    /// Socket -> journey of the FIN it received, for the reader's end-of-file.
    fins: FxHashMap<u64, u64>,
    /// Accepted-to-be child socket -> journey of the ACK that created it.
    accepts: FxHashMap<u64, u64>,
    /// Thread -> the packet it last processed from a socket's backlog (tcp_probe outside
    /// softirq: the socket was locked by its owner when the packet came, and release_sock()
    /// in that thread processes it).
    backlog: FxHashMap<u32, (u64, u64)>,
    syscalls: syscalls::Syscalls,
    ready: Vec<Item>,
    next_seq: u64,
    /// When events were lost: (previous check, check that counted losses], kernel clock,
    /// oldest first. A journey alive during one may be missing events.
    losses: VecDeque<(u64, u64)>,
    /// When the loss counter was last checked.
    loss_checked: u64,
    /// The time the last tick was given: journeys finished then were waited on up to it.
    ticked: u64,
    /// The latest kernel timestamp of the events read so far.
    newest: u64,
    summary: Summary,
}

impl Assembler {
    pub fn new(cfg: Config, names: KernelNames, clock: Clock) -> Self {
        Self {
            syscalls: syscalls::Syscalls::new(cfg.filter.clone()),
            cfg,
            names,
            clock,
            open: FxHashMap::default(),
            by_t0: BTreeSet::new(),
            finished: FxHashSet::default(),
            finished_order: VecDeque::new(),
            hidden: FxHashSet::default(),
            sockets: SocketTable::default(),
            segments: FxHashMap::default(),
            datagrams: FxHashMap::default(),
            fins: FxHashMap::default(),
            accepts: FxHashMap::default(),
            backlog: FxHashMap::default(),
            ready: Vec::new(),
            next_seq: 0,
            losses: VecDeque::new(),
            loss_checked: 0,
            ticked: 0,
            newest: 0,
            summary: Summary::default(),
        }
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn summary_mut(&mut self) -> &mut Summary {
        &mut self.summary
    }

    pub fn set_proc_owners(&mut self, owners: std::collections::HashMap<u64, Owner>) {
        self.sockets.set_proc_owners(owners);
    }

    /// Sockets whose owner is unknown though they have a file: worth a /proc rescan.
    /// How much the assembler holds, for `RUST_LOG=debug`.
    pub fn debug_sizes(&self) -> String {
        let awaiting = self.open.values().filter(|o| o.awaiting).count();
        format!(
            "open={} (waiting for a reader {awaiting}) finished={} order={} segments={} dgrams={}/{} fins={} accepts={} backlog={} ready={} socks={} undecided={} changes={} notes={}",
            self.open.len(),
            self.finished.len(),
            self.finished_order.len(),
            self.segments.values().map(|v| v.len()).sum::<usize>(),
            self.datagrams.len(),
            self.datagrams.values().map(|v| v.len()).sum::<usize>(),
            self.fins.len(),
            self.accepts.len(),
            self.backlog.len(),
            self.ready.len(),
            self.sockets.len(),
            self.syscalls.undecided_len(),
            self.syscalls.changes_len(),
            self.syscalls.notes_len(),
        )
    }

    pub fn needs_owner_scan(&self) -> bool {
        self.open.values().any(|o| {
            o.obs.iter().any(|ob| match ob {
                Obs::TcpRcv { sock, .. } | Obs::DataReady { sock, .. } => {
                    self.sockets.owner_unknown(sock.sk)
                }
                Obs::SynAck { listener, .. } => self.sockets.owner_unknown(listener.sk),
                _ => false,
            })
        })
    }

    /// Earliest start of a journey still open (nothing older can still appear in the output).
    pub fn oldest_open(&self) -> Option<u64> {
        self.by_t0.first().map(|(t0, _)| *t0)
    }

    /// The items finished since the last call. A drain, not a new vector: the buffer is kept
    /// (a fresh one per batch grew through sizes that made glibc's allocator consolidate its
    /// free lists every time).
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, Item> {
        self.ready.drain(..)
    }

    /// The latest kernel timestamp of the events read so far: while the ring is not empty, the
    /// time up to which events are known.
    pub fn newest_event(&self) -> u64 {
        self.newest
    }

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

    /// The loss counter, checked at monotonic time `now`, grew by `n` (called at every check,
    /// `n` = 0 included): the events were lost since the previous check. Any journey alive in
    /// that window, even one read much later by a reader that is behind, may miss a stage and
    /// is marked incomplete when it finishes; one that ended before it is not.
    pub fn lost(&mut self, n: u64, now: u64) {
        let since = std::mem::replace(&mut self.loss_checked, now);
        if n == 0 {
            return;
        }
        self.summary.events_lost += n;
        match self.losses.back_mut() {
            // Losses at every check, as under a flood, make one window.
            Some(w) if w.1 >= since => w.1 = now,
            _ => self.losses.push_back((since, now)),
        }
        // A journey finishing now began at most a few seconds ago (the hold time, or the
        // reader's delay, is far shorter).
        let keep_after = now.saturating_sub(LOSS_MEMORY_NS);
        while self.losses.len() > 1 && self.losses.front().is_some_and(|w| w.1 < keep_after) {
            self.losses.pop_front();
        }
        let ts = self.clock.wall_ns(now);
        self.ready.push(Item::Note(Note {
            ts_ns: ts,
            ts: Timestamp(ts),
            kind: "lost".into(),
            text: format!(
                "{n} events lost: the ring buffer was full (total {}); journeys in flight in the last {} ms are marked incomplete",
                self.summary.events_lost,
                now.saturating_sub(since).div_ceil(1_000_000)
            ),
        }));
    }

    /// Whether events were lost while `o` was alive: from its first event until it stopped
    /// waiting for more. One that waited for nothing ended a settling delay after its last
    /// event (a later event would have come too late for it anyway); one that still waited
    /// (data not read) was alive until now.
    fn lived_through_loss(&self, o: &Open) -> bool {
        let end = if o.awaiting && !o.terminal() {
            self.ticked.max(self.newest)
        } else {
            o.last.saturating_add(self.cfg.settle_ns)
        };
        // Windows are disjoint and in time order: from the newest back to the first that
        // closed before the journey began.
        self.losses
            .iter()
            .rev()
            .take_while(|&&(_, until)| until >= o.t0)
            .any(|&(since, _)| since < end)
    }

    fn packet(&mut self, p: PacketRx) {
        let id = p.meta.journey;
        let headers = Headers::parse(p.ethertype, p.mac_len as usize, &p.data).ok();
        if !self.cfg.filter.packet_matches(&p.ifname, headers.as_ref()) {
            // In the kernel's set for another reason (another client's filter, an owner's
            // port): not a journey here, and its later events are not orphans.
            if let Some(o) = self.open.remove(&id) {
                self.by_t0.remove(&(o.t0, id));
            }
            self.forget(id, true);
            return;
        }
        if let Some(o) = self.open.get_mut(&id) {
            if o.pkt.is_none() {
                // Events about the packet were read before its device-receive event (a record
                // committed late): the journey was opened for them, and is now whole.
                self.by_t0.remove(&(o.t0, id));
                o.t0 = p.meta.ts_ns;
                self.by_t0.insert((o.t0, id));
                o.cpu = p.meta.cpu;
                // It was marked for its lost device-receive event; losses are checked when
                // it finishes.
                o.lost = false;
                o.headers = headers;
                o.pkt = Some(p);
                return;
            }
            // The kernel never reuses an id; a duplicate means a corrupt stream.
            if let Some(old) = self.open.remove(&id) {
                self.finalize(old);
            }
        }
        if self.open.len() >= self.cfg.max_open {
            if let Some(&(_, oldest)) = self.by_t0.first() {
                if let Some(mut o) = self.open.remove(&oldest) {
                    // One that has all it waits for was only settling: it ends as it is.
                    if o.awaiting && !o.terminal() {
                        o.evicted = true;
                        self.summary.evicted += 1;
                    }
                    self.finalize(o);
                }
            }
        }
        self.next_seq += 1;
        let t0 = p.meta.ts_ns;
        let o = Open {
            seq: self.next_seq,
            kernel_id: id,
            t0,
            last: t0,
            cpu: p.meta.cpu,
            pkt: Some(p),
            headers,
            obs: Vec::new(),
            awaiting: false,
            lost: false,
            evicted: false,
            waits_on: Vec::new(),
        };
        self.by_t0.insert((t0, id));
        self.open.insert(id, o);
    }

    /// The open journey an exact-id event belongs to, creating an orphan (a journey whose
    /// device-receive event never arrived) if the id is unknown.
    fn exact(&mut self, id: u64, ts: u64, cpu: u16) -> Option<&mut Open> {
        if id == 0 || self.finished.contains(&id) {
            return None;
        }
        if !self.open.contains_key(&id) {
            self.next_seq += 1;
            self.by_t0.insert((ts, id));
            self.open.insert(
                id,
                Open {
                    seq: self.next_seq,
                    kernel_id: id,
                    t0: ts,
                    last: ts,
                    cpu,
                    pkt: None,
                    headers: None,
                    obs: Vec::new(),
                    awaiting: false,
                    lost: true,
                    evicted: false,
                    waits_on: Vec::new(),
                },
            );
        }
        self.open.get_mut(&id)
    }

    /// The journey a socket-only event in NET_RX belongs to: the packet the CPU was processing,
    /// if its addresses fit the socket; else the latest open packet on that CPU that fits (the
    /// kernel may have received a batch before processing each).
    fn attribute(&self, hint: u64, cpu: u16, ts: u64, s: &Socket) -> Option<u64> {
        let fit = |o: &Open| o.headers.as_ref().is_some_and(|h| fits(h, s));
        if let Some(o) = self.open.get(&hint) {
            if fit(o) {
                return Some(hint);
            }
        }
        self.latest_before(ts, ATTRIBUTE_WINDOW)
            .find(|o| o.cpu == cpu && fit(o))
            .map(|o| o.kernel_id)
    }

    /// Open journeys that started at or before `ts`, newest first, at most `window` of them:
    /// the candidates for an event that names no journey. Walking the start-time index keeps
    /// this cheap when thousands are open (under a flood, events whose packet event was lost
    /// come for every packet; a scan of all open journeys for each made user space fall
    /// further behind).
    fn latest_before(&self, ts: u64, window: usize) -> impl Iterator<Item = &Open> {
        self.by_t0
            .range(..=(ts, u64::MAX))
            .rev()
            .take(window)
            .filter_map(|(_, id)| self.open.get(id))
    }

    /// The journey a socket event outside softirq belongs to, if a packet caused it: the socket
    /// was locked by its owner when the packet arrived, so the packet waited in the socket's
    /// backlog and release_sock() processed it in the owner's system call. State changes only
    /// a system call makes (connect, listen, close) are never a packet's.
    fn attribute_process(&self, s: &SockEv) -> Option<u64> {
        if s.what == SockWhat::StateChange && syscall_driven(s.arg0 as u8, s.arg1 as u8) {
            return None;
        }
        let ts = s.meta.ts_ns;
        let fit = |o: &Open| o.t0 <= ts && o.headers.as_ref().is_some_and(|h| fits(h, &s.sock));
        if let Some(&(id, sk)) = self.backlog.get(&s.meta.tid) {
            if sk == s.sock.sk && self.open.get(&id).is_some_and(fit) {
                return Some(id);
            }
        }
        self.latest_before(ts, ATTRIBUTE_WINDOW)
            .find(|o| fit(o))
            .map(|o| o.kernel_id)
    }

    fn add(&mut self, id: u64, ts: u64, obs: Obs) {
        if let Some(o) = self.open.get_mut(&id) {
            o.last = o.last.max(ts);
            o.obs.push(obs);
        }
    }

    fn sock(&mut self, s: SockEv) {
        let ts = s.meta.ts_ns;
        if s.what == SockWhat::StateChange {
            // The tracepoint fires before the new state is stored: record the new one.
            let mut now = s.sock.clone();
            now.state = s.arg1 as u8;
            self.sockets.observe(&now, ts);
        } else {
            self.sockets.observe(&s.sock, ts);
        }
        if s.what == SockWhat::SynAck {
            self.sockets.observe(&s.other, ts);
        }
        match s.what {
            SockWhat::TcpRcv => {
                let id = s.meta.journey;
                let Some(o) = self.exact(id, ts, s.meta.cpu) else {
                    return;
                };
                o.last = o.last.max(ts);
                o.obs.push(Obs::TcpRcv {
                    ts,
                    sock: s.sock.clone(),
                });
                if !s.meta.net_rx {
                    self.backlog.insert(s.meta.tid, (id, s.sock.sk));
                }
                self.delivered(id, &s.sock);
            }
            SockWhat::SynAck => {
                if let Some(id) = self.attribute(s.meta.journey, s.meta.cpu, ts, &s.other) {
                    self.add(
                        id,
                        ts,
                        Obs::SynAck {
                            ts,
                            listener: s.sock,
                            req: s.other,
                        },
                    );
                }
            }
            SockWhat::DataReady
            | SockWhat::StateChange
            | SockWhat::ReceiveReset
            | SockWhat::ErrorReport => {
                let id = if s.meta.net_rx {
                    self.attribute(s.meta.journey, s.meta.cpu, ts, &s.sock)
                } else {
                    self.attribute_process(&s)
                };
                let Some(id) = id else {
                    if s.what == SockWhat::StateChange {
                        // A system call (connect, close) or a timer changed it.
                        self.syscalls.state_change(&s, &self.sockets, &self.clock);
                    }
                    return;
                };
                let obs = match s.what {
                    SockWhat::DataReady => Obs::DataReady {
                        ts,
                        sock: s.sock.clone(),
                    },
                    SockWhat::StateChange => Obs::State {
                        ts,
                        sock: s.sock.clone(),
                        from: s.arg0 as u8,
                        to: s.arg1 as u8,
                    },
                    SockWhat::ReceiveReset => Obs::ReceiveReset {
                        ts,
                        sock: s.sock.clone(),
                    },
                    _ => Obs::ErrorReport { ts, err: s.arg0 },
                };
                self.add(id, ts, obs);
                if s.what == SockWhat::StateChange
                    && s.arg0 as u8 == 3
                    && s.arg1 as u8 == 1
                    && s.sock.lport != 0
                {
                    // SYN_RECV -> ESTABLISHED on a child socket: the connection now waits in the
                    // listener's accept queue.
                    self.accepts.insert(s.sock.sk, id);
                    if let Some(o) = self.open.get_mut(&id) {
                        o.awaiting = true;
                        o.waits_on.push(s.sock.sk);
                    }
                }
                if s.what == SockWhat::DataReady && s.sock.state != 10 {
                    self.delivered(id, &s.sock);
                }
            }
            SockWhat::Recv => self.recv(&s),
            SockWhat::Lookup => self.lookup(s),
            SockWhat::Destroy => {}
        }
    }

    /// A lookup ran in the softirq processing the CPU's current packet. A socket found must fit
    /// the packet (the kernel also looks sockets up for other reasons, e.g. for the packet inside
    /// an ICMP error); a miss is taken as the packet's.
    fn lookup(&mut self, s: SockEv) {
        let Some(table) = LookupTable::from_i32(s.arg0) else {
            return;
        };
        let id = s.meta.journey;
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let found = (s.sock.sk != 0).then_some(s.sock);
        if let (Some(f), Some(h)) = (&found, &o.headers) {
            if !fits(h, f) {
                return;
            }
        }
        let ts = s.meta.ts_ns;
        o.last = o.last.max(ts);
        o.obs.push(Obs::Lookup { ts, table, found });
    }

    /// A packet reached socket `sk`: remember its payload until a reader takes it.
    fn delivered(&mut self, id: u64, sock: &Socket) {
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let Some(h) = o.headers.clone() else { return };
        if !o.waits_on.contains(&sock.sk) {
            o.waits_on.push(sock.sk);
        }
        if h.proto == IPPROTO_TCP {
            if h.has_flag("FIN") {
                self.fins.insert(sock.sk, id);
            }
            if h.payload_len == 0 || o.awaiting {
                return;
            }
            let Some(t) = &h.tcp else { return };
            o.awaiting = true;
            let start = t.seq.wrapping_add(u32::from(h.has_flag("SYN")));
            self.segments.entry(sock.sk).or_default().push(Segment {
                journey: id,
                end: start.wrapping_add(h.payload_len),
                read_upto: start,
            });
        } else if h.proto == IPPROTO_UDP && !o.awaiting {
            o.awaiting = true;
            self.datagrams.entry(sock.sk).or_default().push_back(id);
        }
    }

    /// sock_recv_length in a reader's context. For TCP, copied_seq says how far the stream has
    /// been consumed, which names the segments this read took bytes from. A UDP read takes the
    /// oldest datagram queued on the socket (the kernel copies small datagrams with
    /// copy_linear_skb(), which has no tracepoint naming the packet).
    fn recv(&mut self, s: &SockEv) {
        let (ts, ret, copied) = (s.meta.ts_ns, s.arg0, s.arg2);
        // The read's release_sock() processed the socket's backlog before this event: a later
        // event of the thread on this socket comes from another call (a close() that processes
        // the final ACK), not from the packet the read's backlog held.
        if self
            .backlog
            .get(&s.meta.tid)
            .is_some_and(|&(_, sk)| sk == s.sock.sk)
        {
            self.backlog.remove(&s.meta.tid);
        }
        // The read's system call (s.call) is told in the journeys of the packets it read, not
        // on a line of its own: a stream of reads would double the output.
        // MSG_PEEK leaves the data queued.
        if s.arg1 & libc::MSG_PEEK != 0 {
            return;
        }
        let read = |bytes: u64| ReadObs {
            ts,
            pid: s.meta.pid,
            comm: s.comm.clone(),
            bytes,
            syscall: s.call.as_ref().map(|c| c.kind.name()),
            fd: s.call.as_ref().map(|c| c.fd),
        };
        if s.sock.protocol == IPPROTO_UDP as u16 {
            if ret < 0 {
                return;
            }
            let Some(q) = self.datagrams.get_mut(&s.sock.sk) else {
                return;
            };
            let Some(id) = q.pop_front() else { return };
            if q.is_empty() {
                self.datagrams.remove(&s.sock.sk);
            }
            self.push_read(id, Obs::Read(read(ret as u64)));
            if let Some(o) = self.open.get_mut(&id) {
                o.awaiting = false;
            }
            return;
        }
        if s.sock.protocol != IPPROTO_TCP as u16 {
            return;
        }
        if ret == 0 {
            if let Some(id) = self.fins.remove(&s.sock.sk) {
                self.push_read(id, Obs::Eof(read(0)));
            }
            return;
        }
        if ret < 0 {
            return;
        }
        let Some(segs) = self.segments.get_mut(&s.sock.sk) else {
            return;
        };
        let mut hits = Vec::new();
        segs.retain_mut(|seg| {
            if !seq_lt(seg.read_upto, copied) {
                return true;
            }
            let upto = if seq_lt(copied, seg.end) {
                copied
            } else {
                seg.end
            };
            let n = upto.wrapping_sub(seg.read_upto) as u64;
            seg.read_upto = upto;
            hits.push((seg.journey, n, upto == seg.end));
            upto != seg.end
        });
        if segs.is_empty() {
            self.segments.remove(&s.sock.sk);
        }
        for (id, n, done) in hits {
            self.push_read(id, Obs::Read(read(n)));
            if done {
                if let Some(o) = self.open.get_mut(&id) {
                    o.awaiting = false;
                }
            }
        }
    }

    fn push_read(&mut self, id: u64, obs: Obs) {
        let Some(o) = self.open.get_mut(&id) else {
            let ts = match &obs {
                Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) => r.ts,
                _ => 0,
            };
            self.late(id, &obs, ts);
            return;
        };
        let ts = match &obs {
            Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) => r.ts,
            _ => o.last,
        };
        o.last = o.last.max(ts);
        o.obs.push(obs);
    }

    /// Something happened to a journey already printed: a line of its own.
    fn late(&mut self, id: u64, obs: &Obs, ts: u64) {
        let (Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r)) = obs else {
            return;
        };
        if self.hidden.contains(&id) {
            return;
        }
        let what = match obs {
            Obs::Read(_) => format!("{} bytes of it read", r.bytes),
            Obs::Eof(_) => "end of file read".to_string(),
            _ => "accepted".to_string(),
        };
        let wall = self.clock.wall_ns(ts);
        self.ready.push(Item::Note(Note {
            ts_ns: wall,
            ts: Timestamp(wall),
            kind: "late".into(),
            text: format!(
                "packet {:#x} (already shown): {what} by {}[{}]",
                id, r.comm, r.pid
            ),
        }));
    }

    fn skb(&mut self, k: SkbEv) {
        let ts = k.meta.ts_ns;
        let id = k.meta.journey;
        let Some(o) = self.exact(id, ts, k.meta.cpu) else {
            return;
        };
        o.last = o.last.max(ts);
        o.obs.push(match k.what {
            SkbWhat::Drop => Obs::Drop {
                ts,
                reason: k.arg0,
                location: k.location,
                sk: k.sk,
            },
            SkbWhat::ResetSent => Obs::ResetSent {
                ts,
                sk: k.sk,
                reason: k.arg0,
            },
            SkbWhat::IcmpSent => Obs::Icmp {
                ts,
                type_: k.arg0,
                code: k.arg1,
            },
            SkbWhat::QueueFail => Obs::QueueFail { ts, rc: k.arg0 },
            SkbWhat::Hop => match Hop::from_u16(k.arg0 as u16) {
                Some(hop) => Obs::Hop { ts, hop },
                None => return,
            },
        });
        if k.what == SkbWhat::Drop {
            o.awaiting = false;
        }
    }

    fn fib(&mut self, f: FibEv) {
        let id = f.meta.journey;
        let fits = self.open.get(&id).is_some_and(|o| {
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
            if let Some(id) = self.accepts.remove(&s.sock.sk) {
                let r = ReadObs {
                    ts,
                    pid: s.meta.pid,
                    comm: s.comm.clone(),
                    bytes: 0,
                    syscall: Some(s.kind.name()),
                    fd: Some(s.ret as i32),
                };
                if let Some(o) = self.open.get_mut(&id) {
                    o.awaiting = false;
                    o.last = o.last.max(ts);
                    o.obs.push(Obs::Accepted(r));
                } else {
                    self.late(id, &Obs::Accepted(r), ts);
                }
            }
        }
        let items = self.syscalls.push(s, &mut self.sockets, &self.clock);
        self.summary.syscalls += items.len() as u64;
        self.ready
            .extend(items.into_iter().map(|r| Item::Syscall(Box::new(r))));
    }

    /// A blocking connect() returns when the SYN-ACK (or a RST) arrives: the packet whose journey
    /// changed the socket from SYN_SENT while the call was in progress is the answer it got.
    fn connect_returned(&mut self, s: &SyscallEv) {
        let ts = s.meta.ts_ns;
        // The answer arrived while the call was in progress.
        let answered = self
            .by_t0
            .range((s.enter_ns, 0)..=(ts, u64::MAX))
            .filter_map(|(_, id)| self.open.get(id))
            .find(|o| {
                o.obs.iter().any(|x| {
                    matches!(x, Obs::State { sock, from: 2, ts: t, .. }
                        if sock.sk == s.sock.sk && *t >= s.enter_ns && *t <= ts)
                })
            })
            .map(|o| (o.kernel_id, o.t0, o.headers.clone()));
        let Some((answer, answer_t0, answer_h)) = answered else {
            return;
        };
        // The SYN this connect() sent: the answer's addresses and ports the other way round.
        let syn = answer_h.and_then(|ah| {
            self.by_t0
                .range((s.enter_ns, 0)..=(answer_t0, u64::MAX))
                .filter_map(|(_, id)| self.open.get(id))
                .filter(|o| o.kernel_id != answer)
                .find(|o| {
                    o.headers.as_ref().is_some_and(|h| {
                        h.has_flag("SYN")
                            && !h.has_flag("ACK")
                            && h.src == ah.dst
                            && h.dst == ah.src
                            && h.sport == ah.dport
                            && h.dport == ah.sport
                    })
                })
                .map(|o| o.kernel_id)
        });
        let obs = Obs::Connected {
            r: ReadObs {
                ts,
                pid: s.meta.pid,
                comm: s.comm.clone(),
                bytes: 0,
                syscall: Some("connect"),
                fd: Some(s.fd),
            },
            ret: s.ret,
        };
        for id in std::iter::once(answer).chain(syn) {
            if let Some(o) = self.open.get_mut(&id) {
                o.last = o.last.max(ts);
                o.obs.push(obs.clone());
            }
        }
    }

    /// Finishes the journeys that are due at monotonic time `now`: the time up to which every
    /// event from the kernel has been read (the clock when the ring was last found empty, else
    /// the newest event read), not the wall clock, which under a flood runs ahead of what
    /// has been read.
    pub fn tick(&mut self, now: u64) {
        self.ticked = self.ticked.max(now);
        let due: Vec<u64> = self
            .open
            .values()
            .filter(|o| {
                let quiet = now.saturating_sub(o.last) >= self.cfg.settle_ns;
                let waited = now.saturating_sub(o.t0) >= self.cfg.hold_ns;
                quiet && (!o.awaiting || o.terminal() || waited)
            })
            .map(|o| o.kernel_id)
            .collect();
        for id in due {
            if let Some(o) = self.open.remove(&id) {
                self.finalize(o);
            }
        }
        for item in self.syscalls.tick(now, self.cfg.settle_ns, &self.clock) {
            self.ready.push(item);
        }
        self.sockets.expire(now, 60_000_000_000);
        let open = &self.open;
        self.backlog.retain(|_, (id, _)| open.contains_key(id));
    }

    /// Finishes everything (at exit).
    pub fn finish(&mut self) {
        self.ticked = u64::MAX;
        let mut ids: Vec<(u64, u64)> = self.open.values().map(|o| (o.t0, o.kernel_id)).collect();
        ids.sort();
        for (_, id) in ids {
            if let Some(o) = self.open.remove(&id) {
                self.finalize(o);
            }
        }
        for item in self.syscalls.tick(u64::MAX, 0, &self.clock) {
            self.ready.push(item);
        }
    }

    /// The processes a journey concerns besides the holder of the socket it reached and its
    /// reader (for an owner filter): the holders of every socket it reached when it came, or
    /// their last holder if it had closed its end (the kernel finishing the connection for
    /// it), the listener's holder for a connection in its accept queue, and the process whose
    /// connect() it answered.
    fn related_owners(&self, o: &Open) -> Vec<Owner> {
        let mut v = Vec::new();
        for ob in &o.obs {
            let sock = match ob {
                Obs::TcpRcv { sock, .. }
                | Obs::State { sock, .. }
                | Obs::DataReady { sock, .. }
                | Obs::ReceiveReset { sock, .. }
                | Obs::SynAck { listener: sock, .. }
                | Obs::Lookup {
                    found: Some(sock), ..
                } => sock,
                Obs::Connected { r, .. } | Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) => {
                    v.push(Owner {
                        pid: r.pid,
                        comm: r.comm.as_str().into(),
                        fd: r.fd.unwrap_or(-1),
                    });
                    continue;
                }
                _ => continue,
            };
            v.extend(self.sockets.holder_or_last_at(sock, o.t0));
        }
        v
    }

    /// Remembers journey `id` as finished (`hidden`: left out by the filter).
    fn forget(&mut self, id: u64, hidden: bool) {
        self.finished.insert(id);
        if hidden {
            self.hidden.insert(id);
        }
        self.finished_order.push_back(id);
        while self.finished_order.len() > 65536 {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
                self.hidden.remove(&old);
            }
        }
    }

    fn finalize(&mut self, mut o: Open) {
        o.lost = o.lost || self.lived_through_loss(&o);
        let id = o.kernel_id;
        self.by_t0.remove(&(o.t0, id));
        // Only the lists of the sockets it waited on can name it.
        for sk in &o.waits_on {
            if self.accepts.get(sk) == Some(&id) {
                self.accepts.remove(sk);
            }
            if self.fins.get(sk) == Some(&id) {
                self.fins.remove(sk);
            }
            if let Some(q) = self.datagrams.get_mut(sk) {
                // Journeys finish in about the order they were queued: found near the front.
                if let Some(i) = q.iter().position(|j| *j == id) {
                    q.remove(i);
                }
                if q.is_empty() {
                    self.datagrams.remove(sk);
                }
            }
            if let Some(segs) = self.segments.get_mut(sk) {
                segs.retain(|seg| seg.journey != id);
                if segs.is_empty() {
                    self.segments.remove(sk);
                }
            }
        }
        let related = if self.cfg.filter.owners.is_empty() {
            Vec::new()
        } else {
            self.related_owners(&o)
        };
        let j = build::journey(o, &self.sockets, &self.names, &self.clock, &self.cfg.hooks);
        let shown = self.cfg.filter.journey_matches(&j, &related);
        self.forget(id, !shown);
        if !shown {
            return;
        }
        self.summary.journeys += 1;
        if j.complete {
            self.summary.complete += 1;
        } else {
            self.summary.incomplete += 1;
        }
        if j.outcome.kind == model::OutcomeKind::Dropped {
            self.summary.dropped += 1;
        }
        if j.outcome.reset_sent {
            self.summary.resets_sent += 1;
        }
        self.ready.push(Item::Journey(Box::new(j)));
    }
}

/// TCP transitions only a system call makes: connect(), listen(), close()/shutdown().
fn syscall_driven(from: u8, to: u8) -> bool {
    matches!((from, to), (7, 2) | (7, 10) | (1, 4) | (8, 9) | (10, 7))
}

pub(crate) fn state_change(s: &Socket, from: u8, to: u8) -> StateChange {
    StateChange {
        from: tcp_state(from).to_string(),
        to: tcp_state(to).to_string(),
        socket: if s.rport == 0 {
            sockets::endpoint(s.laddr, s.lport)
        } else {
            format!(
                "{} <-> {}",
                sockets::endpoint(s.laddr, s.lport),
                sockets::endpoint(s.raddr, s.rport)
            )
        },
    }
}

#[cfg(test)]
mod tests;
