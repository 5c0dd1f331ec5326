//! JSON Lines: one object per journey, syscall and note, a start object and a summary object.
//! The schema is documented in the README.

use std::io::Write;

use serde::Serialize;

use super::{Sink, StartInfo};
use crate::journey::model::{Item, Summary};

pub struct JsonSink<W: Write> {
    out: W,
    /// Reused for every line.
    buf: Vec<u8>,
}

impl<W: Write> JsonSink<W> {
    /// The writer, with what was written.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn new(out: W) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Where the lines go.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// `{"type":KIND,` then the object's own fields: serialized once, straight into a buffer
    /// (no intermediate JSON value; this runs for every packet).
    fn line<T: Serialize>(&mut self, kind: &str, v: &T) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, v).map_err(std::io::Error::other)?;
        self.typed(kind)
    }

    /// Writes the object in `buf` with `"type":KIND` as its first field.
    fn typed(&mut self, kind: &str) -> std::io::Result<()> {
        let Some(fields) = self.buf.strip_prefix(b"{") else {
            return Err(std::io::Error::other("not a JSON object"));
        };
        write!(self.out, "{{\"type\":\"{kind}\"")?;
        if fields != b"}" {
            self.out.write_all(b",")?;
        }
        self.out.write_all(fields)?;
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
            Item::Journey(j) => {
                self.buf.clear();
                super::journey_json::write(&mut self.buf, j);
                self.typed("journey")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct T {
        a: u32,
    }

    #[derive(Serialize)]
    struct E {}

    #[test]
    fn type_comes_first_and_lines_are_valid_json() {
        let mut sink = JsonSink::new(Vec::new());
        sink.line("x", &T { a: 1 }).unwrap();
        sink.line("y", &E {}).unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert_eq!(text, "{\"type\":\"x\",\"a\":1}\n{\"type\":\"y\"}\n");
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }
}
