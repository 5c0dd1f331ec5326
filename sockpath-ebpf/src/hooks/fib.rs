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
        dev: at(ctx, 60)?,
    };
    emit::send(&ev);
    Ok(())
}
