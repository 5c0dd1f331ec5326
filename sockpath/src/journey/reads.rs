//! Read accounting: what each socket holds for its reader (TCP segments, UDP datagrams, a FIN,
//! a connection to accept) and which packet each read, end of file or accept() took.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use sockpath_ebpf::event::TcpState;

use super::{
    model::{Item, Note, Timestamp},
    obs::{Obs, ReadObs},
    open::Open,
    Assembler,
};
use crate::{
    decode::{Call, Meta, Socket},
    packet::{IPPROTO_TCP, IPPROTO_UDP},
};

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

/// What a read took of one packet.
struct Taken {
    journey: u64,
    bytes: u64,
    what: TakenKind,
    /// Nothing of the packet is left to read.
    done: bool,
}

/// What a read got of a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TakenKind {
    /// Payload bytes.
    Bytes,
    /// End of file: the read returned 0 after this packet's FIN.
    Eof,
    /// The read failed with this error (positive errno), which this packet's RST set.
    Failed(i32),
}

/// Whether the RST that reset `sock` (as tcp_receive_reset saw it, before the reset) is told to
/// a reader by its next read: the socket has a file (a process holds it; an orphan has no
/// reader) and had not received a FIN (after one, reads return end of file, not the error).
/// tcp_reset() sets ECONNRESET in these states; a connect() in progress (SYN_SENT) gets
/// ECONNREFUSED from connect(), and CLOSE_WAIT's EPIPE goes to a writer.
pub(crate) fn reset_reaches_reader(sock: &Socket) -> bool {
    sock.ino != 0
        && matches!(
            sock.tcp_state(),
            Some(TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2)
        )
}

/// Per socket, the journeys whose packets wait for a reader.
#[derive(Default)]
pub(crate) struct Reads {
    segments: FxHashMap<u64, Vec<Segment>>,
    /// UDP socket -> datagrams queued on it, oldest first: each read takes the oldest.
    datagrams: FxHashMap<u64, VecDeque<u64>>,
    /// Socket -> journey of the FIN it received, for the reader's end-of-file.
    fins: FxHashMap<u64, u64>,
    /// Socket -> journey of the RST that reset it, for the error its reader's next read gets.
    resets: FxHashMap<u64, u64>,
    /// Accepted-to-be child socket -> journey of the ACK that created it.
    accepts: FxHashMap<u64, u64>,
    /// Thread -> the packet it last processed from a socket's backlog (tcp_probe outside
    /// softirq: the socket was locked by its owner when the packet came, and release_sock()
    /// in that thread processes it): (journey, socket).
    backlog: FxHashMap<u32, (u64, u64)>,
    /// What the read being handled took (kept to spare an allocation per read).
    taken: Vec<Taken>,
}

impl Reads {
    /// Sizes for `RUST_LOG=debug`.
    pub fn debug_sizes(&self) -> String {
        format!(
            "segments={} dgrams={}/{} fins={} resets={} accepts={} backlog={}",
            self.segments.values().map(|v| v.len()).sum::<usize>(),
            self.datagrams.len(),
            self.datagrams.values().map(|v| v.len()).sum::<usize>(),
            self.fins.len(),
            self.resets.len(),
            self.accepts.len(),
            self.backlog.len(),
        )
    }

    /// Packet `o` reached socket `sk`: remember its payload, or its FIN, until a reader
    /// takes it.
    fn delivered(&mut self, o: &mut Open, sk: u64) {
        let Some(h) = &o.headers else { return };
        if !o.waits_on.contains(&sk) {
            o.waits_on.push(sk);
        }
        if h.proto == IPPROTO_TCP {
            if h.has_flag("FIN") {
                self.fins.insert(sk, o.kernel_id);
            }
            if h.payload_len == 0 || o.awaiting {
                return;
            }
            let Some(t) = &h.tcp else { return };
            let start = t.seq.wrapping_add(u32::from(h.has_flag("SYN")));
            let end = start.wrapping_add(h.payload_len);
            o.awaiting = true;
            self.segments.entry(sk).or_default().push(Segment {
                journey: o.kernel_id,
                end,
                read_upto: start,
            });
        } else if h.proto == IPPROTO_UDP && !o.awaiting {
            o.awaiting = true;
            self.datagrams.entry(sk).or_default().push_back(o.kernel_id);
        }
    }

