//! Lost events: when the ring buffer was full, and which journeys were alive then.

use std::collections::VecDeque;

use super::{
    model::{Item, Note, Timestamp},
    open::Open,
    Assembler,
};

/// How long a loss window is remembered after it closed.
const LOSS_MEMORY_NS: u64 = 10_000_000_000;

/// When events were lost: (previous check, check that counted losses], kernel clock, oldest
/// first. A journey alive during one may be missing events.
#[derive(Default)]
pub(crate) struct LossWindows {
    windows: VecDeque<(u64, u64)>,
    /// When the loss counter was last checked.
    checked: u64,
}

impl LossWindows {
    /// The loss counter, checked at `now`, grew by `n`: returns the previous check, since
    /// which events were lost, or None when none were.
    fn checked(&mut self, n: u64, now: u64) -> Option<u64> {
        let since = std::mem::replace(&mut self.checked, now);
        if n == 0 {
            return None;
        }
        match self.windows.back_mut() {
            // Losses at every check, as under a flood, make one window.
            Some(w) if w.1 >= since => w.1 = now,
            _ => self.windows.push_back((since, now)),
        }
        // A journey finishing now began at most a few seconds ago (the hold time, or the
        // reader's delay, is far shorter).
        let keep_after = now.saturating_sub(LOSS_MEMORY_NS);
        while self.windows.len() > 1 && self.windows.front().is_some_and(|w| w.1 < keep_after) {
            self.windows.pop_front();
        }
        Some(since)
    }

    /// Whether events were lost while something lived from `from` until `until`.
    fn touch(&self, from: u64, until: u64) -> bool {
        // Windows are disjoint and in time order: from the newest back to the first that
        // closed before it began.
        self.windows
            .iter()
            .rev()
            .take_while(|&&(_, end)| end >= from)
            .any(|&(start, _)| start < until)
    }
}

impl Assembler {
    /// The loss counter, checked at monotonic time `now`, grew by `n` (called at every check,
    /// `n` = 0 included): the events were lost since the previous check. Any journey alive in
    /// that window, even one read much later by a reader that is behind, may miss a stage and
    /// is marked incomplete when it finishes; one that ended before it is not.
    pub fn lost(&mut self, n: u64, now: u64) {
        let Some(since) = self.losses.checked(n, now) else {
            return;
        };
        self.summary.events_lost += n;
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
    pub(super) fn lived_through_loss(&self, o: &Open) -> bool {
        let end = if o.awaiting && !o.terminal() {
            self.ticked.max(self.newest)
        } else {
            o.last.saturating_add(self.cfg.settle_ns)
        };
        self.losses.touch(o.t0, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_at_consecutive_checks_make_one_window() {
        let mut w = LossWindows::default();
        assert_eq!(w.checked(0, 10), None);
        assert_eq!(w.checked(2, 20), Some(10));
        assert_eq!(w.checked(1, 30), Some(20));
        assert_eq!(w.checked(0, 40), None);
        assert_eq!(w.checked(1, 50), Some(40));
        assert_eq!(w.windows, [(10, 30), (40, 50)]);
        assert!(w.touch(0, 11));
        assert!(!w.touch(0, 10), "ended when the window opened");
        assert!(!w.touch(31, 40), "between the windows");
        assert!(w.touch(45, 46));
    }
}
