//! One file per kernel hook. Each `#[btf_tracepoint]`/`#[tracepoint]` entry is thin and calls a
//! `try_*` function; the kernel prototype each relies on is written above it.

mod device;
mod fib;
mod skb;
mod socket;
mod softirq;
mod syscalls;
mod xmit;
