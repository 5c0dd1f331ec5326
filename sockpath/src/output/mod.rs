//! Where journeys and syscalls go: human text or JSON Lines on stdout, in time order, and
//! optionally a pcapng file with each packet's journey as its comments. Every output tells a
//! stage or an outcome in the same words, from `words`.

pub mod comment;
pub mod journey_json;
pub mod json;
pub mod pcapng;
pub mod text;
pub mod words;

pub use crate::journey::model::StartInfo;
use crate::journey::model::{Item, Summary};

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
