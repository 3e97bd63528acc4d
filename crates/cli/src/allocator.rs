//! How the binary's allocator (mimalloc, declared in `main.rs`) returns
//! memory to the system.
//!
//! mimalloc hands freed pages back ("purges" them) a delay after they
//! empty: 1 s by default. The collector's working set is steady — Arrow
//! batches, Parquet buffers and decode buffers of the same sizes, over and
//! over — so pages purged after a second were faulted in again (and, as
//! transparent huge pages, zeroed 2 MiB at a time) a moment later: 5–10 %
//! of the pipeline's time (docs/benchmarks.md). A longer delay keeps them
//! while the load lasts and still gives them back when it stops.

use std::ffi::c_long;

/// Index of `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the
/// Rust bindings' constants predate the option); pinned by a test.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before it is purged.
const PURGE_DELAY_MS: c_long = 10_000;

/// Call first in `main`. The environment's `MIMALLOC_PURGE_DELAY`, if set,
/// is left to rule.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option by a valid index; mimalloc
        // reads options atomically on each use.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// Hands every freed page back to the system now, whatever the delay: for
/// a process that frees a burst and then idles (the agent after each
/// eviction), where mimalloc, purging on a later allocation, would keep
/// them.
pub fn return_free_memory() {
    // SAFETY: mi_collect takes no pointers and may be called at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_names_the_purge_delay() {
        // 1000 ms is the default of purge_delay in mimalloc v3 (options.c);
        // a version that moves the option fails here, not in production.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            panic!("unset MIMALLOC_PURGE_DELAY to run this test");
        }
        // SAFETY: reads an option by a valid index.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(default, 1000);
    }
}
