//! sockpath's eBPF programs: one hook per file under `hooks/`, all writing the event types of
//! `sockpath_ebpf::event` into one ring buffer.
//!
//! Built for the BPF target only (feature `ebpf`), by sockpath's build.rs.
#![no_std]
#![no_main]

mod emit;
mod hooks;
mod kernel;
mod maps;
mod tally;
mod watched;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this; it exists to satisfy no_std.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
