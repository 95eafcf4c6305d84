//! `X-Session-Incr`: counters that lose no hits when requests race, in
//! both stores, and the demo's hit counter built on it.

use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::{Backend, Proxy, Reply, browser, client, config, session_cookie};

/// How many requests race: the twenty parallel reloads.
const RACERS: usize = 20;

/// A site whose `/hit` counts `hits` up and `stock` down, and whose
/// `/show` only reads; `store` is the `[store]` section.
async fn counting_site(store: &str) -> (Proxy, Backend) {
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/hit" => Reply::ok("counted").header("X-Session-Incr", "hits=1&stock=-2"),
        _ => Reply::ok("shown"),
    })
    .await;
    let text = config(&[("/", &backend.url(), "session")], store);
    (Proxy::start(&text).await, backend)
}

async fn parallel_hits_all_count(store: &str) {
    let (proxy, backend) = counting_site(store).await;
    let first = client().get(proxy.url("/hit")).send().await.unwrap();
    let cookie = session_cookie(&first).expect("a session");
    let racing: Vec<_> = (0..RACERS)
        .map(|_| {
            let req = client().get(proxy.url("/hit")).header("cookie", &cookie);
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    for r in racing {
        assert_eq!(r.await.unwrap(), 200);
    }
    client()
        .get(proxy.url("/show"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let total = RACERS + 1;
    assert_eq!(
        backend.last().header("x-session-data").as_deref(),
        Some(format!("hits={total}&stock=-{}", 2 * total).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_hits_all_count_in_memory() {
    parallel_hits_all_count("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_hits_all_count_in_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    parallel_hits_all_count(&redis_store(&redis.url(), "sg:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_counter_loses_no_reloads() {
    let text = std::fs::read_to_string("config/sessiongate.toml").unwrap();
    let proxy = Proxy::start(&text).await;
    let c = browser();
    let first = c.get(proxy.url("/counter.cgi")).send().await.unwrap();
    let cookie = session_cookie(&first).expect("a session");
    let racing: Vec<_> = (0..RACERS)
        .map(|_| {
            let req = client()
                .get(proxy.url("/counter.cgi"))
                .header("cookie", &cookie);
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    for r in racing {
        assert_eq!(r.await.unwrap(), 200);
    }
    let html = client()
        .get(proxy.url("/counter.cgi"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The page shows the count before its own visit is added.
    let shown = RACERS + 2;
    assert!(
        html.contains(&format!(">{shown}<")),
        "expected {shown} visits: {html}"
    );
}
