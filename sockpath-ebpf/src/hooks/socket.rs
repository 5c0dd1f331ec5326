//! Socket-side hooks: the socket a packet reached, what the socket did with it, and its readers.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use sockpath_ebpf::{
    event::{reset_error, CallInfo, EventKind, SockEvent, SockInfo, SockWhat, SyscallKind},
    filter::sock_matches,
    net::IPPROTO_TCP,
};

use crate::{
    emit,
    kernel::{offsets, read, read_ptr, skb::tracked_followed, sock},
    maps::{SYSCALL_KINDS, WATCHED_TGIDS},
    tally, watched,
};

/// `TP_PROTO(const struct sk_buff *skb, int len)`: skb_copy_datagram_iter(), in the reader's
/// context, for each sk_buff whose data a recvmsg (UDP, TCP) copies out. Attached for the
/// statistics only: it names the packet a read took, which sock_recv_length does not.
#[btf_tracepoint(function = "skb_copy_datagram_iovec")]
pub fn skb_copy_datagram_iovec(ctx: BtfTracePointContext) -> i32 {
    tally::copied(ctx.arg(0));
    0
}

/// Fills the common part of a socket event in place.
#[inline(always)]
fn fill(ev: &mut SockEvent, what: SockWhat, flags: u16, journey: u64) {
    ev.header = emit::header(
        EventKind::Sock,
        core::mem::size_of::<SockEvent>(),
        flags,
        journey,
    );
    ev.what = what as u16;
    ev._pad = 0;
    ev.arg0 = 0;
    ev.arg1 = 0;
    ev.arg2 = 0;
    ev.skb = 0;
    ev.comm = emit::comm();
    ev.call = CallInfo::default();
    // SAFETY: `other` is plain bytes; zero is a valid SockInfo.
    unsafe { core::ptr::write_bytes(&mut ev.other as *mut SockInfo, 0, 1) };
}

/// Sends a socket event for `sk` if it passes the filter; `more` completes it. The event is
/// tagged with the packet the CPU is processing when in NET_RX.
#[inline(always)]
pub(crate) fn sock_event(sk: u64, what: SockWhat, more: impl FnOnce(&mut SockEvent)) {
    if emit::softirq_unwatched() {
        return;
    }
    if matches!(what, SockWhat::DataReady) {
        tally::queued(sk);
    }
    if !tally::journeys() || emit::softirq_sampled_out() {
        return;
    }
    let o = offsets();
    let f = watched::get();
    if !sock::ports_match(sk, &f, o) {
        return;
    }
    let Some(mut entry) = emit::reserve::<SockEvent>() else {
        return;
    };
    // SAFETY: reserved memory of the right size; every field is written below.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    sock::info_into(&mut ev.sock, sk, o);
    if !sock_matches(&f, &ev.sock) {
        entry.discard(emit::RB_FLAGS);
        return;
    }
    let (flags, journey) = emit::current_journey();
    fill(ev, what, flags, journey);
    more(ev);
    entry.submit(emit::RB_FLAGS);
}

/// `TP_PROTO(const struct sock *sk)`: sock_def_readable() and friends, after a packet was queued
/// to the socket's receive queue (or a connection to a listener's accept queue).
#[btf_tracepoint(function = "sk_data_ready")]
pub fn sk_data_ready(ctx: BtfTracePointContext) -> i32 {
    sock_event(ctx.arg(0), SockWhat::DataReady, |_| {});
    0
}

/// `TP_PROTO(const struct sock *sk, const int oldstate, const int newstate)`
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    sock_event(ctx.arg(0), SockWhat::StateChange, |ev| {
        ev.arg0 = ctx.arg(1);
        ev.arg1 = ctx.arg(2);
    });
    0
}

/// `TP_PROTO(struct sock *sk, const struct sk_buff *skb)`, at the top of tcp_rcv_established():
/// names both the packet and the established socket the lookup found for it.
#[btf_tracepoint(function = "tcp_probe")]
pub fn tcp_probe(ctx: BtfTracePointContext) -> i32 {
    if !tally::journeys() || emit::softirq_unwatched() {
        return 0;
    }
    let o = offsets();
    let skb: u64 = ctx.arg(1);
    let Some(journey) = tracked_followed(skb, o) else {
        return 0;
    };
    let sk: u64 = ctx.arg(0);
    let Some(mut entry) = emit::reserve::<SockEvent>() else {
        return 0;
    };
    // SAFETY: reserved memory; every field is written.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    let (flags, _) = emit::current_journey();
    fill(ev, SockWhat::TcpRcv, flags, journey);
    sock::info_into(&mut ev.sock, sk, o);
    ev.skb = skb;
    entry.submit(emit::RB_FLAGS);
    0
}

/// `TP_PROTO(struct sock *sk)`: tcp_reset() accepted a RST on this socket.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    sock_event(ctx.arg(0), SockWhat::ReceiveReset, |_| {});
    0
}

/// tcp_receive_reset on kernels without inet_sk_error_report (before 5.14): the same event as
/// `tcp_receive_reset`, for the hook that pairs it with `tcp_reset_error`.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset_alone(ctx: BtfTracePointContext) -> i32 {
    sock_event(ctx.arg(0), SockWhat::ReceiveReset, |_| {});
    0
}

