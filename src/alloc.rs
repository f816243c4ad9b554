//! Allocator tuning for tensor work (glibc on Linux).
//!
//! Model inference allocates and frees buffers of tens to hundreds of MB many times per page
//! (SAM's 4096-token activations: 38 MB qkv, 50 MB MLP). glibc serves anything above its mmap
//! threshold (at most 32 MB) with a fresh `mmap`, so every such buffer is page-faulted in and
//! zeroed by the kernel, then unmapped: measured on a full-size 1024-px SAM + CLIP view, a
//! quarter of the time went to page faults (57.6 s → 33.6 s once buffers were reused).
//! docseek keeps large buffers in the heap instead: one arena (worker threads allocate big
//! tensors too, and thread arenas `mmap` anything above 64 MB), an mmap threshold of 1 GiB, and
//! at most [`TRIM_THRESHOLD`] of free memory kept at the top of the heap before it is returned
//! to the system.

/// Allocations below this size come from the heap (glibc `M_MMAP_THRESHOLD`).
pub const MMAP_THRESHOLD: i32 = 1 << 30;
/// Free memory kept at the heap top for reuse (glibc `M_TRIM_THRESHOLD`).
pub const TRIM_THRESHOLD: i32 = 1 << 30;

/// Applies the tuning; a no-op off glibc or when `DOCSEEK_DEFAULT_MALLOC=1`.
pub fn tune_for_tensors() {
    if std::env::var_os("DOCSEEK_DEFAULT_MALLOC").is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called at start-up before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Hands free heap memory back to the operating system (glibc `malloc_trim`).
///
/// With the tuning above, up to [`TRIM_THRESHOLD`] of freed memory stays mapped for reuse;
/// after a one-off large allocation (a huge page image, decoded or failed half-way) that is
/// memory a long-running server would otherwise keep. Costs a walk over the free lists: call it
/// after such events, not per page. A no-op off glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
