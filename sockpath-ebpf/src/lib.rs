//! Types shared by sockpath's eBPF programs and its user-space agent.
//!
//! Every type here is `#[repr(C)]` with explicit padding fields, so the layout the kernel writes is
//! the layout user space decodes, byte for byte, and fixtures can be built without a kernel.
//! `filter` holds the filter's predicates, which both sides run. The eBPF programs themselves
//! live in `src/main.rs` and `src/hooks/` (feature `ebpf`, BPF target).
#![cfg_attr(not(test), no_std)]

pub mod config;
pub mod event;
pub mod filter;
pub mod net;
pub mod stats;
