//! Which packet an event that names none belongs to: a socket event in the NET_RX softirq
//! belongs to a packet the CPU was processing, one outside it to a packet processed from the
//! socket's backlog by its owner's system call, when the addresses and ports fit.

use sockpath_ebpf::event::TcpState;

use super::{open::Open, sockets::fits, Assembler};
use crate::decode::{Meta, Socket};

/// How many of the latest open journeys an event that names no journey is tried against. The
/// packet it belongs to is among the last few the CPU received (a NAPI batch is at most 64; a
/// socket's backlog is processed when its owner releases it), far fewer than this.
const ATTRIBUTE_WINDOW: usize = 1024;

/// TCP transitions only a system call makes: connect(), listen(), close()/shutdown().
fn syscall_driven(from: TcpState, to: TcpState) -> bool {
    use TcpState::*;
    matches!(
        (from, to),
        (Close, SynSent)
            | (Close, Listen)
            | (Established, FinWait1)
            | (CloseWait, LastAck)
            | (Listen, Close)
    )
}

impl Assembler {
    /// The journey a socket-only event in NET_RX belongs to: the packet the CPU was processing,
    /// if its addresses fit the socket; else the latest open packet on that CPU that fits (the
    /// kernel may have received a batch before processing each).
    pub(super) fn attribute(&self, hint: u64, cpu: u16, ts: u64, s: &Socket) -> Option<u64> {
        let fit = |o: &Open| o.headers.as_ref().is_some_and(|h| fits(h, s));
        if let Some(o) = self.journeys.get(hint) {
            if fit(o) {
                return Some(hint);
            }
        }
        self.journeys
            .latest_before(ts, ATTRIBUTE_WINDOW)
            .find(|o| o.cpu == cpu && fit(o))
            .map(|o| o.kernel_id)
    }

    /// The journey a socket event outside softirq belongs to, if a packet caused it: the socket
    /// was locked by its owner when the packet arrived, so the packet waited in the socket's
    /// backlog and release_sock() processed it in the owner's system call. State changes only
    /// a system call makes (connect, listen, close) are never a packet's.
    pub(super) fn attribute_process(
        &self,
        meta: &Meta,
        s: &Socket,
        change: Option<(TcpState, TcpState)>,
    ) -> Option<u64> {
        if change.is_some_and(|(from, to)| syscall_driven(from, to)) {
            return None;
        }
        let ts = meta.ts_ns;
        let fit = |o: &Open| o.t0 <= ts && o.headers.as_ref().is_some_and(|h| fits(h, s));
        if let Some(id) = self.reads.backlog_of(meta.tid, s.sk) {
            if self.journeys.get(id).is_some_and(fit) {
                return Some(id);
            }
        }
        self.journeys
            .latest_before(ts, ATTRIBUTE_WINDOW)
            .find(|o| fit(o))
            .map(|o| o.kernel_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers the kernel uses, as the transitions were first written down.
    #[test]
    fn syscall_driven_transitions_are_the_kernels() {
        let n = |s: TcpState| s as u8;
        let driven: Vec<(u8, u8)> = TcpState::ALL
            .iter()
            .flat_map(|&a| TcpState::ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| syscall_driven(a, b))
            .map(|(a, b)| (n(a), n(b)))
            .collect();
        assert_eq!(driven, [(1, 4), (7, 2), (7, 10), (8, 9), (10, 7)]);
    }
}
