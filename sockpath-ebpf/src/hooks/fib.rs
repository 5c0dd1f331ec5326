//! The routing decision for a received IPv4 packet.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sockpath_ebpf::{
    event::{EventKind, FibEvent},
    filter::ports_match,
};

use crate::{emit, watched};

/// Classic tracepoint fib/fib_table_lookup (see its `format`). Only lookups made while the CPU
/// is processing a watched packet are reported: those are its input route. A packet to a
/// connected socket usually has none: early demux reuses the route cached on the socket.
#[tracepoint(category = "fib", name = "fib_table_lookup")]
pub fn fib_table_lookup(ctx: TracePointContext) -> i32 {
    let (flags, journey) = emit::current_journey();
    if journey == 0 {
        return 0;
    }
    let _ = try_fib_table_lookup(&ctx, flags, journey);
    0
}

#[inline(always)]
fn at<T: Copy>(ctx: &TracePointContext, off: usize) -> Result<T, i32> {
    // SAFETY: offsets are those of the tracepoint's format file; the helper checks the address.
    unsafe { ctx.read_at::<T>(off) }
}

/// The result's device name: `char name[16]` at 60 (6.1 and later); 5.10's is a `__data_loc`
/// string whose u32 at 60 holds its offset (64, the end of the fixed fields) and its length
/// (bits 16-31), which read as a name is "@" (5.10 told routes "dev @" that way).
#[inline(always)]
fn dev_name(ctx: &TracePointContext) -> Result<[u8; 16], i32> {
    let loc: u32 = at(ctx, 60)?;
    let (off, len) = (loc & 0xffff, loc >> 16);
    if off == 64 && (1..=16).contains(&len) {
        // The string and its NUL; what follows it in the record is cut at the NUL.
        return at(ctx, 64);
    }
    at(ctx, 60)
}

fn try_fib_table_lookup(ctx: &TracePointContext, flags: u16, journey: u64) -> Result<(), i32> {
    let sport: u16 = at(ctx, 56)?;
    let dport: u16 = at(ctx, 58)?;
    // Input lookups carry no ports unless fib rules match on them (ip_route_input_slow() zeroes
    // them): then the journey being processed is the only filter.
    let has_ports = sport != 0 || dport != 0;
    if has_ports && !ports_match(&watched::get(), sport, dport) {
        return Ok(());
    }
    let ev = FibEvent {
        header: emit::header(
            EventKind::Fib,
            core::mem::size_of::<FibEvent>(),
            flags,
            journey,
        ),
        table: at(ctx, 8)?,
        err: at(ctx, 12)?,
        oif: at(ctx, 16)?,
        iif: at(ctx, 20)?,
        proto: at(ctx, 24)?,
        tos: at(ctx, 25)?,
        scope: at(ctx, 26)?,
        flags: at(ctx, 27)?,
        src: at(ctx, 28)?,
        dst: at(ctx, 32)?,
        gw4: at(ctx, 36)?,
        sport,
        dport,
        _pad: 0,
        dev: dev_name(ctx)?,
    };
    emit::send(&ev);
    Ok(())
}
