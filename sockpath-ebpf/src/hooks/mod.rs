//! One file per kind of hook. Each program is a thin entry that calls a shared function; the
//! kernel prototype it relies on is written above it. Where a stage can be served several ways
//! (fentry/fexit, kprobe/kretprobe, tracepoint), each way is its own program and user space's
//! probe registry loads the first the running kernel accepts.

mod device;
mod fib;
mod hops;
mod lookup;
mod skb;
mod socket;
mod socket_fn;
mod softirq;
mod syscalls;
mod xmit;
