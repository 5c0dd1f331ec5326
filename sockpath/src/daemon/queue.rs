//! Each client's own bounded queue, between the engine, which never waits for a client, and the
//! connection's writer, which waits for the client to read.
//!
//! The engine offers every item; one that does not fit is counted, not kept, and the count goes
//! into the queue as a `missed` entry just before the next item that fits, so the client learns
//! where the gap is and how many items it lost. A client that stops reading therefore costs the
//! daemon at most the bound (plus the batch its writer holds), and slows nobody.

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
};

use tokio::sync::Notify;

/// What the writer sends.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// One item as complete JSON lines (a journey and, if asked for, its frame).
    Lines(Vec<u8>),
    /// This many items were dropped here.
    Missed(u64),
}

#[derive(Default)]
struct State {
    entries: VecDeque<Entry>,
    /// Bytes of the `Lines` entries queued.
    bytes: usize,
    /// Items dropped since the last entry that was kept.
    pending_missed: u64,
    missed_total: u64,
    closed: bool,
}

impl State {
    fn push(&mut self, lines: Vec<u8>) {
        if self.pending_missed > 0 {
            self.entries
                .push_back(Entry::Missed(std::mem::take(&mut self.pending_missed)));
        }
        self.bytes += lines.len();
        self.entries.push_back(Entry::Lines(lines));
    }
}

pub struct ClientQueue {
    limit: usize,
    state: Mutex<State>,
    ready: Notify,
}

impl ClientQueue {
    /// A queue that holds at most `limit` bytes of items.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            state: Mutex::default(),
            ready: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an item if it fits, else counts it as missed. Never waits. False when dropped.
    pub fn offer(&self, lines: Vec<u8>) -> bool {
        let mut s = self.state();
        if s.closed {
            return false;
        }
        if s.bytes + lines.len() > self.limit {
            s.pending_missed += 1;
            s.missed_total += 1;
            return false;
        }
        s.push(lines);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// Queues what must not be lost (the start, the summary, an error), whatever the bound:
    /// one line each, at most a few per client.
    pub fn force(&self, lines: Vec<u8>) {
        let mut s = self.state();
        if s.closed {
            return;
        }
        s.push(lines);
        drop(s);
        self.ready.notify_one();
    }

    /// Nothing more will be queued: the writer ends once it has sent what is queued (with the
    /// count of items missed at the end, if any).
    pub fn close(&self) {
        let mut s = self.state();
        if s.pending_missed > 0 {
            let n = std::mem::take(&mut s.pending_missed);
            s.entries.push_back(Entry::Missed(n));
        }
        s.closed = true;
        drop(s);
        self.ready.notify_one();
    }

    /// Everything queued, once there is something; None once closed and emptied.
    pub async fn take(&self) -> Option<Vec<Entry>> {
        loop {
            {
                let mut s = self.state();
                if !s.entries.is_empty() {
                    s.bytes = 0;
                    return Some(s.entries.drain(..).collect());
                }
                if s.closed {
                    return None;
                }
            }
            // A notification sent between the check and here is kept (notify_one stores a
            // permit), so none is missed.
            self.ready.notified().await;
        }
    }

    /// Items dropped so far.
    pub fn missed(&self) -> u64 {
        self.state().missed_total
    }

    /// Bytes queued now.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.state().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<u8> {
        let mut v = vec![b'x'; n - 1];
        v.push(b'\n');
        v
    }

    fn take_now(q: &ClientQueue) -> Option<Vec<Entry>> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(50), q.take())
                    .await
                    .ok()
                    .flatten()
            })
    }

    #[test]
    fn overflow_is_counted_and_told_before_the_next_item() {
        let q = ClientQueue::new(100);
        assert!(q.offer(line(60)));
        assert!(!q.offer(line(60)), "over the bound");
        assert!(!q.offer(line(50)));
        assert!(q.offer(line(40)), "fits beside the first");
        assert_eq!(q.missed(), 2);
        let got = take_now(&q).unwrap();
        assert_eq!(
            got,
            vec![
                Entry::Lines(line(60)),
                Entry::Missed(2),
                Entry::Lines(line(40))
            ]
        );
        // Taken out, the bytes no longer count against the bound.
        assert_eq!(q.queued_bytes(), 0);
        assert!(q.offer(line(100)));
    }

    #[test]
    fn forced_lines_pass_the_bound_and_carry_the_count() {
        let q = ClientQueue::new(10);
        assert!(!q.offer(line(20)));
        q.force(line(30));
        assert_eq!(
            take_now(&q).unwrap(),
            vec![Entry::Missed(1), Entry::Lines(line(30))]
        );
    }

    #[test]
    fn close_tells_the_last_misses_then_ends() {
        let q = ClientQueue::new(10);
        assert!(q.offer(line(5)));
        assert!(!q.offer(line(20)));
        q.close();
        assert!(!q.offer(line(1)), "nothing after close");
        assert_eq!(
            take_now(&q).unwrap(),
            vec![Entry::Lines(line(5)), Entry::Missed(1)]
        );
        assert_eq!(take_now(&q), None);
    }

    #[test]
    fn a_waiting_writer_wakes_for_an_item() {
        let q = std::sync::Arc::new(ClientQueue::new(100));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let q2 = q.clone();
            let waiter = tokio::spawn(async move { q2.take().await });
            tokio::task::yield_now().await;
            q.offer(line(3));
            waiter.await.unwrap()
        });
        assert_eq!(got, Some(vec![Entry::Lines(line(3))]));
    }
}