/// tcp_receive_reset again, for the error the reset reports to the socket's user: kernels
/// before 5.14 fire it at the top of tcp_reset(), which then sets sk_err from the socket's
/// state and reports it unless the socket is orphaned (see `reset_error`).
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_reset_error(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let o = offsets();
    let state = read::<u8>(sk, o.skc_state).unwrap_or(0);
    if let Some(err) = reset_error(state) {
        if !sock::dead(sk, o) {
            sock_event(sk, SockWhat::ErrorReport, |ev| ev.arg0 = err);
        }
    }
    0
}

/// `TP_PROTO(const struct sock *sk)`: an error (sk->sk_err) is reported to the socket's user,
/// e.g. ECONNREFUSED to a connect() after a RST.
#[btf_tracepoint(function = "inet_sk_error_report")]
pub fn inet_sk_error_report(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    sock_event(sk, SockWhat::ErrorReport, |ev| {
        ev.arg0 = sock::sk_err(sk, offsets());
    });
    0
}

/// `TP_PROTO(struct sock *sk, int ret, int flags)`: at the end of sock_recvmsg(), in the reader's
/// context, whatever the system call (read, recvfrom, recvmsg, io_uring).
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    received::<false>(ctx.arg(0), ctx.arg(1), ctx.arg(2));
    0
}

/// A reader took `ret` bytes (or got an error) from `sk`. The user registers it entered the
/// kernel with come from the top of its kernel stack if `FROM_STACK`, else from
/// bpf_task_pt_regs: a constant, so a program has only the way it uses (a kernel without the
/// helper refuses a program that calls it, reached or not). Not a closure: the BTF bpf-linker
/// writes for a closure capturing a function is one the kernel refuses.
#[inline(always)]
pub(crate) fn received<const FROM_STACK: bool>(sk: u64, ret: i32, flags: i32) {
    if tally::received(sk, ret, flags) {
        // The read of a UDP datagram that was not followed (`watch --sample N`).
        return;
    }
    sock_event(sk, SockWhat::Recv, |ev| {
        ev.arg0 = ret;
        ev.arg1 = flags;
        if ev.sock.protocol == IPPROTO_TCP as u16 {
            ev.arg2 = sock::tcp_copied_seq(sk, offsets());
        }
        ev.call = current_call(if FROM_STACK {
            stack_regs()
        } else {
            task_regs()
        });
        watch_current();
    });
}

/// The current task's saved user registers, by the helper (5.15 and later).
#[inline(always)]
pub(crate) fn task_regs() -> u64 {
    // SAFETY: helpers for tracing programs; the task pointer is the current one.
    unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as u64 }
}

/// x86-64 `struct pt_regs`: its size, and the code segment (`cs`, at 136) of a task that
/// entered the kernel from user space (`__USER_CS`).
const PT_REGS_SIZE: u64 = 168;
const PT_REGS_CS: u32 = 136;
const USER_CS: u64 = 0x33;
/// x86-64 kernel stacks: 16 KiB (THREAD_SIZE), 32 KiB with KASAN.
const THREAD_SIZES: [u64; 2] = [16 << 10, 32 << 10];

/// The current task's saved user registers where bpf_task_pt_regs is missing (before 5.15):
/// where that helper finds them, at the top of the task's kernel stack (x86-64's
/// task_pt_regs(): stack + THREAD_SIZE - sizeof(struct pt_regs), no padding on x86-64). The
/// stack size is a build option, so each size is tried and kept only if the code segment
/// found there is user space's.
#[inline(always)]
pub(crate) fn stack_regs() -> u64 {
    // SAFETY: helper without preconditions.
    let task = unsafe { bpf_get_current_task() };
    let Ok(stack) = read_ptr(task, offsets().task_stack) else {
        return 0;
    };
    for size in THREAD_SIZES {
        let regs = stack + size - PT_REGS_SIZE;
        if read::<u64>(regs, PT_REGS_CS) == Ok(USER_CS) {
            return regs;
        }
    }
    0
}

/// The system call the current thread is in, from the registers it entered the kernel with
/// (`regs`, 0 when not found): which read-family call, its fd and byte count. Read this way
/// rather than from the syscalls' own tracepoints, which would run for every read() on the
/// machine, files and pipes included. A read not made by a followed system call (io_uring)
/// gets no call.
#[inline(always)]
fn current_call(regs: u64) -> CallInfo {
    let mut call = CallInfo::default();
    if regs == 0 {
        return call;
    }
    // x86-64 struct pt_regs: dx at 96, si at 104, di at 112, orig_ax (the syscall number)
    // at 120. The first argument is in di, the third in dx.
    let Ok(r) = read::<[u64; 4]>(regs, 96) else {
        return call;
    };
    let (dx, di, nr) = (r[0], r[2], r[3]);
    let Some(kind) = SYSCALL_KINDS
        .get(nr as u32)
        .and_then(|k| SyscallKind::from_u8(*k))
        .filter(|k| k.is_read())
    else {
        return call;
    };
    call.kind = kind as u8;
    call.fd = di as i32;
    // recvmsg's third argument is its flags; the byte count is in the msghdr.
    if kind != SyscallKind::Recvmsg {
        call.count = dx;
    }
    call
}

/// `TP_PROTO(struct sock *sk)`: the TCP socket is being freed.
#[btf_tracepoint(function = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: BtfTracePointContext) -> i32 {
    sock_event(ctx.arg(0), SockWhat::Destroy, |_| {});
    0
}

/// A process that reads or writes a watched socket is one whose system calls are followed.
#[inline(always)]
pub fn watch_current() {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if WATCHED_TGIDS.get_ptr(tgid).is_none() {
        let _ = WATCHED_TGIDS.insert(tgid, 1u8, 0);
    }
}
