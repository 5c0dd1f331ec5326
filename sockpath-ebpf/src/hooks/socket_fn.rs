//! The socket-side stages through kernel functions, for kernels that have fentry/fexit or
//! kprobes (and those whose tracepoints lack them: sk_data_ready and sock_recv_length are recent
//! tracepoints).

use aya_ebpf::{
    macros::{fentry, fexit, kprobe},
    programs::{FEntryContext, FExitContext, ProbeContext},
};
use sockpath_ebpf::event::SockWhat;

use crate::{
    hooks::socket::{received, sock_event},
    kernel::{offsets, read_ptr},
};

/// `void sock_def_readable(struct sock *sk)`: the sk_data_ready callback of TCP and UDP sockets
/// (and listeners), called once a packet or a connection is queued.
#[fentry]
pub fn fentry_sock_def_readable(ctx: FEntryContext) -> u32 {
    sock_event(ctx.arg(0), SockWhat::DataReady, |_| {});
    0
}

#[kprobe]
pub fn kprobe_sock_def_readable(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        sock_event(sk, SockWhat::DataReady, |_| {});
    }
    0
}

/// The struct sock of a struct socket.
#[inline(always)]
fn sk_of(socket: u64) -> u64 {
    read_ptr(socket, offsets().socket_sk).unwrap_or(0)
}

/// `int inet_recvmsg(struct socket *sock, struct msghdr *msg, size_t size, int flags)`: the
/// recvmsg of every AF_INET TCP and UDP socket; its return is what the reader got.
#[fexit]
pub fn fexit_inet_recvmsg(ctx: FExitContext) -> u32 {
    if let Ok(ret) = ctx.ret::<i64>() {
        received::<false>(sk_of(ctx.arg(0)), ret as i32, ctx.arg(3));
    }
    0
}

/// `int inet6_recvmsg(struct socket *sock, struct msghdr *msg, size_t size, int flags)`
#[fexit]
pub fn fexit_inet6_recvmsg(ctx: FExitContext) -> u32 {
    if let Ok(ret) = ctx.ret::<i64>() {
        received::<false>(sk_of(ctx.arg(0)), ret as i32, ctx.arg(3));
    }
    0
}

/// inet_recvmsg() on kernels without bpf_get_func_ret (5.17) and bpf_task_pt_regs (5.15): the
/// return value is read where every fexit program finds it, after the function's four
/// arguments, and the reader's registers at the top of its kernel stack.
#[fexit]
pub fn fexit_inet_recvmsg_stack(ctx: FExitContext) -> u32 {
    let ret: i64 = ctx.arg(4);
    received::<true>(sk_of(ctx.arg(0)), ret as i32, ctx.arg(3));
    0
}

/// inet6_recvmsg() on the same kernels.
#[fexit]
pub fn fexit_inet6_recvmsg_stack(ctx: FExitContext) -> u32 {
    let ret: i64 = ctx.arg(4);
    received::<true>(sk_of(ctx.arg(0)), ret as i32, ctx.arg(3));
    0
}
