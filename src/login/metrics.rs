//! Login counters for the admin listener's `/metrics`
//! (`logins ok/failed/throttled`).

use std::sync::atomic::{AtomicU64, Ordering};

/// How many logins succeeded, failed and were refused by the throttle since
/// the process started. Shared by reference; every method takes `&self`.
#[derive(Debug, Default)]
pub struct LoginCounters {
    ok: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
}

// The counters are independent monotonic totals: nothing is ordered by them,
// so relaxed atomics are enough.
impl LoginCounters {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a successful login.
    pub fn inc_ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login refused for a wrong user name or password.
    pub fn inc_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a login refused because the user or address was throttled.
    pub fn inc_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Successful logins so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed logins so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Throttled logins so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_each_outcome_separately() {
        let counters = LoginCounters::new();
        counters.inc_ok();
        counters.inc_failed();
        counters.inc_failed();
        counters.inc_throttled();
        counters.inc_throttled();
        counters.inc_throttled();
        assert_eq!(
            (counters.ok(), counters.failed(), counters.throttled()),
            (1, 2, 3)
        );
    }

    #[test]
    fn counts_from_many_threads() {
        let counters = Arc::new(LoginCounters::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.inc_failed();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters.failed(), 4000);
    }
}
