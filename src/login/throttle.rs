//! Throttling of failed logins, per user name and per client address
//! (`login.max_attempts` within `login.attempt_window`).
//!
//! The window is **fixed, starting at the first failure**: the first failed
//! attempt for a key opens a window of `window`; once `max_attempts`
//! failures fall inside it, the key is locked until the window ends, and the
//! next failure after that opens a new window. A lock therefore lasts at most
//! `window`, and an attacker gets at most `max_attempts` guesses per window
//! per user and per address. While locked, even the right password is
//! refused: the caller asks [`Throttle::check`] before verifying anything.
//!
//! Client addresses are counted per IPv4 address and per IPv6 /64 (one
//! subscriber usually holds a whole /64); an IPv4-mapped IPv6 address counts
//! as its IPv4 address. User names are kept only as a 16-byte digest, so a
//! megabyte-long name costs no more memory than a short one.
//!
//! Memory is bounded by `capacity` tracked keys. When a new key finds the
//! table full, expired entries go first; if that is not enough, the oldest
//! windows (the ones closest to expiring anyway) are dropped in a batch of a
//! sixteenth of the capacity, so a flood of new keys does not rescan the
//! table on every failure.
//!
//! Times are the proxy's clock (unix seconds, [`crate::clock::Clock`]), as
//! for session lifetimes, so that a test moves the clock past a window
//! instead of waiting for it.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

/// How long a throttled client must wait: whole seconds, at least 1, for the
/// `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("too many failed logins; retry in {seconds} s")]
pub struct RetryAfter {
    seconds: u64,
}

impl RetryAfter {
    /// Whole seconds to wait, rounded up, never 0.
    pub fn seconds(self) -> u64 {
        self.seconds
    }

    fn after(remaining: Duration) -> Self {
        let rounded_up = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        Self {
            seconds: rounded_up.max(1),
        }
    }
}

/// What a throttled visitor is told: the wait `Retry-After` holds, in
/// seconds, and roughly in minutes when it is that long.
pub fn wait_message(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let wait = if seconds < 60 {
        plural(seconds, "second")
    } else {
        format!(
            "{} (about {})",
            plural(seconds, "second"),
            plural(seconds.div_ceil(60), "minute")
        )
    };
    format!("Too many failed sign-in attempts. Please wait {wait} and try again.")
}

/// What a failure counter is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// The first 16 bytes of SHA-256 of the user name.
    User([u8; 16]),
    /// An IPv4 address, or an IPv6 /64 with the interface bits zeroed.
    Client(IpAddr),
}

impl Key {
    fn user(user: &str) -> Self {
        let digest = Sha256::digest(user.as_bytes());
        let mut truncated = [0u8; 16];
        truncated.copy_from_slice(&digest[..16]);
        Self::User(truncated)
    }

    fn client(ip: IpAddr) -> Self {
        let normalised = match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            },
        };
        Self::Client(normalised)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Unix seconds.
    window_start: u64,
}

impl Entry {
    /// Time since the window opened (none if the clock went back).
    fn age(&self, now: u64) -> Duration {
        Duration::from_secs(now.saturating_sub(self.window_start))
    }

    fn expired(&self, now: u64, window: Duration) -> bool {
        self.age(now) >= window
    }

    fn add_failure(&mut self, now: u64, window: Duration) {
        if self.expired(now, window) {
            *self = Self {
                failures: 1,
                window_start: now,
            };
        } else {
            self.failures = self.failures.saturating_add(1);
        }
    }
}

/// Counts failed logins per user and per client address and says when to
/// refuse further attempts. Safe to share between tasks (`&self` only).
#[derive(Debug)]
pub struct Throttle {
    max_attempts: u32,
    window: Duration,
    capacity: usize,
    entries: DashMap<Key, Entry>,
    /// Held while a new key is added, so that the capacity check and the
    /// insert are one step and the bound holds under concurrency. Failures
    /// for keys already tracked do not take it.
    adding: Mutex<()>,
}

