//! Connect pairing: a blocking connect() returns when the SYN-ACK (or a RST) arrives, so the
//! call is told in the journey of the answer and of the SYN it sent.

use sockpath_ebpf::event::TcpState;

use super::{
    obs::{Obs, ReadObs},
    Assembler,
};
use crate::decode::SyscallEv;

impl Assembler {
    /// connect() returned: the packet whose journey changed the socket from SYN_SENT while the
    /// call was in progress is the answer it got.
    pub(super) fn connect_returned(&mut self, s: &SyscallEv) {
        let ts = s.meta.ts_ns;
        let syn_sent = TcpState::SynSent as u8;
        // The answer arrived while the call was in progress.
        let answered = self
            .journeys
            .started_within(s.enter_ns, ts)
            .find(|o| {
                o.obs.iter().any(|x| {
                    matches!(x, Obs::State { sock, from, ts: t, .. }
                        if *from == syn_sent && sock.sk == s.sock.sk && *t >= s.enter_ns && *t <= ts)
                })
            })
            .map(|o| (o.kernel_id, o.t0, o.headers.clone()));
        let Some((answer, answer_t0, answer_h)) = answered else {
            return;
        };
        // The SYN this connect() sent: the answer's addresses and ports the other way round.
        let syn = answer_h.and_then(|ah| {
            self.journeys
                .started_within(s.enter_ns, answer_t0)
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
            if let Some(o) = self.journeys.get_mut(id) {
                o.last = o.last.max(ts);
                o.obs.push(obs.clone());
            }
        }
    }
}
