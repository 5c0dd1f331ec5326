//! Types shared by sockpath's eBPF programs and its user-space agent.
//!
//! Every type here is `#[repr(C)]` with explicit padding fields, so the layout the kernel writes is
//! the layout user space decodes, byte for byte, and fixtures can be built without a kernel.
//! The eBPF programs themselves live in `src/main.rs` and `src/hooks/` (feature `ebpf`, BPF target).
#![no_std]

pub mod config;
pub mod event;
