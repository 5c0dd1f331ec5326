//! A watcher's output: the lines `watch --json` prints, written by the same JSON sink, each
//! item offered to the watcher's queue (dropped and counted when it is full), the start and
//! the summary always kept.

use std::{fmt::Write as _, sync::Arc};

use super::queue::ClientQueue;
use crate::{
    api::Reply,
    journey::model::{Item, Summary},
    output::{json::JsonSink, Sink, StartInfo},
};

pub struct QueueSink {
    json: JsonSink<Vec<u8>>,
    queue: Arc<ClientQueue>,
    /// Each journey's frame goes after it (for the client's pcapng).
    frames: bool,
}

impl QueueSink {
    pub fn new(queue: Arc<ClientQueue>, frames: bool) -> Self {
        Self {
            json: JsonSink::new(Vec::with_capacity(4096)),
            queue,
            frames,
        }
    }

    /// The lines written since the last call (moved out, not copied: they go to the queue).
    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(self.json.get_mut(), Vec::with_capacity(4096))
    }
}

/// `{"type":"frame",..}`: the journey's bytes from the link-layer header on, in hex.
fn frame_line(frame: &[u8], mac_len: u16) -> Vec<u8> {
    let mut data = String::with_capacity(frame.len() * 2);
    for b in frame {
        let _ = write!(data, "{b:02x}");
    }
    Reply::Frame { mac_len, data }.line()
}

impl Sink for QueueSink {
    fn start(&mut self, info: &StartInfo) -> std::io::Result<()> {
        self.json.start(info)?;
        let lines = self.take();
        self.queue.force(lines);
        Ok(())
    }

    fn item(&mut self, item: &Item) -> std::io::Result<()> {
        self.json.item(item)?;
        let mut lines = self.take();
        if let (true, Item::Journey(j)) = (self.frames, item) {
            lines.extend_from_slice(&frame_line(&j.frame, j.mac_len));
        }
        // A full queue counts the item as missed; the engine goes on.
        self.queue.offer(lines);
        Ok(())
    }

    fn summary(&mut self, s: &Summary) -> std::io::Result<()> {
        self.json.summary(s)?;
        let lines = self.take();
        self.queue.force(lines);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_hex_with_their_link_header_length() {
        assert_eq!(
            frame_line(&[0x45, 0x00, 0xff], 14),
            b"{\"type\":\"frame\",\"mac_len\":14,\"data\":\"4500ff\"}\n"
        );
    }
}