    /// Packet `o`, a RST, reset socket `sk`, which a process holds: its reader's next read
    /// fails with the error the reset set, and the journey waits for that read (or for the
    /// socket's end, when its owner closes it without reading).
    pub fn reset(&mut self, o: &mut Open, sk: u64) {
        self.resets.insert(sk, o.kernel_id);
        o.awaiting = true;
        if !o.waits_on.contains(&sk) {
            o.waits_on.push(sk);
        }
    }

    /// Socket `sk` was destroyed: the journey of the RST that reset it, if it waited for a read
    /// that can no longer come.
    pub fn destroyed(&mut self, sk: u64) -> Option<u64> {
        self.resets.remove(&sk)
    }

    /// The connection packet `o` completed waits in its listener's accept queue as `child`.
    pub fn accept_queued(&mut self, o: &mut Open, child: u64) {
        self.accepts.insert(child, o.kernel_id);
        o.awaiting = true;
        o.waits_on.push(child);
    }

    /// accept() returned `child`: the journey of the packet that created it, if known.
    pub fn accepted(&mut self, child: u64) -> Option<u64> {
        self.accepts.remove(&child)
    }

    /// Thread `tid` processed packet `journey` from socket `sk`'s backlog.
    pub fn backlog_processed(&mut self, tid: u32, journey: u64, sk: u64) {
        self.backlog.insert(tid, (journey, sk));
    }

    /// The packet thread `tid` last processed from socket `sk`'s backlog.
    pub fn backlog_of(&self, tid: u32, sk: u64) -> Option<u64> {
        self.backlog
            .get(&tid)
            .and_then(|&(id, s)| (s == sk).then_some(id))
    }

    /// Forgets backlog packets whose journeys are no longer open.
    pub fn keep_backlog(&mut self, open: impl Fn(u64) -> bool) {
        self.backlog.retain(|_, (id, _)| open(*id));
    }

