//! The kernel's per-port statistics as user space keeps them (`model`: totals summed over CPUs,
//! differences between readings, percentiles of the log2 histograms) and in words per port
//! (`view`), and as the daemon's API carries them (`wire`). `sockpath stats`, the daemon's
//! `stats` and `count` requests and the metrics all read them.

pub mod model;
pub mod view;
pub mod wire;

pub use view::Counted;
