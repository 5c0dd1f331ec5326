//! Socket system calls of watched processes, as strace shows them: arguments at entry, return
//! value at exit.
//!
//! Read-family calls are not hooked here: they are among the most frequent calls on any machine,
//! and the read hooks find the call a read came from in the reader's registers.
//!
//! One program serves every syscalls/sys_enter_* tracepoint it is attached to (and one every
//! sys_exit_*): their records share a layout (`__syscall_nr` at 8, then six u64 arguments at 16;
//! the exit record has `ret` at 16), and the syscall number says which call it is.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sockpath_ebpf::{
    config::KernelOffsets,
    event::{EventKind, SockAddrRaw, SockInfo, SyscallEvent, SyscallKind},
    filter::{ports_match, sock_matches, sock_undecided, FilterSet},
    net::{AF_INET, AF_INET6},
};

use crate::{
    emit,
    hooks::socket::watch_current,
    kernel::{offsets, sock, task::fd_to_sock},
    maps::{PENDING_SYSCALLS, SYSCALL_KINDS, SYSCALL_ZERO, WATCHED_TGIDS},
    tally,
    watched::{self, Watched},
};

#[inline(always)]
fn kind_of(ctx: &TracePointContext) -> Option<SyscallKind> {
    // SAFETY: `__syscall_nr` is at offset 8 of every syscall tracepoint record.
    let nr: i32 = unsafe { ctx.read_at::<i32>(8) }.ok()?;
    if nr < 0 {
        return None;
    }
    let kind = *SYSCALL_KINDS.get(nr as u32)?;
    SyscallKind::from_u8(kind)
}

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: six u64 arguments follow `__syscall_nr` (and its padding) from offset 16.
    unsafe { ctx.read_at::<u64>(16 + 8 * n) }.unwrap_or(0)
}

/// Reads a sockaddr_in / sockaddr_in6 from the caller's memory.
#[inline(always)]
fn read_sockaddr(ptr: u64, len: u64) -> SockAddrRaw {
    let mut a = SockAddrRaw::default();
    if ptr == 0 || len < 8 {
        return a;
    }
    // SAFETY: user memory read through the helper; failure leaves the fields zero.
    let Ok(head) = (unsafe { bpf_probe_read_user(ptr as *const [u8; 8]) }) else {
        return a;
    };
    a.family = u16::from_ne_bytes([head[0], head[1]]);
    a.port = u16::from_be_bytes([head[2], head[3]]);
    if a.family == AF_INET {
        a.addr[..4].copy_from_slice(&head[4..8]);
    } else if a.family == AF_INET6 && len >= 24 {
        // sockaddr_in6: family, port, flowinfo (4 bytes), then the address at offset 8.
        // SAFETY: bpf_probe_read_user checks the user address and fails instead of faulting.
        if let Ok(addr) = unsafe { bpf_probe_read_user((ptr + 8) as *const [u8; 16]) } {
            a.addr = addr;
        }
    }
    a
}

#[inline(always)]
fn is_inet(si: &SockInfo) -> bool {
    si.family == AF_INET || si.family == AF_INET6
}

/// The cheap first look at the socket a call is about (one read): false when the call cannot
/// concern a watched socket, so every other process's calls cost little. Not an IP socket; or,
/// with a port filter, a socket already bound to an unwatched port and not connected to a
/// watched one, unless the call is a connect() to a watched port or the caller is a watched
/// owner (bind() is always looked at: user space holds a client's bind until its connect() says
/// whether it is watched).
#[inline(always)]
fn wanted_at_all(
    ctx: &TracePointContext,
    kind: SyscallKind,
    sk: u64,
    o: &KernelOffsets,
    f: &Watched,
) -> bool {
    let p = sock::ports(sk, o);
    if p.family != AF_INET && p.family != AF_INET6 {
        return false;
    }
    if p.lport == 0 || ports_match(f, p.lport, p.rport) {
        return true;
    }
    match kind {
        SyscallKind::Bind => true,
        SyscallKind::Connect => {
            f.has_port(read_sockaddr(arg(ctx, 1), arg(ctx, 2)).port) || f.owner_matches()
        }
        _ => f.owner_matches(),
    }
}

/// Entry to any followed socket call but accept's.
#[tracepoint(category = "syscalls", name = "sys_enter")]
pub fn sys_enter(ctx: TracePointContext) -> i32 {
    on_enter(&ctx)
}

