//! Taking sessions back: through the store API the admin listener calls
//! (seen by every instance that shares Redis), by taking a user out of the
//! users file, and across a restart from a snapshot written before the
//! memory store indexed its users.

use std::path::Path;
use std::time::Duration;

use crate::harness::form::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, form_sign_in, id_of};
use crate::harness::process::within;
use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::{app, redis_store, sign_in, site, visit};
use crate::harness::{Backend, KEY, Proxy, config};
use sessiongate::session::snapshot;
use sessiongate::session::{MemoryStore, Policy, SessionId, SessionStore, SessionSummary};

/// How long a user taken out of the users file may keep a session: the
/// file is looked at once a second.
const SIGN_OUT_BUDGET: Duration = Duration::from_secs(5);

/// Whether `cookie` still gets through to the backend on a login route.
async fn lets_in(proxy: &Proxy, backend: &Backend, cookie: &str) -> bool {
    let base = format!("http://{}", proxy.addr);
    let (status, user, _) = visit(&base, backend, "/members/x", cookie).await;
    status == 200 && user.is_some()
}

/// The proxy's clock and session rules, for calls to its store.
fn now_and_policy(proxy: &Proxy) -> (u64, Policy) {
    let gate = proxy.gate();
    (gate.clock.now(), gate.setup().sessions.policy)
}

#[tokio::test]
async fn an_ended_session_is_no_session_on_every_instance_sharing_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let backend = app().await;
    let text = site(&backend, &[KEY], &redis_store(&redis.url(), "sg:"));
    let a = Proxy::start(&text).await;
    let b = Proxy::start(&text).await;
    let phone = sign_in(&format!("http://{}", a.addr)).await;
    let laptop = sign_in(&format!("http://{}", b.addr)).await;
    for (proxy, cookie) in [(&a, &phone), (&b, &phone), (&a, &laptop), (&b, &laptop)] {
        assert!(lets_in(proxy, &backend, cookie).await);
    }

    // Either instance lists both, by tag.
    let (now, policy) = now_and_policy(&b);
    let listed: Vec<SessionSummary> = b
        .gate()
        .store
        .sessions_of("alice", now, &policy)
        .await
        .unwrap();
    let mut tags: Vec<String> = listed.iter().map(|s| s.tag.clone()).collect();
    tags.sort();
    let mut expected = vec![id_of(&phone).log_hash(), id_of(&laptop).log_hash()];
    expected.sort();
    assert_eq!(tags, expected);

    // One session ended through A is gone for B at its next request.
    let laptop_tag = id_of(&laptop).log_hash();
    let (now, policy) = now_and_policy(&a);
    assert!(
        a.gate()
            .store
            .end_session_tagged(&laptop_tag, now, &policy)
            .await
            .unwrap()
    );
    assert!(!lets_in(&b, &backend, &laptop).await, "ended on B too");
    assert!(lets_in(&b, &backend, &phone).await, "the other one stays");

    // Logged out everywhere through B: A lets her in no more.
    assert_eq!(b.gate().store.end_sessions_of("alice").await.unwrap(), 1);
    assert!(!lets_in(&a, &backend, &phone).await);
    assert!(!lets_in(&b, &backend, &phone).await);
    // She can sign in again.
    let again = sign_in(&format!("http://{}", a.addr)).await;
    assert!(lets_in(&b, &backend, &again).await);
}

#[tokio::test]
async fn a_user_taken_out_of_the_users_file_is_signed_out_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let backend = Backend::start().await;
    let text = config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!("\n[login]\nusers_file = \"{}\"\n", users.display()),
    );
    let proxy = Proxy::start(&text).await;
    let alice = [
        form_sign_in(&proxy, "alice", ALICE_PASSWORD).await,
        form_sign_in(&proxy, "alice", ALICE_PASSWORD).await,
    ];
    let bob = form_sign_in(&proxy, "bob", BOB_PASSWORD).await;
    for cookie in alice.iter().chain([&bob]) {
        assert!(lets_in(&proxy, &backend, cookie).await);
    }

    std::fs::write(&users, format!("# alice left\n{BOB}\n")).unwrap();
    let signed_out = within(SIGN_OUT_BUDGET, async || {
        let mut still_in = false;
        for cookie in &alice {
            still_in |= lets_in(&proxy, &backend, cookie).await;
        }
        !still_in
    })
    .await;
    assert!(
        signed_out.is_some(),
        "alice still signed in {SIGN_OUT_BUDGET:?} after leaving the users file"
    );
    let (now, policy) = now_and_policy(&proxy);
    let store = &proxy.gate().store;
    assert!(
        store
            .sessions_of("alice", now, &policy)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(lets_in(&proxy, &backend, &bob).await, "bob stays");
    assert_eq!(
        store.sessions_of("bob", now, &policy).await.unwrap().len(),
        1
    );
}

/// Written by the snapshot format of version 1 before the memory store
/// kept an index of users (nothing of the index is in it): alice's two
/// sessions (ids of 32 bytes 0x01 and 0x02), bob's (0x03) and an
/// anonymous one (0x04).
const OLD_SNAPSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/snapshot/v1-before-the-user-index.snapshot"
);

#[tokio::test]
async fn a_snapshot_written_before_the_user_index_restores_it() {
    let store = MemoryStore::new();
    let policy = Policy {
        idle_timeout: 3600,
        max_lifetime: 86_400,
        touch_interval: 60,
        max_data_bytes: 4096,
        max_sessions: 1000,
        remember_me: None,
    };
    let now = 1_700_000_700;
    let restored = snapshot::restore(&store, Path::new(OLD_SNAPSHOT), now, &policy).unwrap();
    assert_eq!(restored.loaded, 4);
    let id = |byte: u8| SessionId::from_bytes([byte; 32]);

    let alice = store.sessions_of("alice", now, &policy).await.unwrap();
    assert_eq!(
        alice,
        vec![
            SessionSummary {
                tag: id(1).log_hash(),
                created: 1_700_000_000,
                last_seen: 1_700_000_600,
                expires: 1_700_004_200,
                client: Some("192.0.2.10".parse().unwrap()),
                browser: None,
            },
            SessionSummary {
                tag: id(2).log_hash(),
                created: 1_700_000_300,
                last_seen: 1_700_000_300,
                expires: 1_700_003_900,
                client: Some("2001:db8::5".parse().unwrap()),
                browser: None,
            },
        ]
    );
    assert!(
        store
            .end_session_tagged(&id(2).log_hash(), now, &policy)
            .await
            .unwrap()
    );
    assert_eq!(store.end_sessions_of("alice").await.unwrap(), 1);
    assert_eq!(store.end_sessions_of("bob").await.unwrap(), 1);
    assert_eq!(store.len(), 1, "the anonymous session stays");
    assert!(store.load(&id(4), now, &policy).await.unwrap().is_some());
}
