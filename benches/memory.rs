//! How much memory a million live sessions cost in the memory store.
//!
//! Creates `SESSIONS` (default 1,000,000) sessions with small data, half of
//! them logged in, through the store's public API exactly as the proxy does,
//! and prints the process's resident set size before and after. The target
//! is under 300 MB for a million sessions. Then writes them to a snapshot
//! file and reads it back into a new store, timing both (the snapshot is
//! what a restart waits for). The longest single creation shows the pause
//! a request may meet while a part of the map grows its table. Between the
//! two, it creates another twentieth of `SESSIONS` with the store full, and
//! shows the pause of making room (evicting a batch).
//!
//! Run: `cargo bench --bench memory` (or `SESSIONS=2000000 cargo bench --bench memory`).
//! `SIGNED_IN_EVERY=N` signs in one session in N (default 2; 1 for all, 0
//! for none): a signed-in session also costs its user's name and its places
//! in the index by user and by tag.

use sessiongate::session::{
    DataChange, MemoryStore, NewSession, Policy, SessionId, SessionStore, SignIn, snapshot,
};

// The allocator the sessiongate binary runs with, so that the numbers are its.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // One session in `every` is signed in (as a user of its own), the
    // others anonymous; 0 for none.
    let every: usize = std::env::var("SIGNED_IN_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let policy = Policy {
        idle_timeout: 1800,
        max_lifetime: 86400,
        touch_interval: 60,
        max_data_bytes: 4096,
        max_sessions: n + 1,
        remember_me: None,
    };
    let store = MemoryStore::new();
    let before = rss_mb();
    let now = 1_700_000_000;
    let change = DataChange {
        delete: vec![],
        set: vec![("cart".into(), "3".into()), ("lang".into(), "en".into())],
        incr: vec![],
    };
    let started = std::time::Instant::now();
    // The longest single creation: a part of the map doubling its table
    // makes the request that triggered it (and any waiting on that part) wait.
    let mut longest = std::time::Duration::ZERO;
    for i in 0..n {
        let one = std::time::Instant::now();
        let seed = NewSession {
            created: now,
            initial: "",
            ip: Some(std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8])),
        };
        let id = SessionId::generate();
        if every == 0 || i % every != 0 {
            store
                .update(&id, &change, Some(seed), now, &policy)
                .await
                .unwrap();
        } else {
            let user = format!("user{i}");
            store
                .login(None, &id, &SignIn::user(&user), &change, seed, now, &policy)
                .await
                .unwrap();
        }
        longest = longest.max(one.elapsed());
    }
    let elapsed = started.elapsed();
    let after = rss_mb();
    println!(
        "{n} sessions: RSS {before:.1} MB -> {after:.1} MB ({:.1} MB for the sessions, {:.0} bytes each); created in {:.2?} ({:.0}/s), the longest creation {longest:.2?}",
        after - before,
        (after - before) * 1024.0 * 1024.0 / n as f64,
        elapsed,
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(store.len(), n);

    // At capacity: every creation past `max_sessions` makes room first, by
    // evicting a batch of the least valuable sessions. The longest creation
    // here is the pause a flood of new sessions meets once the store is full;
    // the longest stall is what another request on the same thread meets
    // meanwhile (a task that reads a session each time it gets the thread).
    let full = Policy {
        max_sessions: n,
        ..policy
    };
    let more = (n / 20).max(1);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (store, done) = (store.clone(), done.clone());
        let id = SessionId::generate();
        async move {
            let mut longest = std::time::Duration::ZERO;
            let mut last = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.lookup(&id, now, &full).await;
                tokio::task::yield_now().await;
                longest = longest.max(last.elapsed());
                last = std::time::Instant::now();
            }
            longest
        }
    });
    let started = std::time::Instant::now();
    let mut longest_full = std::time::Duration::ZERO;
    for i in 0..more {
        let one = std::time::Instant::now();
        let seed = NewSession {
            created: now,
            initial: "",
            ip: Some(std::net::IpAddr::from([10, 1, (i >> 8) as u8, i as u8])),
        };
        store
            .update(&SessionId::generate(), &change, Some(seed), now, &full)
            .await
            .unwrap();
        longest_full = longest_full.max(one.elapsed());
        // As a server's other requests would, the reader gets the thread
        // between creations.
        tokio::task::yield_now().await;
    }
    let elapsed_full = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let stalled = reader.await.unwrap_or_default();
    println!(
        "{more} more sessions at capacity: created in {elapsed_full:.2?} ({:.0}/s), the longest creation {longest_full:.2?}, the longest stall of the thread {stalled:.2?}; {} evicted",
        more as f64 / elapsed_full.as_secs_f64(),
        store.evicted_total()
    );

    let dir = std::env::temp_dir().join(format!("sessiongate-bench-{}", std::process::id()));
    let path = dir.join("sessions.snapshot");
    let started = std::time::Instant::now();
    let written = snapshot::save(store.clone(), path.clone()).await.unwrap();
    let save_time = started.elapsed();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let restored = MemoryStore::new();
    let started = std::time::Instant::now();
    let loaded = snapshot::restore(&restored, &path, now, &policy).unwrap();
    let load_time = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "snapshot of {written} sessions: {:.1} MB, written in {save_time:.2?}, loaded in {load_time:.2?}",
        size as f64 / 1024.0 / 1024.0
    );
    assert_eq!(loaded.loaded, n);
}
