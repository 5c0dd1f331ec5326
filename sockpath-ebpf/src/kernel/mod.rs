//! Reading kernel objects through the offsets user space found in the running kernel's BTF.
//!
//! Every read goes through bpf_probe_read_kernel: a field that is not where BTF said (or a
//! pointer that went stale) yields an error, never a fault.

pub mod skb;
pub mod sock;
pub mod task;

use aya_ebpf::helpers::bpf_probe_read_kernel;
use sockpath_ebpf::config::KernelOffsets;

use crate::maps::OFFSETS;

/// The offsets global, by reference: copying its 160 bytes onto the 512-byte BPF stack in every
/// hook does not fit. The pointer is read back through a volatile load so the compiler cannot
/// fold the reads into the zeros the global is initialised with before user space sets it.
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    let p: *const KernelOffsets = (&OFFSETS as *const aya_ebpf::Global<KernelOffsets>).cast();
    // SAFETY: Global<T> is repr(transparent) over an initialised T.
    unsafe { &*core::ptr::read_volatile(&p) }
}

/// Reads a `T` at `base + off`.
#[inline(always)]
pub fn read<T>(base: u64, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel((base + off as u64) as *const T) }
}

/// Reads a pointer at `base + off`, treating NULL as an error.
#[inline(always)]
pub fn read_ptr(base: u64, off: u32) -> Result<u64, i32> {
    match read::<u64>(base, off)? {
        0 => Err(-1),
        p => Ok(p),
    }
}
