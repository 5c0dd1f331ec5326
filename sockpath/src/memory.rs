//! The allocator's free memory, handed back to the system after start-up's peaks.

/// Hands memory freed so far back to the system now. jemalloc would keep it until later
/// allocation activity let it decay, and an idle watcher has none: the BTF parsed at start
/// (tens of MiB) stayed resident.
pub fn release_free_memory() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena. A write-only control with no value, so
    // every pointer is null.
    // SAFETY: a NUL-terminated control name and null old/new pointers, as mallctl documents.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        tracing::debug!("jemalloc purge failed: {rc}");
    }
}
