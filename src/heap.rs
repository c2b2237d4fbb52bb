//! How the process asks glibc for memory. libtorch allocates each large tensor with
//! malloc, which glibc serves above 32 MB with a fresh mmap and unmaps on free, so every
//! window of every node touched new pages: page faults were half the time of a click in
//! `vistaflow serve` and of the point head's upscaling (measured on a 2-core VM). Keeping
//! freed memory in one heap lets the next tensor reuse its pages.

/// `VISTAFLOW_MALLOC=default` leaves glibc's own policy (the process then returns freed
/// memory to the system at once, at the cost of those page faults).
pub const ENV: &str = "VISTAFLOW_MALLOC";

/// Before any thread starts: one arena (other threads' arenas would still mmap tensors
/// larger than their 64 MB heaps), no mmap for large blocks, and freed memory kept up to
/// 2 GB at the top of the heap. The process's resident size then stays at its peak.
pub fn keep_freed_memory() {
    if std::env::var(ENV).is_ok_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's allocation parameters; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