    /// A read on `sock` returned `ret`, and TCP had copied up to `copied` after it: fills
    /// `self.taken` with what it took of which packets.
    fn take(&mut self, tid: u32, sock: &Socket, ret: i32, flags: i32, copied: u32) {
        self.taken.clear();
        // The read's release_sock() processed the socket's backlog before this event: a later
        // event of the thread on this socket comes from another call (a close() that processes
        // the final ACK), not from the packet the read's backlog held.
        if self.backlog_of(tid, sock.sk).is_some() {
            self.backlog.remove(&tid);
        }
        // MSG_PEEK leaves the data queued.
        if flags & libc::MSG_PEEK != 0 {
            return;
        }
        if sock.protocol == u16::from(IPPROTO_UDP) {
            if ret < 0 {
                return;
            }
            let Some(q) = self.datagrams.get_mut(&sock.sk) else {
                return;
            };
            let Some(id) = q.pop_front() else { return };
            if q.is_empty() {
                self.datagrams.remove(&sock.sk);
            }
            self.taken.push(Taken {
                journey: id,
                bytes: ret as u64,
                what: TakenKind::Bytes,
                done: true,
            });
            return;
        }
        if sock.protocol != u16::from(IPPROTO_TCP) {
            return;
        }
        if ret == 0 {
            if let Some(id) = self.fins.remove(&sock.sk) {
                self.taken.push(Taken {
                    journey: id,
                    bytes: 0,
                    what: TakenKind::Eof,
                    done: false,
                });
            }
            return;
        }
        if ret < 0 {
            if -ret == libc::ECONNRESET {
                if let Some(id) = self.resets.remove(&sock.sk) {
                    self.taken.push(Taken {
                        journey: id,
                        bytes: 0,
                        what: TakenKind::Failed(-ret),
                        done: true,
                    });
                }
            }
            return;
        }
        let Some(segs) = self.segments.get_mut(&sock.sk) else {
            return;
        };
        let taken = &mut self.taken;
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
            taken.push(Taken {
                journey: seg.journey,
                bytes: n,
                what: TakenKind::Bytes,
                done: upto == seg.end,
            });
            upto != seg.end
        });
        if segs.is_empty() {
            self.segments.remove(&sock.sk);
        }
    }

    /// Journey `id` finished: it no longer waits on the sockets it waited on.
    pub fn forget(&mut self, id: u64, waits_on: &[u64]) {
        // Only the lists of the sockets it waited on can name it.
        for sk in waits_on {
            if self.accepts.get(sk) == Some(&id) {
                self.accepts.remove(sk);
            }
            if self.fins.get(sk) == Some(&id) {
                self.fins.remove(sk);
            }
            if self.resets.get(sk) == Some(&id) {
                self.resets.remove(sk);
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
    }
}

impl Assembler {
    /// A packet of journey `id` reached socket `sock`.
    pub(super) fn delivered(&mut self, id: u64, sock: &Socket) {
        if let Some(o) = self.journeys.get_mut(id) {
            self.reads.delivered(o, sock.sk);
        }
    }

    /// sock_recv_length in a reader's context. For TCP, copied_seq says how far the stream has
    /// been consumed, which names the segments this read took bytes from. A UDP read takes the
    /// oldest datagram queued on the socket (the kernel copies small datagrams with
    /// copy_linear_skb(), which has no tracepoint naming the packet).
    ///
    /// The read's system call (`call`) is told in the journeys of the packets it read, not on a
    /// line of its own: a stream of reads would double the output.
    pub(super) fn recv(&mut self, read: Read<'_>) {
        let Read {
            meta,
            comm,
            sock,
            ret,
            flags,
            copied_seq,
            call,
        } = read;
        self.reads.take(meta.tid, sock, ret, flags, copied_seq);
        let taken = std::mem::take(&mut self.reads.taken);
        for t in &taken {
            let r = ReadObs {
                ts: meta.ts_ns,
                pid: meta.pid,
                comm: comm.to_owned(),
                bytes: t.bytes,
                syscall: call.map(|c| c.kind.name()),
                fd: call.map(|c| c.fd),
            };
            let obs = match t.what {
                TakenKind::Bytes => Obs::Read(r),
                TakenKind::Eof => Obs::Eof(r),
                TakenKind::Failed(errno) => Obs::ReadFailed { r, errno },
            };
            self.push_read(t.journey, obs);
            if t.done {
                if let Some(o) = self.journeys.get_mut(t.journey) {
                    o.awaiting = false;
                }
            }
        }
        self.reads.taken = taken;
    }

    /// accept() returned `child` as fd `fd` at `ts`: the connection the packet that created it
    /// made was accepted.
    pub(super) fn accepted(&mut self, child: u64, r: ReadObs) {
        let Some(id) = self.reads.accepted(child) else {
            return;
        };
        let ts = r.ts;
        if let Some(o) = self.journeys.get_mut(id) {
            o.awaiting = false;
            o.last = o.last.max(ts);
            o.obs.push(Obs::Accepted(r));
        } else {
            self.late(id, &Obs::Accepted(r));
        }
    }

    fn push_read(&mut self, id: u64, obs: Obs) {
        let Some(o) = self.journeys.get_mut(id) else {
            self.late(id, &obs);
            return;
        };
        let ts = match &obs {
            Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) | Obs::ReadFailed { r, .. } => r.ts,
            _ => o.last,
        };
        o.last = o.last.max(ts);
        o.obs.push(obs);
    }

    /// Something happened to a journey already printed: a line of its own.
    fn late(&mut self, id: u64, obs: &Obs) {
        let (Obs::Read(r) | Obs::Eof(r) | Obs::Accepted(r) | Obs::ReadFailed { r, .. }) = obs
        else {
            return;
        };
        if self.journeys.is_hidden(id) {
            return;
        }
        let what = match obs {
            Obs::Read(_) => format!("{} bytes of it read", r.bytes),
            Obs::Eof(_) => "end of file read".to_string(),
            Obs::ReadFailed { errno, .. } => {
                format!("a read failed with {}", super::names::errno(*errno as i64))
            }
            _ => "accepted".to_string(),
        };
        let wall = self.clock.wall_ns(r.ts);
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
}

/// A read as sock_recv_length reported it.
pub(super) struct Read<'a> {
    pub meta: &'a Meta,
    pub comm: &'a str,
    pub sock: &'a Socket,
    pub ret: i32,
    pub flags: i32,
    pub copied_seq: u32,
    pub call: Option<&'a Call>,
}