impl Throttle {
    /// A throttle that locks a user or address after `max_attempts` failures
    /// within `window`, tracking at most `capacity` keys. A `max_attempts`
    /// of 0 is taken as 1 (a typo must not turn throttling off) and a
    /// `capacity` of 0 as 1.
    pub fn new(max_attempts: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            window,
            capacity: capacity.max(1),
            entries: DashMap::new(),
            adding: Mutex::new(()),
        }
    }

    /// Whether `other` counts with the same limits (attempts, window,
    /// capacity), so that its counts can stand for this one's.
    pub fn same_limits(&self, other: &Throttle) -> bool {
        (self.max_attempts, self.window, self.capacity)
            == (other.max_attempts, other.window, other.capacity)
    }

    /// `Ok` when `user` may try to log in from `ip` now; otherwise how long
    /// to wait (the longer of the user's and the address's locks).
    pub fn check(&self, user: &str, ip: IpAddr, now: u64) -> Result<(), RetryAfter> {
        let wait = [Key::user(user), Key::client(ip)]
            .into_iter()
            .filter_map(|key| self.remaining_lock(&key, now))
            .max();
        match wait {
            Some(remaining) => Err(RetryAfter::after(remaining)),
            None => Ok(()),
        }
    }

    /// `Ok` when `ip` is not locked now, whoever it signs in as; otherwise
    /// how long to wait. For a request whose user name is not known yet (a
    /// form the backend reads).
    pub fn check_client(&self, ip: IpAddr, now: u64) -> Result<(), RetryAfter> {
        match self.remaining_lock(&Key::client(ip), now) {
            Some(remaining) => Err(RetryAfter::after(remaining)),
            None => Ok(()),
        }
    }

    /// Counts a failed login for `user` and for `ip`.
    pub fn record_failure(&self, user: &str, ip: IpAddr, now: u64) {
        self.add_failure(Key::user(user), now);
        self.add_failure(Key::client(ip), now);
    }

    /// Forgets the failures of `user` after a successful login. The
    /// address keeps its count: one good account must not reset the count
    /// of an address that is guessing at others.
    pub fn record_success(&self, user: &str, _ip: IpAddr) {
        self.entries.remove(&Key::user(user));
    }

    /// Drops every entry whose window has ended. Not needed for correctness
    /// (full tables clean themselves); a caller may run it periodically to
    /// give memory back sooner.
    pub fn purge_expired(&self, now: u64) {
        self.entries
            .retain(|_, entry| !entry.expired(now, self.window));
    }

    /// Number of keys (user names and addresses) currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remaining_lock(&self, key: &Key, now: u64) -> Option<Duration> {
        let entry = *self.entries.get(key)?;
        if entry.failures < self.max_attempts || entry.expired(now, self.window) {
            return None;
        }
        Some(self.window.saturating_sub(entry.age(now)))
    }

    fn add_failure(&self, key: Key, now: u64) {
        if let Some(mut entry) = self.entries.get_mut(&key) {
            entry.add_failure(now, self.window);
            return;
        }
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        self.make_room(now);
        self.entries
            .entry(key)
            .and_modify(|entry| entry.add_failure(now, self.window))
            .or_insert(Entry {
                failures: 1,
                window_start: now,
            });
    }

    /// Ensures there is room for one more key. Called with `adding` held.
    fn make_room(&self, now: u64) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.purge_expired(now);
        let len = self.entries.len();
        if len < self.capacity {
            return;
        }
        let mut by_age: Vec<(Key, u64)> = self
            .entries
            .iter()
            .map(|item| (*item.key(), item.value().window_start))
            .collect();
        let evict = (len + 1 - self.capacity)
            .max(self.capacity / 16)
            .min(by_age.len());
        if evict == 0 {
            return;
        }
        by_age.select_nth_unstable_by_key(evict - 1, |&(_, start)| start);
        for (key, _) in &by_age[..evict] {
            self.entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const WINDOW: Duration = Duration::from_secs(300);
    /// A moment on the proxy's clock, unix seconds.
    const T0: u64 = 1_700_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn the_wait_is_told_in_seconds_and_roughly_in_minutes() {
        assert_eq!(
            wait_message(1),
            "Too many failed sign-in attempts. Please wait 1 second and try again."
        );
        assert!(wait_message(59).contains("wait 59 seconds and"));
        assert!(wait_message(60).contains("wait 60 seconds (about 1 minute) and"));
        assert!(wait_message(299).contains("wait 299 seconds (about 5 minutes) and"));
    }

    #[test]
    fn an_address_locked_by_failures_for_any_user_is_locked_for_all() {
        let t = Throttle::new(2, WINDOW, 100);
        t.record_failure("alice", ip(1), T0);
        assert_eq!(t.check_client(ip(1), T0), Ok(()));
        t.record_failure("bob", ip(1), T0 + 10);
        assert_eq!(t.check_client(ip(1), T0 + 10).unwrap_err().seconds(), 290);
        assert_eq!(t.check_client(ip(2), T0 + 10), Ok(()));
        assert_eq!(t.check_client(ip(1), T0 + 300), Ok(()));
    }

    #[test]
    fn locks_a_user_after_max_failures_from_any_address() {
        let throttle = Throttle::new(3, WINDOW, 100);
        let t0 = T0;
        for n in 0..3 {
            assert_eq!(throttle.check("alice", ip(n), t0), Ok(()));
            throttle.record_failure("alice", ip(n), t0 + u64::from(n));
        }
        let locked = throttle.check("alice", ip(99), t0 + 10).unwrap_err();
        assert_eq!(locked.seconds(), 290);
        assert_eq!(throttle.check("bob", ip(99), t0 + 10), Ok(()));
    }

    #[test]
    fn locks_an_address_after_max_failures_for_any_user() {
        let throttle = Throttle::new(3, WINDOW, 100);
        let t0 = T0;
        for user in ["a", "b", "c"] {
            throttle.record_failure(user, ip(7), t0);
        }
        assert!(throttle.check("d", ip(7), t0 + 1).is_err());
        assert_eq!(throttle.check("d", ip(8), t0 + 1), Ok(()));
    }

    #[test]
    fn window_is_fixed_from_the_first_failure() {
        let throttle = Throttle::new(3, WINDOW, 100);
        let t0 = T0;
        throttle.record_failure("alice", ip(1), t0);
        throttle.record_failure("alice", ip(1), t0 + 200);
        // The third failure comes after the first window ended: a new window.
        throttle.record_failure("alice", ip(1), t0 + 301);
        assert_eq!(throttle.check("alice", ip(1), t0 + 302), Ok(()));

        throttle.record_failure("alice", ip(1), t0 + 400);
        throttle.record_failure("alice", ip(1), t0 + 500);
        let locked = throttle.check("alice", ip(1), t0 + 500).unwrap_err();
        assert_eq!(
            locked.seconds(),
            101,
            "the lock ends with the window opened at 301 s"
        );
        assert_eq!(throttle.check("alice", ip(1), t0 + 601), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one_second() {
        // The clock counts whole seconds: a window half a second short of
        // WINDOW leaves the halves to round.
        let throttle = Throttle::new(1, WINDOW - Duration::from_millis(500), 100);
        let t0 = T0;
        throttle.record_failure("alice", ip(1), t0);
        let nearly_over = t0 + WINDOW.as_secs() - 1;
        assert_eq!(
            throttle
                .check("alice", ip(1), nearly_over)
                .unwrap_err()
                .seconds(),
            1
        );
        let mid = t0 + 1;
        assert_eq!(
            throttle.check("alice", ip(1), mid).unwrap_err().seconds(),
            299
        );
        assert_eq!(
            throttle.check("alice", ip(1), t0 + WINDOW.as_secs()),
            Ok(())
        );
        assert_eq!(RetryAfter::after(Duration::ZERO).seconds(), 1);
    }

    #[test]
    fn the_longer_lock_wins() {
        let throttle = Throttle::new(1, WINDOW, 100);
        let t0 = T0;
        throttle.record_failure("alice", ip(1), t0);
        throttle.record_failure("bob", ip(2), t0 + 100);
        let both = throttle.check("alice", ip(2), t0 + 150).unwrap_err();
        assert_eq!(both.seconds(), 250);
    }

    #[test]
    fn success_clears_the_user_but_not_the_address() {
        let throttle = Throttle::new(3, WINDOW, 100);
        let t0 = T0;
        for _ in 0..2 {
            throttle.record_failure("alice", ip(1), t0);
        }
        throttle.record_success("alice", ip(1));
        throttle.record_failure("alice", ip(2), t0);
        throttle.record_failure("alice", ip(3), t0);
        assert_eq!(
            throttle.check("alice", ip(4), t0),
            Ok(()),
            "user count was reset"
        );
        throttle.record_failure("zed", ip(1), t0);
        assert!(
            throttle.check("anyone", ip(1), t0).is_err(),
            "address kept its two failures"
        );
    }

    #[test]
    fn zero_max_attempts_still_throttles() {
        let throttle = Throttle::new(0, WINDOW, 100);
        let t0 = T0;
        assert_eq!(throttle.check("alice", ip(1), t0), Ok(()));
        throttle.record_failure("alice", ip(1), t0);
        assert!(throttle.check("alice", ip(1), t0).is_err());
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let throttle = Throttle::new(2, WINDOW, 100);
        let t0 = T0;
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        throttle.record_failure("u1", a, t0);
        throttle.record_failure("u2", b, t0);
        assert!(throttle.check("u3", a, t0).is_err());
        assert_eq!(throttle.check("u3", other, t0), Ok(()));

        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        throttle.record_failure("u4", mapped, t0);
        throttle.record_failure("u5", ip(9), t0);
        assert!(throttle.check("u6", ip(9), t0).is_err());
    }

    #[test]
    fn long_user_names_are_distinct_and_cheap() {
        let throttle = Throttle::new(1, WINDOW, 100);
        let t0 = T0;
        let long = "x".repeat(1 << 20);
        throttle.record_failure(&format!("{long}a"), ip(1), t0);
        assert!(throttle.check(&format!("{long}a"), ip(2), t0).is_err());
        assert_eq!(throttle.check(&format!("{long}b"), ip(2), t0), Ok(()));
        assert!(std::mem::size_of::<Key>() <= 24);
    }

    #[test]
    fn capacity_drops_expired_entries_first() {
        let throttle = Throttle::new(1, WINDOW, 4);
        let t0 = T0;
        throttle.record_failure("old", ip(1), t0);
        let later = t0 + WINDOW.as_secs() + 1;
        throttle.record_failure("locked", ip(2), later);
        assert_eq!(throttle.len(), 4);
        throttle.record_failure("new", ip(2), later);
        assert!(throttle.len() <= 4);
        assert!(
            throttle.check("locked", ip(3), later).is_err(),
            "a live lock survived"
        );
        assert!(throttle.check("new", ip(3), later).is_err());
    }

    #[test]
    fn capacity_drops_the_oldest_when_nothing_expired() {
        let throttle = Throttle::new(1, WINDOW, 4);
        let t0 = T0;
        throttle.record_failure("first", ip(1), t0);
        throttle.record_failure("second", ip(2), t0 + 1);
        throttle.record_failure("third", ip(3), t0 + 2);
        assert!(throttle.len() <= 4);
        let now = t0 + 3;
        assert_eq!(
            throttle.check("first", ip(9), now),
            Ok(()),
            "oldest was dropped"
        );
        assert!(throttle.check("third", ip(9), now).is_err());
        assert!(throttle.check("x", ip(3), now).is_err());
    }

    #[test]
    fn capacity_holds_under_concurrent_failures() {
        let throttle = Arc::new(Throttle::new(5, WINDOW, 64));
        let t0 = T0;
        let workers: Vec<_> = (0..4u8)
            .map(|worker| {
                let throttle = Arc::clone(&throttle);
                std::thread::spawn(move || {
                    for n in 0..500u16 {
                        let [hi, lo] = n.to_be_bytes();
                        let addr = IpAddr::V4(Ipv4Addr::new(10, worker, hi, lo));
                        throttle.record_failure(&format!("user-{worker}-{n}"), addr, t0);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert!(throttle.len() <= 64, "{} keys", throttle.len());
    }

    #[test]
    fn purge_expired_frees_memory() {
        let throttle = Throttle::new(3, WINDOW, 100);
        let t0 = T0;
        throttle.record_failure("alice", ip(1), t0);
        throttle.purge_expired(t0 + 1);
        assert_eq!(throttle.len(), 2);
        throttle.purge_expired(t0 + WINDOW.as_secs());
        assert!(throttle.is_empty());
    }
}