/// Entry to accept and accept4: a program of their own (see [`sys_exit_accept`]).
#[tracepoint(category = "syscalls", name = "sys_enter_accept")]
pub fn sys_enter_accept(ctx: TracePointContext) -> i32 {
    on_enter(&ctx)
}

#[inline(always)]
fn on_enter(ctx: &TracePointContext) -> i32 {
    if let Some(kind) = kind_of(ctx) {
        let _ = try_sys_enter(ctx, kind);
    }
    0
}

fn try_sys_enter(ctx: &TracePointContext, kind: SyscallKind) -> Result<(), i32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if kind.is_hot() && WATCHED_TGIDS.get_ptr((pid_tgid >> 32) as u32).is_none() {
        return Ok(());
    }
    let f = watched::get();
    if !f.active() {
        return Ok(());
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let o = offsets();
    let tid = pid_tgid as u32;
    // Which socket the call is about, decided before anything is written: most calls on the
    // machine stop here.
    let (fd, sk) = if kind == SyscallKind::Socket {
        let family = arg(ctx, 0);
        if family != AF_INET as u64 && family != AF_INET6 as u64 {
            return Ok(());
        }
        (-1, 0)
    } else {
        let fd = arg(ctx, 0) as i64;
        let sk = fd_to_sock(fd, o);
        if sk == 0 || !wanted_at_all(ctx, kind, sk, o, &f) {
            return Ok(());
        }
        (fd, sk)
    };
    let ev = pending(tid)?;
    ev.kind = kind as u8;
    ev.enter_ns = now;
    ev.fd = -1;
    sock::info_into(&mut ev.sock, 0, o);
    sock::info_into(&mut ev.other, 0, o);

    if kind == SyscallKind::Socket {
        ev.args = [arg(ctx, 0), arg(ctx, 1), arg(ctx, 2), 0];
        return Ok(());
    }
    ev.fd = fd as i32;
    if matches!(
        kind,
        SyscallKind::Bind | SyscallKind::Connect | SyscallKind::Listen | SyscallKind::Shutdown
    ) {
        // What these calls are about is read at exit, after the call changed the socket
        // (`decide`); at entry only which socket (wanted_at_all saw it is an IP one). A full
        // read here cost every connect() on the machine a dozen probe reads.
        ev.sock.sk = sk;
        match kind {
            SyscallKind::Bind | SyscallKind::Connect => {
                ev.addr = read_sockaddr(arg(ctx, 1), arg(ctx, 2));
                ev.args = [arg(ctx, 2), 0, 0, 0];
            }
            _ => ev.args = [arg(ctx, 1), 0, 0, 0],
        }
        return Ok(());
    }
    sock::info_into(&mut ev.sock, sk, o);
    if !is_inet(&ev.sock) {
        return discard(tid);
    }
    let wanted = sock_matches(&f, &ev.sock) || f.owner_matches();
    match kind {
        SyscallKind::Setsockopt => {
            let optlen = arg(ctx, 4);
            let mut val = 0u64;
            if optlen >= 4 {
                // SAFETY: user memory read through the helper.
                val = unsafe { bpf_probe_read_user(arg(ctx, 3) as *const u32) }.unwrap_or(0) as u64;
            }
            ev.args = [arg(ctx, 1), arg(ctx, 2), val, optlen];
            if !wanted && !sock_undecided(&ev.sock) {
                return discard(tid);
            }
        }
        SyscallKind::Accept | SyscallKind::Accept4 => {
            if !wanted {
                return discard(tid);
            }
            ev.args = [arg(ctx, 1), 0, arg(ctx, 3), 0];
            // The listener goes to `other`; `sock` will hold the accepted socket.
            ev.other = ev.sock;
        }
        _ => {
            // close: nothing more to read.
            if !wanted && !sock_undecided(&ev.sock) {
                return discard(tid);
            }
        }
    }
    Ok(())
}

/// This thread's event in flight, zeroed. It is built in place, in the entry of the thread's
/// own key, never in a per-CPU buffer: a per-CPU buffer is shared by every thread that runs on
/// the CPU, and where a thread can be preempted between the program's start and its end
/// (Debian's 7.2, lazily preemptive, lost a second thread's calls that way) another thread's
/// call overwrites it halfway.
#[inline(always)]
fn pending(tid: u32) -> Result<&'static mut SyscallEvent, i32> {
    let zero = SYSCALL_ZERO.get_ptr(0).ok_or(-1)?;
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "by value the event would be copied onto the 512-byte BPF stack"
    )]
    // SAFETY: SYSCALL_ZERO is never written: it stays all zeros.
    PENDING_SYSCALLS.insert(tid, unsafe { &*zero }, 0)?;
    let ev = PENDING_SYSCALLS.get_ptr_mut(tid).ok_or(-1)?;
    // SAFETY: entries are keyed by thread id; only this thread touches its own.
    Ok(unsafe { &mut *ev })
}

