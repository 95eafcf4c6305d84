//! The Redis store behind real proxies, on a `redis-server` (and a Redis
//! Cluster) started by each test: several instances sharing sessions,
//! failing closed while Redis is away and recovering without a restart
//! (logins and logouts included), requests racing a login, and key rotation.
//!
//! These tests fail when `redis-server` is missing, unless
//! `SESSIONGATE_SKIP_REDIS=1` says to skip them.

use std::time::{Duration, Instant};

use crate::harness::process::free_port;
use crate::harness::redis_server::{Cluster, Redis, redis_available};
use crate::harness::site::{
    app, redis_store, requests_racing_a_login, sign_in, site, three_step_rotation, visit,
};
use crate::harness::*;
use nix::sys::signal::Signal;
use sessiongate::session::data::decode;
use sessiongate::session::{
    DataChange, NewSession, Policy, RedisStore, SessionId, SessionStore, StoreError,
};

/// How long a request may take to be refused while Redis is away.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// Sends `count` `/add?kN` requests with `cookie`, spread over `bases` and
/// all in flight at once; every one must succeed.
async fn add_concurrently(bases: &[String], cookie: &str, count: usize) {
    let c = client();
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let url = format!("{}/add?k{i}", bases[i % bases.len()]);
            tokio::spawn(c.get(url).header("cookie", cookie).send())
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().status(), 200);
    }
}

/// GETs `path` with `cookie` until the status is `want`, within [`BUDGET`].
async fn until_status(base: &str, path: &str, cookie: &str, want: u16) {
    eventually(&format!("{path} answers {want}"), BUDGET, async || {
        let status = client()
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .map(|r| r.status().as_u16());
        status.is_ok_and(|s| s == want)
    })
    .await;
}

/// GETs `path` with `cookie`, asserting the status and that it came quickly.
async fn status_within(base: &str, path: &str, cookie: &str, limit: Duration) -> u16 {
    let started = Instant::now();
    let resp = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < limit,
        "{path} took {:?}",
        started.elapsed()
    );
    resp.status().as_u16()
}

#[tokio::test]
async fn two_instances_share_logins_and_concurrent_updates() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let backend = app().await;
    let body = site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"));
    let mut a = Binary::new(&body).start().await;
    let b = Binary::new(&body).start().await;

    let alice = sign_in(&a.url("")).await;
    assert_eq!(
        visit(&b.url(""), &backend, "/members/x", &alice).await,
        (200, Some("alice".into()), "cart=3".into()),
        "logged in through a, recognised by b"
    );
    add_concurrently(&[a.url(""), b.url("")], &alice, 40).await;
    let (status, _, data) = visit(&a.url(""), &backend, "/members/x", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(decode(&data).len(), 41, "no update lost: {data}");

    // One instance dies; the other carries on with every session.
    a.proc.kill();
    let (status, user, data) = visit(&b.url(""), &backend, "/members/x", &alice).await;
    assert_eq!((status, user.as_deref()), (200, Some("alice")));
    assert_eq!(decode(&data).len(), 41);
}

/// A Redis server, the demo backend, and the proxy between them on that
/// Redis (with `workers`, when given).
async fn behind_redis(
    dir: &std::path::Path,
    workers: Option<i64>,
) -> (Redis, Backend, RunningBinary) {
    let redis = Redis::start(dir).await;
    let backend = app().await;
    let body = site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"));
    let mut config: toml::Table = body.parse().unwrap();
    if let Some(n) = workers {
        crate::harness::binary::set(&mut config, "server", "workers", n.into());
    }
    let gateway = Binary::from_table(config).start().await;
    (redis, backend, gateway)
}

