//! The Redis store behind real proxies, on a `redis-server` (and a Redis
//! Cluster) started by each test: several instances sharing sessions,
//! failing closed while Redis is away and recovering without a restart,
//! and key rotation.
//!
//! These tests fail when `redis-server` is missing, unless
//! `SESSIONGATE_SKIP_REDIS=1` says to skip them.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sessiongate::session::data::decode;
use sessiongate::session::{
    DataChange, NewSession, Policy, RedisStore, SessionId, SessionStore, StoreError,
};
use support::process::{BUDGET, Cluster, Gateway, Redis, free_port, redis_available};
use support::site::{app, redis_store, sign_in, site, three_step_rotation, visit};
use support::*;

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
    let deadline = Instant::now() + BUDGET;
    loop {
        let status = client()
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .map(|r| r.status().as_u16());
        if status.as_ref().is_ok_and(|s| *s == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {want} (last: {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let mut a = Gateway::start(dir.path(), "a", &body).await;
    let b = Gateway::start(dir.path(), "b", &body).await;

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

#[tokio::test]
async fn redis_away_fails_closed_and_recovers_without_a_restart() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path()).await;
    let backend = app().await;
    let body = site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"));
    let gateway = Gateway::start(dir.path(), "gateway", &body).await;
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
    let gateway = Gateway::start(dir.path(), "gateway", &body).await;
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
    let gateway = Gateway::start(dir.path(), "gateway", &body).await;
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
    };
    let set = DataChange {
        delete: vec![],
        set: vec![("a".into(), "1".into())],
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
    let deadline = Instant::now() + BUDGET;
    loop {
        let started = Instant::now();
        let result = store.load(&ids[0], 1, &policy).await;
        assert!(started.elapsed() < FAIL_FAST, "{:?}", started.elapsed());
        match result {
            Err(StoreError::Unavailable(_)) => break,
            // Until the other nodes notice, keys they hold still answer.
            Ok(_) => assert!(Instant::now() < deadline, "the cluster never went down"),
            Err(e) => panic!("unexpected {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.nodes[0].restart().await;
    let deadline = Instant::now() + BUDGET;
    loop {
        let mut answered = 0;
        for id in &ids {
            if store.load(id, 1, &policy).await.is_ok() {
                answered += 1;
            }
        }
        if answered == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {answered} of {} loads succeed after the node came back",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The restarted node kept nothing (no persistence); the others kept theirs.
    let mut alive = 0;
    for id in &ids {
        alive += usize::from(store.load(id, 1, &policy).await.unwrap().is_some());
    }
    assert!(alive > 0 && alive < ids.len(), "{alive}");
}
