//! Where journeys and syscalls go: human text or JSON Lines on stdout, in time order, and
//! optionally a pcapng file with each packet's journey as its comments.

pub mod comment;
pub mod journey_json;
pub mod json;
pub mod pcapng;
pub mod text;

use serde::Serialize;

use crate::journey::model::{Item, Summary};

/// What sockpath says when every hook is attached.
#[derive(Clone, Debug, Serialize)]
pub struct StartInfo {
    pub filter: String,
    pub kernel: String,
    /// Milliseconds from start to every probe attached.
    pub attach_ms: f64,
    /// One line per journey stage: the hook serving it on this kernel.
    pub hooks: Vec<String>,
}

pub trait Sink {
    fn start(&mut self, info: &StartInfo) -> std::io::Result<()>;
    fn item(&mut self, item: &Item) -> std::io::Result<()>;
    fn summary(&mut self, s: &Summary) -> std::io::Result<()>;
    /// Pushes out what is buffered; called after each batch of items (every tick), so output
    /// is live without a write per line.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