/// With thread-per-core workers each worker has its own connection to
/// Redis. Once Redis is back, none of them may cost a failed request:
/// requests on many fresh client connections (spread over the workers by
/// the kernel) all succeed from the first.
#[tokio::test]
async fn every_workers_connection_comes_back_with_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, backend, gateway) = behind_redis(dir.path(), Some(2)).await;
    let base = gateway.url("");
    let alice = sign_in(&base).await;
    assert_eq!(visit(&base, &backend, "/members/x", &alice).await.0, 200);

    redis.kill();
    for _ in 0..12 {
        assert_eq!(status_within(&base, "/page", &alice, FAIL_FAST).await, 503);
    }
    // Long enough for every connection's last attempt to reconnect to
    // have failed, so that none is still trying when Redis is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    until_status(&base, "/page", &alice, 200).await;
    for i in 0..24 {
        assert_eq!(
            status_within(&base, "/page", &alice, FAIL_FAST).await,
            200,
            "request {i} after Redis came back"
        );
    }
}

#[tokio::test]
async fn redis_away_fails_closed_and_recovers_without_a_restart() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut redis, backend, gateway) = behind_redis(dir.path(), None).await;
    let base = gateway.url("");
    let alice = sign_in(&base).await;
    assert_eq!(visit(&base, &backend, "/members/x", &alice).await.0, 200);

    redis.kill();
    for path in ["/members/x", "/page"] {
        assert_eq!(
            status_within(&base, path, &alice, FAIL_FAST).await,
            503,
            "{path}: a protected route is never served without its session"
        );
        assert_eq!(
            status_within(&base, path, "", FAIL_FAST).await,
            503,
            "{path}: no session is handed out that the store cannot keep"
        );
    }
    let before = backend.seen().len();
    assert_eq!(
        visit(&base, &backend, "/pub/x", &alice).await,
        (200, None, String::new()),
        "public routes go on, without the session"
    );
    assert!(
        backend.seen()[before..]
            .iter()
            .all(|s| s.header("x-session-user").is_none())
    );

    // Redis comes back (empty: it kept nothing), and the same proxy uses it.
    redis.restart().await;
    until_status(&base, "/page", &alice, 200).await;
    let again = sign_in(&base).await;
    assert_eq!(
        visit(&base, &backend, "/members/x", &again).await,
        (200, Some("alice".into()), "cart=3".into())
    );
}

#[tokio::test]
async fn a_hung_redis_is_given_up_on_within_seconds() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let backend = app().await;
    let body = site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"));
    let gateway = Binary::new(&body).start().await;
    let base = gateway.url("");
    let alice = sign_in(&base).await;

    // Stopped, not dead: connections stay open and nothing answers.
    redis.signal(Signal::SIGSTOP);
    assert_eq!(
        status_within(&base, "/members/x", &alice, FAIL_FAST).await,
        503
    );
    assert_eq!(status_within(&base, "/pub/x", "", FAIL_FAST).await, 200);
    redis.signal(Signal::SIGCONT);
    until_status(&base, "/members/x", &alice, 200).await;
}

#[tokio::test]
async fn starting_before_redis_serves_503_until_it_answers() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let backend = app().await;
    let url = format!("redis://127.0.0.1:{port}/");
    let body = site(&backend, &[KEY], &redis_store(&url, "sg:"));
    let gateway = Binary::new(&body).start().await;
    let base = gateway.url("");

    // Not even a first visit gets a session the store could not keep.
    assert_eq!(status_within(&base, "/page", "", FAIL_FAST).await, 503);
    assert_eq!(status_within(&base, "/pub/x", "", FAIL_FAST).await, 200);

    let _redis = Redis::start_on(dir.path(), port).await;
    until_status(&base, "/page", "", 200).await;
    let first = client().get(gateway.url("/")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let cookie = session_cookie(&first).unwrap();
    assert_eq!(status_within(&base, "/page", &cookie, FAIL_FAST).await, 200);
    let alice = sign_in(&base).await;
    assert_eq!(visit(&base, &backend, "/members/x", &alice).await.0, 200);
}

