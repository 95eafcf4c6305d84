//! Thread-per-core workers (`server.workers = 2`, `thread_per_core =
//! true`): both workers take connections on the one address, what is
//! counted adds up across them, a shutdown drains every worker, and a
//! session made on one worker is found on the other. (The whole suite runs
//! with workers too: `SESSIONGATE_TEST_WORKERS=2 cargo test --test it`.)

use std::time::Duration;

use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::{
    BUDGET, Backend, Proxy, Reply, client, config, eventually, raw, session_cookie,
};

/// Two thread-per-core workers, as the config says.
const WORKERS: &str = "[server]\nworkers = 2\nthread_per_core = true\n";

/// Connections opened before both workers must have had some: the kernel
/// hashes each connection's addresses to a worker, so with 16 the chance
/// that one worker gets none is 2^-15.
const CONNECTIONS: usize = 16;

async fn two_workers(backend: &Backend) -> Proxy {
    two_workers_with(backend, "").await
}

/// Two workers with `store` as the `[store]` section (memory when empty).
async fn two_workers_with(backend: &Backend, store: &str) -> Proxy {
    let text = config(
        &[
            ("/", &backend.url(), "public"),
            ("/app/", &backend.url(), "session"),
        ],
        &format!("{WORKERS}{store}"),
    );
    Proxy::start(&text).await
}

fn worker_counts(proxy: &Proxy) -> Vec<(usize, u64)> {
    proxy.gate().metrics.worker_connections.counts()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_workers_take_connections_on_one_port() {
    let backend = Backend::start().await;
    let proxy = two_workers(&backend).await;
    for _ in 0..CONNECTIONS {
        let answer = raw(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let counts = worker_counts(&proxy);
    let workers: Vec<usize> = counts.iter().map(|(w, _)| *w).collect();
    assert_eq!(workers, [0, 1], "connections by worker: {counts:?}");
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, CONNECTIONS as u64);
    // Requests are counted once, whichever worker answered them.
    assert_eq!(proxy.gate().metrics.requests(), CONNECTIONS as u64);
    assert_eq!(backend.seen().len(), CONNECTIONS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_worker_is_found_on_the_other() {
    one_session_across_workers("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_session_made_on_one_worker_is_found_on_the_other() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    // Each worker talks to Redis on a connection of its own.
    one_session_across_workers(&redis_store(&redis.url(), "sg:")).await;
}

async fn one_session_across_workers(store: &str) {
    let backend = Backend::with(|_| Reply::ok("counted").header("X-Session-Incr", "hits=1")).await;
    let proxy = two_workers_with(&backend, store).await;
    let first = client().get(proxy.url("/app/")).send().await.unwrap();
    let cookie = session_cookie(&first).expect("a session");
    let hit = async || {
        // A new client each time: a new connection, to either worker.
        let resp = client()
            .get(proxy.url("/app/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    let mut hits = 1;
    eventually("both workers served the session", BUDGET, async || {
        hit().await;
        hits += 1;
        worker_counts(&proxy).len() == 2
    })
    .await;
    hit().await;
    // Every hit, on either worker, counted in the one session.
    assert_eq!(
        backend.last().header("x-session-data").as_deref(),
        Some(format!("hits={hits}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_every_worker_finish_its_requests() {
    let backend = Backend::with(|_| Reply {
        delay: Some(Duration::from_millis(500)),
        ..Reply::ok("late")
    })
    .await;
    let mut proxy = two_workers(&backend).await;
    let requests: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let req = client().get(proxy.url("/"));
            tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    eventually("every request reached the backend", BUDGET, async || {
        backend.seen().len() == CONNECTIONS
    })
    .await;
    assert_eq!(
        worker_counts(&proxy).len(),
        2,
        "{:?}",
        worker_counts(&proxy)
    );
    let running = proxy.running.take().unwrap();
    running.shutdown().await.unwrap();
    for r in requests {
        assert_eq!(r.await.unwrap(), "late");
    }
    // Both workers have stopped accepting.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}
