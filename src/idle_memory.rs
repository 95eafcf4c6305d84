//! Memory handed back to the system once a burst is over.
//!
//! mimalloc returns the pages a burst of connections freed only after a
//! delay, and only when the thread that owns them calls into the allocator
//! again. A runtime thread that goes idle right after the burst would keep
//! them (hundreds of MB after 10,000 connections) until the next request.
//! So every runtime thread, each time it is about to park, asks the
//! allocator to collect if a second has passed since it last did
//! ([`on_park`]), and a one-second ticker ([`tick`]) on each runtime wakes
//! its thread so that parking comes round even when no request does.
//! Purging at once instead (mimalloc's `purge_delay = 0`) costs an
//! `madvise` every twenty requests under steady load; this costs one
//! collection a second per thread, and nothing per request.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Seconds counted by the tickers: a thread collects when it has not in
/// this second.
static SECOND: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The [`SECOND`] in which this thread last collected.
    static COLLECTED_IN: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// For `tokio::runtime::Builder::on_thread_park`: collects this thread's
/// freed memory, at most once per second. Between collections it costs one
/// atomic load.
pub fn on_park() {
    let second = SECOND.load(Ordering::Relaxed);
    COLLECTED_IN.with(|last| {
        if last.get() != second {
            last.set(second);
            // The crate's one unsafe block: a call into the allocator's C
            // API, which the mimalloc crate offers no safe wrapper for.
            // SAFETY: `mi_collect` takes no pointers; it only walks the
            // calling thread's own heap and the allocator's arenas.
            #[allow(unsafe_code)]
            unsafe {
                libmimalloc_sys::mi_collect(false)
            };
        }
    });
}

/// Counts the seconds for [`on_park`], waking this runtime's thread once a
/// second. Spawn it once on each runtime; it runs until the runtime ends.
pub async fn tick() {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        SECOND.fetch_add(1, Ordering::Relaxed);
    }
}