/// A backend whose logins and logouts are announced in its body:
/// `/signin` and `/pub/signin` log alice in ("welcome"), `/pub/signout`
/// and `/slow-signout` (after two seconds) log out ("bye"), `/pub/remember`
/// sets `n=1` ("noted"). On `/pub/` the request reaches the backend even
/// while the store cannot be asked.
async fn announcing_app() -> Backend {
    Backend::with(|seen| match seen.uri.as_str() {
        "/signin" | "/pub/signin" => Reply::ok("welcome").header("X-Session-Login", "alice"),
        "/pub/signout" => Reply::ok("bye").header("X-Session-Logout", "1"),
        "/pub/remember" => Reply::ok("noted").header("X-Session-Set", "n=1"),
        "/slow-signout" => Reply {
            delay: Some(Duration::from_secs(2)),
            ..Reply::ok("bye").header("X-Session-Logout", "1")
        },
        _ => Reply::ok("page"),
    })
    .await
}

/// Asserts that a response is the proxy's own 503 for an unreachable
/// store: quick, `Retry-After`, no cookie set or cleared, and nothing of
/// the backend's answer.
async fn store_unavailable(resp: reqwest::Response, started: Instant, what: &str) {
    assert!(
        started.elapsed() < FAIL_FAST,
        "{what} took {:?}",
        started.elapsed()
    );
    assert_eq!(resp.status(), 503, "{what}");
    assert!(resp.headers().contains_key("retry-after"), "{what}");
    assert!(set_cookies(&resp).is_empty(), "{what}: the cookie stays");
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("welcome") && !body.contains("bye"),
        "{what}: the backend's answer must not reach the user: {body}"
    );
}