/// The call is not followed after all.
#[inline(always)]
fn discard(tid: u32) -> Result<(), i32> {
    let _ = PENDING_SYSCALLS.remove(tid);
    Ok(())
}

/// Return from any followed socket call but accept's.
#[tracepoint(category = "syscalls", name = "sys_exit")]
pub fn sys_exit(ctx: TracePointContext) -> i32 {
    on_exit(&ctx)
}

/// Return from accept and accept4, in a program of their own. Where the kernel runs syscall
/// programs preemptibly (7.2), it skips a program on a CPU while another thread is preempted
/// inside that same program there. A thread blocked in accept() is woken, often onto the
/// waker's CPU, by a connection another thread of the process made; that thread, still in the
/// exit program of its connect(), was preempted for it, and the accept's return went
/// unreported while both shared one program.
#[tracepoint(category = "syscalls", name = "sys_exit_accept")]
pub fn sys_exit_accept(ctx: TracePointContext) -> i32 {
    on_exit(&ctx)
}

#[inline(always)]
fn on_exit(ctx: &TracePointContext) -> i32 {
    if let Some(kind) = kind_of(ctx) {
        let _ = try_sys_exit(ctx, kind);
    }
    0
}

fn try_sys_exit(ctx: &TracePointContext, kind: SyscallKind) -> Result<(), i32> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let ev = PENDING_SYSCALLS.get_ptr_mut(tid).ok_or(0)?;
    // SAFETY: entries are keyed by thread id; only this thread touches its own.
    let ev = unsafe { &mut *ev };
    if ev.kind != kind as u8 {
        let _ = PENDING_SYSCALLS.remove(tid);
        return Ok(());
    }
    // SAFETY: `ret` is at offset 16 of every sys_exit record.
    ev.ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    let o = offsets();
    let f = watched::get();
    let send = decide(kind, ev, o, &f);
    if send && tally::journeys() {
        ev.header = emit::header(
            EventKind::Syscall,
            core::mem::size_of::<SyscallEvent>(),
            0,
            0,
        );
        ev.comm = emit::comm();
        emit::send(&*ev);
    }
    let _ = PENDING_SYSCALLS.remove(tid);
    Ok(())
}

/// Completes the event with what the call produced and decides whether it is wanted.
#[inline(always)]
fn decide(kind: SyscallKind, ev: &mut SyscallEvent, o: &KernelOffsets, f: &Watched) -> bool {
    match kind {
        SyscallKind::Socket => {
            if ev.ret >= 0 {
                sock::info_into(&mut ev.sock, fd_to_sock(ev.ret, o), o);
            }
            // Undecided until bind/connect/listen: user space holds it until then.
            true
        }
        SyscallKind::Accept | SyscallKind::Accept4 => {
            if ev.ret >= 0 {
                sock::info_into(&mut ev.sock, fd_to_sock(ev.ret, o), o);
                tally::accepted(ev.sock.lport);
                if f.owner_matches() {
                    f.learn_port(ev.sock.lport);
                }
            }
            watch_current();
            true
        }
        SyscallKind::Bind | SyscallKind::Connect | SyscallKind::Listen => {
            let sk = ev.sock.sk;
            sock::info_into(&mut ev.sock, sk, o);
            // A non-blocking connect() fails with EINPROGRESS with its port already chosen.
            let owner = f.owner_matches();
            if owner {
                f.learn_port(ev.sock.lport);
            }
            let wanted = owner || sock_matches(f, &ev.sock) || f.has_port(ev.addr.port);
            if wanted {
                watch_current();
            }
            // Every bind is sent: a client binds its own port first and only its connect()
            // tells whether it is watched; user space holds it until then.
            wanted || kind == SyscallKind::Bind
        }
        SyscallKind::Close | SyscallKind::Setsockopt => true,
        _ => {
            let sk = ev.sock.sk;
            sock::info_into(&mut ev.sock, sk, o);
            sock_matches(f, &ev.sock) || sock_undecided(&ev.sock) || f.owner_matches()
        }
    }
}
