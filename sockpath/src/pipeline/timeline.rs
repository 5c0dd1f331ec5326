//! Puts journeys and syscalls in time order before they are printed.
//!
//! A journey is known only when it is finished, after later syscalls already arrived; items
//! wait here until nothing older can still come (no open journey started before them and a
//! settling delay passed), then leave oldest first.

use std::{cmp::Reverse, collections::BinaryHeap};

use crate::journey::model::Item;

struct Entry {
    ts: u64,
    seq: u64,
    item: Item,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.seq) == (o.ts, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(o.ts, o.seq))
    }
}

#[derive(Default)]
pub struct Timeline {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Timeline {
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn push(&mut self, item: Item) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            ts: item.ts_ns(),
            seq: self.seq,
            item,
        }));
    }

    /// The oldest items beyond `cap`: waiting for a journey still open must not grow memory
    /// without bound under load (such items may then come out a little early).
    /// Taken one at a time as the caller writes them out: no vector of thousands per call.
    pub fn overflow(&mut self, cap: usize) -> impl Iterator<Item = Item> + '_ {
        std::iter::from_fn(move || {
            if self.heap.len() > cap {
                self.heap.pop().map(|Reverse(e)| e.item)
            } else {
                None
            }
        })
    }

    /// Items at or before `watermark` (wall-clock ns), oldest first.
    pub fn release(&mut self, watermark: u64) -> impl Iterator<Item = Item> + '_ {
        std::iter::from_fn(move || {
            if self.heap.peek().is_some_and(|Reverse(e)| e.ts <= watermark) {
                self.heap.pop().map(|Reverse(e)| e.item)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::model::Note;

    fn note(ts: u64) -> Item {
        Item::Note(Note {
            ts_ns: ts,
            ts: crate::journey::model::Timestamp(ts),
            kind: "t".into(),
            text: ts.to_string(),
        })
    }

    #[test]
    fn releases_in_time_order_up_to_the_watermark() {
        let mut t = Timeline::default();
        for ts in [30, 10, 20, 40] {
            t.push(note(ts));
        }
        let out: Vec<u64> = t.release(30).map(|i| i.ts_ns()).collect();
        assert_eq!(out, vec![10, 20, 30]);
        assert_eq!(t.heap.len(), 1);
        assert_eq!(t.release(u64::MAX).count(), 1);
    }
}