#[tokio::test]
async fn a_logout_while_redis_is_stopped_is_a_503_and_can_be_retried() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"))).await;
    let base = proxy.url("");
    let alice = sign_in(&base).await;

    redis.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let resp = client()
        .post(proxy.url("/.sessiongate/logout"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    store_unavailable(resp, started, "logout").await;

    // Redis is back with the session, which the same cookie still opens.
    redis.signal(Signal::SIGCONT);
    until_status(&base, "/members/x", &alice, 200).await;
    let resp = client()
        .post(proxy.url("/.sessiongate/logout"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(set_cookies(&resp)[0].contains("Max-Age=0"));
    assert_eq!(
        visit(&base, &backend, "/members/x", &alice).await,
        (302, None, String::new()),
        "the logout ended the session"
    );
}

#[tokio::test]
async fn a_backend_login_or_logout_redis_cannot_keep_is_a_503() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let backend = announcing_app().await;
    let proxy = Proxy::start(&site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"))).await;
    let base = proxy.url("");
    let alice = sign_in(&base).await;

    redis.signal(Signal::SIGSTOP);
    for (path, cookie) in [("/pub/signin", ""), ("/pub/signout", alice.as_str())] {
        let seen = backend.seen().len();
        let started = Instant::now();
        let resp = client()
            .get(proxy.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(backend.seen().len(), seen + 1, "{path} reached the backend");
        store_unavailable(resp, started, path).await;
    }
    // A data change goes nowhere, but the page is served, and the cookie
    // of a session that may well be alive is not replaced by a new one.
    let resp = client()
        .get(proxy.url("/pub/remember"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookies(&resp).is_empty());
    assert_eq!(resp.text().await.unwrap(), "noted");

    redis.signal(Signal::SIGCONT);
    until_status(&base, "/members/x", &alice, 200).await;
    let resp = client().get(proxy.url("/pub/signin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(session_cookie(&resp).is_some());
    let resp = client()
        .get(proxy.url("/pub/signout"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookies(&resp)[0].contains("Max-Age=0"));
    assert_eq!(visit(&base, &backend, "/members/x", &alice).await.0, 302);

    // The session was found, then Redis stops while the backend works: the
    // removal itself fails.
    let bob = sign_in(&base).await;
    let seen = backend.seen().len();
    let request = tokio::spawn(
        client()
            .get(proxy.url("/slow-signout"))
            .header("cookie", &bob)
            .send(),
    );
    eventually("the backend has the logout", BUDGET, async || {
        backend.seen().len() > seen
    })
    .await;
    redis.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let resp = request.await.unwrap().unwrap();
    store_unavailable(resp, started, "/slow-signout").await;
    redis.signal(Signal::SIGCONT);
}

#[tokio::test]
async fn requests_racing_a_login_on_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    requests_racing_a_login(&redis_store(&redis.url(), "sg:")).await;
}

#[tokio::test]
async fn three_step_key_rotation_on_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    three_step_rotation(&redis_store(&redis.url(), "sg:")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_serves_logins_updates_and_rotation() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let backend = app().await;
    let body = site(&backend, &[KEY], &redis_store(&cluster.url(), "sg:"));
    let a = Proxy::start(&body).await;
    let b = Proxy::start(&body).await;

    let alice = sign_in(&a.url("")).await;
    assert_eq!(
        visit(&b.url(""), &backend, "/members/x", &alice).await,
        (200, Some("alice".into()), "cart=3".into())
    );
    add_concurrently(&[a.url(""), b.url("")], &alice, 30).await;
    let (_, _, data) = visit(&b.url(""), &backend, "/members/x", &alice).await;
    assert_eq!(decode(&data).len(), 31, "no update lost: {data}");

    // A second login moves the session to a new id, on whichever node.
    let resp = client()
        .get(a.url("/signin"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    let moved = session_cookie(&resp).unwrap();
    assert_ne!(moved, alice);
    let (status, _, data) = visit(&b.url(""), &backend, "/members/x", &moved).await;
    assert_eq!(status, 200);
    assert_eq!(decode(&data).len(), 31, "the data moved with the session");
    let (status, _, _) = visit(&b.url(""), &backend, "/members/x", &alice).await;
    assert_eq!(status, 302, "the old id ended at login");

    // Logins in three steps, then in one script (a hash tag in the prefix).
    requests_racing_a_login(&redis_store(&cluster.url(), "race:")).await;
    requests_racing_a_login(&redis_store(&cluster.url(), "{race}:")).await;
    three_step_rotation(&redis_store(&cluster.url(), "rotation:")).await;
}

/// A cluster whose node dies (no replica: the cluster stops serving) gives
/// quick "unavailable" answers, and the same store works again once the
/// node is back, without being reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_node_coming_back_is_used_again() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path()).await;
    let store = RedisStore::open(&cluster.url(), "sg:").unwrap();
    let policy = Policy {
        idle_timeout: 1800,
        max_lifetime: 86_400,
        touch_interval: 60,
        max_data_bytes: 4096,
        max_sessions: 1000,
        remember_me: None,
    };
    let set = DataChange {
        delete: vec![],
        set: vec![("a".into(), "1".into())],
        incr: vec![],
    };
    let seed = NewSession {
        created: 0,
        initial: "",
        ip: None,
    };
    let ids: Vec<SessionId> = (0..30).map(|_| SessionId::generate()).collect();
    for id in &ids {
        store
            .update(id, &set, Some(seed), 0, &policy)
            .await
            .unwrap();
    }

    cluster.nodes[0].kill();
    eventually("the cluster is down", BUDGET, async || {
        let started = Instant::now();
        let result = store.load(&ids[0], 1, &policy).await;
        assert!(started.elapsed() < FAIL_FAST, "{:?}", started.elapsed());
        match result {
            Err(StoreError::Unavailable(_)) => true,
            // Until the other nodes notice, keys they hold still answer.
            Ok(_) => false,
            Err(e) => panic!("unexpected {e:?}"),
        }
    })
    .await;

    cluster.nodes[0].restart().await;
    eventually(
        "every load succeeds after the node came back",
        BUDGET,
        async || {
            let mut answered = 0;
            for id in &ids {
                if store.load(id, 1, &policy).await.is_ok() {
                    answered += 1;
                }
            }
            answered == ids.len()
        },
    )
    .await;
    // The restarted node kept nothing (no persistence); the others kept theirs.
    let mut alive = 0;
    for id in &ids {
        alive += usize::from(store.load(id, 1, &policy).await.unwrap().is_some());
    }
    assert!(alive > 0 && alive < ids.len(), "{alive}");
}
