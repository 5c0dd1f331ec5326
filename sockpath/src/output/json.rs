//! JSON Lines: one object per journey, syscall and note, a start object and a summary object.
//! The schema is documented in the README.

use std::io::Write;

use serde::Serialize;
use serde_json::json;

use super::{Sink, StartInfo};
use crate::journey::model::{Item, Summary};

pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    fn line<T: Serialize>(&mut self, kind: &str, v: &T) -> std::io::Result<()> {
        let mut obj = serde_json::to_value(v).map_err(std::io::Error::other)?;
        if let Some(map) = obj.as_object_mut() {
            map.insert("type".into(), json!(kind));
        }
        serde_json::to_writer(&mut self.out, &obj).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn start(&mut self, info: &StartInfo) -> std::io::Result<()> {
        self.line("start", info)?;
        self.out.flush()
    }

    fn item(&mut self, item: &Item) -> std::io::Result<()> {
        match item {
            Item::Journey(j) => self.line("journey", j),
            Item::Syscall(s) => self.line("syscall", s),
            Item::Note(n) => self.line("note", n),
        }
    }

    fn summary(&mut self, s: &Summary) -> std::io::Result<()> {
        self.line("summary", s)?;
        self.out.flush()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
