//! sockpath: per-packet kernel journeys, from the network device to the socket and the process
//! that reads it.
//!
//! Layout: `hooks/` is the hook table (every eBPF program once, with its stage and fallbacks);
//! `kernel/` loads the eBPF programs (sockpath-ebpf), attaches the table and knows the running
//! kernel (BTF); `decode` turns ring-buffer records into events; `journey/` assembles events
//! into journeys and syscall records, whose data is the model in `journey/model/` (read back
//! from JSON by its `read`); `output/` prints them (text, JSON, pcapng), all in the words of
//! `output/words/`; `pipeline` takes records through all of these in time order; `watch` and
//! `demo` run sessions that feed it; `annotate` puts a journey log's journeys into a capture's
//! frames. `cli` lists the commands; each command's module owns its arguments.

/// The unit tests, the throughput benchmark among them, run on the allocator the binary uses.
#[cfg(test)]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod annotate;
mod api;
pub mod cli;
mod client;
mod counts;
pub mod daemon;
mod decode;
pub mod demo;
mod filter;
mod hooks;
mod journey;
mod kernel;
mod live;
mod memory;
mod metrics;
mod output;
mod packet;
mod pipeline;
pub mod probes_cmd;
mod procfs;
pub mod stats;
mod text;
#[cfg(test)]
mod throughput;
pub mod usage;
pub mod watch;
