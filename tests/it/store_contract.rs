//! The `SessionStore` contract, run against every store: the memory store,
//! one Redis server, and a three-node Redis Cluster (with and without a hash
//! tag in the key prefix, so that both ways of logging in are exercised).
//!
//! Each check is one generic function; the `contract!` macro runs it against
//! each store. Times are the proxy's clock, passed in, so expiry is checked
//! without waiting, Redis included.

use std::net::IpAddr;
use std::sync::Arc;

use crate::harness::redis_server::{Cluster, Redis, redis_available};
use sessiongate::session::data::decode;
use sessiongate::session::{
    DataChange, Lookup, MemoryStore, NewSession, Policy, ROTATED_FOR, RedisStore, SessionId,
    SessionStore, SessionSummary, SignIn, StoreError,
};

fn policy() -> Policy {
    Policy {
        idle_timeout: 100,
        max_lifetime: 1000,
        touch_interval: 10,
        max_data_bytes: 64,
        max_sessions: 1000,
        remember_me: None,
    }
}

fn seed(created: u64) -> NewSession<'static> {
    NewSession {
        created,
        initial: "",
        ip: None,
    }
}

fn set(k: &str, v: &str) -> DataChange {
    DataChange {
        delete: vec![],
        set: vec![(k.into(), v.into())],
        incr: vec![],
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn update_creates_only_when_asked<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let p = policy();
    assert_eq!(
        s.update(&id, &set("a", "1"), None, 0, &p).await,
        Err(StoreError::Gone)
    );
    assert!(s.load(&id, 0, &p).await.unwrap().is_none());
    let created = NewSession {
        created: 0,
        initial: "start=1",
        ip: ip("192.0.2.9"),
    };
    let r = s
        .update(&id, &set("a", "1"), Some(created), 2, &p)
        .await
        .unwrap();
    assert_eq!((&*r.data, r.created, r.last_seen), ("start=1&a=1", 0, 2));
    assert_eq!(r.ip, ip("192.0.2.9"));
    assert_eq!(r.user, None);
    let r = s.update(&id, &set("b", "2"), None, 3, &p).await.unwrap();
    assert_eq!(&*r.data, "start=1&a=1&b=2");
    assert_eq!(s.load(&id, 3, &p).await.unwrap(), Some(r));
}

async fn idle_and_absolute_expiry<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let p = policy();
    s.update(&id, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    assert!(s.load(&id, 99, &p).await.unwrap().is_some());
    // touched at 99, so alive until 199
    assert!(s.load(&id, 198, &p).await.unwrap().is_some());
    assert!(s.load(&id, 400, &p).await.unwrap().is_none());
    let ended = SessionId::generate();
    s.update(&ended, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    assert_eq!(
        s.update(&ended, &set("b", "1"), Some(seed(0)), 400, &p)
            .await,
        Err(StoreError::Gone),
        "an ended session is not brought back by an update"
    );
    let id2 = SessionId::generate();
    s.update(&id2, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let mut t = 0;
    while t + 50 < 1000 {
        t += 50;
        assert!(s.load(&id2, t, &p).await.unwrap().is_some(), "alive at {t}");
    }
    assert!(
        s.load(&id2, 1000, &p).await.unwrap().is_none(),
        "max_lifetime ends it"
    );
}

async fn loads_touch_at_most_every_touch_interval<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let p = policy();
    s.update(&id, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let seen = |r: Option<sessiongate::session::SessionRecord>| r.unwrap().last_seen;
    assert_eq!(seen(s.load(&id, 5, &p).await.unwrap()), 0);
    assert_eq!(seen(s.load(&id, 10, &p).await.unwrap()), 10);
    assert_eq!(seen(s.load(&id, 15, &p).await.unwrap()), 10);
    assert_eq!(seen(s.load(&id, 15, &p).await.unwrap()), 10);
    // The idle deadline moved with the touch: alive at 10 + 99, not at 10 + 100.
    assert!(s.load(&id, 109, &p).await.unwrap().is_some());
    assert!(s.load(&id, 209, &p).await.unwrap().is_none());
}

async fn peeks_never_touch<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let p = policy();
    s.update(&id, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let peeked = |l: Lookup| match l {
        Lookup::Live(r) => r,
        other => panic!("not live: {other:?}"),
    };
    // Long past touch_interval, again and again: the deadline stays put.
    for now in [10, 50, 99] {
        let r = peeked(s.peek(&id, now, &p).await.unwrap());
        assert_eq!((r.last_seen, &*r.data), (0, "a=1"), "at {now}");
    }
    assert_eq!(s.peek(&id, 100, &p).await.unwrap(), Lookup::Absent);
    assert!(
        s.load(&id, 100, &p).await.unwrap().is_none(),
        "peeks kept nothing alive"
    );

    // A lookup does touch, and a peek then sees it.
    let id = SessionId::generate();
    s.update(&id, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    assert_eq!(s.load(&id, 60, &p).await.unwrap().unwrap().last_seen, 60);
    assert_eq!(peeked(s.peek(&id, 61, &p).await.unwrap()).last_seen, 60);
    assert_eq!(s.peek(&id, 160, &p).await.unwrap(), Lookup::Absent);

    // Nothing, and an id a login moved, read as a lookup reads them.
    assert_eq!(
        s.peek(&SessionId::generate(), 0, &p).await.unwrap(),
        Lookup::Absent
    );
    let old = SessionId::generate();
    let new = SessionId::generate();
    s.login(
        Some(&old),
        &new,
        &SignIn::user("ann"),
        &DataChange::default(),
        seed(200),
        200,
        &p,
    )
    .await
    .unwrap();
    assert_eq!(s.peek(&old, 201, &p).await.unwrap(), Lookup::Rotated);
    assert_eq!(
        peeked(s.peek(&new, 201, &p).await.unwrap()).user.as_deref(),
        Some("ann")
    );
}

async fn too_large_changes_nothing<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let p = policy();
    s.update(&id, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let big = "x".repeat(100);
    assert_eq!(
        s.update(&id, &set("b", &big), None, 1, &p).await,
        Err(StoreError::TooLarge {
            size: 106,
            limit: 64
        })
    );
    assert_eq!(&*s.load(&id, 1, &p).await.unwrap().unwrap().data, "a=1");
    let fresh = SessionId::generate();
    assert!(matches!(
        s.update(&fresh, &set("b", &big), Some(seed(0)), 1, &p)
            .await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(s.load(&fresh, 1, &p).await.unwrap().is_none());
    let new = SessionId::generate();
    assert!(matches!(
        s.login(
            Some(&id),
            &new,
            &SignIn::user("alice"),
            &set("b", &big),
            seed(1),
            1,
            &p
        )
        .await,
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(
        &*s.load(&id, 1, &p).await.unwrap().unwrap().data,
        "a=1",
        "a refused login leaves the old session as it was"
    );
    assert!(s.load(&new, 1, &p).await.unwrap().is_none());
}

async fn login_moves_the_session_to_a_new_id<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let old = SessionId::generate();
    let new = SessionId::generate();
    let first = NewSession {
        ip: ip("2001:db8::7"),
        ..seed(0)
    };
    s.update(&old, &set("cart", "3"), Some(first), 0, &p)
        .await
        .unwrap();
    let r = s
        .login(
            Some(&old),
            &new,
            &SignIn::user("alice"),
            &set("lang", "en"),
            seed(5),
            5,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(r.user.as_deref(), Some("alice"));
    assert_eq!(&*r.data, "cart=3&lang=en");
    assert_eq!((r.created, r.last_seen), (5, 5));
    assert_eq!(r.ip, ip("2001:db8::7"), "the old session's IP is kept");
    assert!(
        s.load(&old, 5, &p).await.unwrap().is_none(),
        "old id is dead"
    );
    assert_eq!(s.load(&new, 6, &p).await.unwrap(), Some(r));
    assert_eq!(
        s.update(&old, &set("x", "1"), None, 6, &p).await,
        Err(StoreError::Gone)
    );
    // A login from a new address takes that address.
    let newer = SessionId::generate();
    let from = NewSession {
        ip: ip("192.0.2.1"),
        ..seed(7)
    };
    let r = s
        .login(
            Some(&new),
            &newer,
            &SignIn::user("alice"),
            &DataChange::default(),
            from,
            7,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(r.ip, ip("192.0.2.1"));
    assert_eq!(&*r.data, "cart=3&lang=en");
}

async fn login_without_a_live_session_starts_from_initial<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let initial = NewSession {
        created: 0,
        initial: "count=0",
        ip: None,
    };
    let new = SessionId::generate();
    let r = s
        .login(
            None,
            &new,
            &SignIn::user("bob"),
            &set("a", "1"),
            initial,
            3,
            &p,
        )
        .await
        .unwrap();
    assert_eq!((&*r.data, r.user.as_deref()), ("count=0&a=1", Some("bob")));
    assert_eq!(r.ip, None);
    // An old id that was never stored, or has expired, counts as none.
    let never = SessionId::generate();
    let r = s
        .login(
            Some(&never),
            &SessionId::generate(),
            &SignIn::user("bob"),
            &DataChange::default(),
            initial,
            3,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(&*r.data, "count=0");
    let stale = SessionId::generate();
    s.update(&stale, &set("old", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let fresh = SessionId::generate();
    let r = s
        .login(
            Some(&stale),
            &fresh,
            &SignIn::user("bob"),
            &DataChange::default(),
            initial,
            500,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(&*r.data, "count=0");
    assert!(s.load(&stale, 500, &p).await.unwrap().is_none());
}

/// A login leaves a mark on the id it moved the session away from, stored
/// or never stored, for `ROTATED_FOR` seconds of the proxy's clock. The old
/// id never loads as the session, and is not made a session again while
/// marked; marks are not counted as sessions.
async fn a_login_marks_the_old_id_for_a_while<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let old = SessionId::generate();
    s.update(&old, &set("cart", "3"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let new = SessionId::generate();
    let none = DataChange::default();
    s.login(
        Some(&old),
        &new,
        &SignIn::user("alice"),
        &none,
        seed(10),
        10,
        &p,
    )
    .await
    .unwrap();
    let never = SessionId::generate();
    let other = SessionId::generate();
    s.login(
        Some(&never),
        &other,
        &SignIn::user("bob"),
        &none,
        seed(10),
        10,
        &p,
    )
    .await
    .unwrap();
    for (id, what) in [(&old, "stored"), (&never, "never stored")] {
        assert_eq!(s.lookup(id, 10, &p).await, Ok(Lookup::Rotated), "{what}");
        let last = 10 + ROTATED_FOR - 1;
        assert_eq!(s.lookup(id, last, &p).await, Ok(Lookup::Rotated), "{what}");
        assert_eq!(
            s.load(id, 11, &p).await,
            Ok(None),
            "{what}: never the session"
        );
        assert_eq!(
            s.update(id, &set("x", "1"), None, 11, &p).await,
            Err(StoreError::Gone),
            "{what}"
        );
        assert_eq!(
            s.update(id, &set("x", "1"), Some(seed(11)), 11, &p).await,
            Err(StoreError::Gone),
            "{what}: not made a session again while marked"
        );
    }
    match s.lookup(&new, 11, &p).await.unwrap() {
        Lookup::Live(r) => assert_eq!((r.user.as_deref(), &*r.data), (Some("alice"), "cart=3")),
        other => panic!("the new id holds the session, not {other:?}"),
    }
    assert_eq!(s.count().await.unwrap(), 2, "marks are not sessions");

    // The mark is over: the old id is nobody, and a new session may use it.
    let over = 10 + ROTATED_FOR;
    assert_eq!(s.lookup(&old, over, &p).await, Ok(Lookup::Absent));
    assert_eq!(s.lookup(&never, over, &p).await, Ok(Lookup::Absent));
    let r = s
        .update(&never, &set("x", "1"), Some(seed(over)), over, &p)
        .await
        .unwrap();
    assert_eq!((&*r.data, r.user.as_deref()), ("x=1", None));
    assert_eq!(s.lookup(&never, over, &p).await, Ok(Lookup::Live(r)));

    // Ending an id forgets its mark.
    let third = SessionId::generate();
    s.login(
        Some(&new),
        &third,
        &SignIn::user("alice"),
        &none,
        seed(20),
        20,
        &p,
    )
    .await
    .unwrap();
    assert_eq!(s.lookup(&new, 20, &p).await, Ok(Lookup::Rotated));
    s.remove(&new).await.unwrap();
    assert_eq!(s.lookup(&new, 20, &p).await, Ok(Lookup::Absent));
    assert!(s.load(&third, 20, &p).await.unwrap().is_some());
}

/// Logs `user` in under a new id at `at`, from `from`.
async fn sign_in<S: SessionStore>(s: &S, user: &str, at: u64, from: &str) -> SessionId {
    let id = SessionId::generate();
    let seed = NewSession {
        ip: ip(from),
        ..seed(at)
    };
    s.login(
        None,
        &id,
        &SignIn::user(user),
        &DataChange::default(),
        seed,
        at,
        &policy(),
    )
    .await
    .unwrap();
    id
}

async fn a_users_sessions_are_listed_by_tag<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let first = sign_in(&*s, "alice", 0, "192.0.2.1").await;
    let second = sign_in(&*s, "alice", 5, "2001:db8::2").await;
    let bob = sign_in(&*s, "bob", 1, "192.0.2.3").await;
    let anon = SessionId::generate();
    s.update(&anon, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    // The store knows the last touch, not every request.
    assert!(s.load(&first, 20, &p).await.unwrap().is_some());

    let listed = s.sessions_of("alice", 25, &p).await.unwrap();
    let expected = vec![
        SessionSummary {
            tag: first.log_hash(),
            created: 0,
            last_seen: 20,
            expires: 120,
            client: ip("192.0.2.1"),
            browser: None,
        },
        SessionSummary {
            tag: second.log_hash(),
            created: 5,
            last_seen: 5,
            expires: 105,
            client: ip("2001:db8::2"),
            browser: None,
        },
    ];
    assert_eq!(listed, expected, "oldest login first");
    for summary in &listed {
        assert_eq!(summary.tag.len(), 12);
        assert!(summary.tag.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!summary.tag.contains(&first.to_base64()));
    }
    let bobs = s.sessions_of("bob", 25, &p).await.unwrap();
    assert_eq!(
        bobs.iter().map(|x| &x.tag).collect::<Vec<_>>(),
        [&bob.log_hash()]
    );
    assert!(s.sessions_of("nobody", 25, &p).await.unwrap().is_empty());

    // A logout, and a login that moves a session to a new id, show.
    s.remove(&second).await.unwrap();
    s.remove(&second).await.unwrap();
    let moved = SessionId::generate();
    s.login(
        Some(&first),
        &moved,
        &SignIn::user("alice"),
        &DataChange::default(),
        seed(30),
        30,
        &p,
    )
    .await
    .unwrap();
    let tags: Vec<String> = s
        .sessions_of("alice", 30, &p)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.tag)
        .collect();
    assert_eq!(tags, [moved.log_hash()]);
}

async fn ending_a_users_sessions_ends_them_all<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let alice = [
        sign_in(&*s, "alice", 0, "192.0.2.1").await,
        sign_in(&*s, "alice", 1, "192.0.2.2").await,
    ];
    let bob = sign_in(&*s, "bob", 0, "192.0.2.3").await;
    let anon = SessionId::generate();
    s.update(&anon, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();

    assert_eq!(s.end_sessions_of("alice").await.unwrap(), 2);
    for id in &alice {
        assert_eq!(
            s.lookup(id, 3, &p).await,
            Ok(Lookup::Absent),
            "her cookie is dead"
        );
        assert_eq!(
            s.update(id, &set("x", "1"), None, 3, &p).await,
            Err(StoreError::Gone)
        );
    }
    assert!(s.sessions_of("alice", 3, &p).await.unwrap().is_empty());
    assert!(s.load(&bob, 3, &p).await.unwrap().is_some(), "bob stays");
    assert!(s.load(&anon, 3, &p).await.unwrap().is_some());
    assert_eq!(s.end_sessions_of("alice").await.unwrap(), 0);
    assert_eq!(s.end_sessions_of("nobody").await.unwrap(), 0);
    // Signing in again works as before.
    let again = sign_in(&*s, "alice", 4, "192.0.2.1").await;
    assert_eq!(s.sessions_of("alice", 4, &p).await.unwrap().len(), 1);
    assert!(s.load(&again, 4, &p).await.unwrap().is_some());
}

async fn one_session_ends_by_its_tag<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let phone = sign_in(&*s, "alice", 0, "192.0.2.1").await;
    let laptop = sign_in(&*s, "alice", 1, "192.0.2.2").await;
    let anon = SessionId::generate();
    s.update(&anon, &set("a", "1"), Some(seed(0)), 0, &p)
        .await
        .unwrap();

    assert_eq!(
        s.end_session_tagged(&phone.log_hash(), 2, &p).await,
        Ok(true)
    );
    assert_eq!(s.lookup(&phone, 2, &p).await, Ok(Lookup::Absent));
    assert_eq!(
        s.end_session_tagged(&phone.log_hash(), 2, &p).await,
        Ok(false),
        "already ended"
    );
    let tags: Vec<String> = s
        .sessions_of("alice", 2, &p)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.tag)
        .collect();
    assert_eq!(tags, [laptop.log_hash()], "the other one stays");
    assert!(s.load(&laptop, 2, &p).await.unwrap().is_some());
    // The tag an operator copied may be in capitals.
    let upper = laptop.log_hash().to_uppercase();
    assert_eq!(s.end_session_tagged(&upper, 2, &p).await, Ok(true));
    for unknown in [
        SessionId::generate().log_hash(),
        anon.log_hash(),
        "not-a-tag".to_string(),
        String::new(),
        anon.to_base64(),
    ] {
        assert_eq!(
            s.end_session_tagged(&unknown, 2, &p).await,
            Ok(false),
            "{unknown:?}"
        );
    }
    assert!(s.load(&anon, 2, &p).await.unwrap().is_some());
    // An expired session is not ended by its tag: it had ended already.
    let late = sign_in(&*s, "carol", 10, "192.0.2.4").await;
    assert_eq!(
        s.end_session_tagged(&late.log_hash(), 110, &p).await,
        Ok(false)
    );
}

async fn expiry_takes_sessions_out_of_the_listing<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let idle = sign_in(&*s, "alice", 0, "192.0.2.1").await;
    let busy = sign_in(&*s, "alice", 0, "192.0.2.2").await;
    let mut t = 0;
    while t + 90 < 1000 {
        t += 90;
        assert!(s.load(&busy, t, &p).await.unwrap().is_some());
        let tags: Vec<String> = s
            .sessions_of("alice", t, &p)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.tag)
            .collect();
        let expected = if t < 100 {
            vec![idle.log_hash(), busy.log_hash()]
        } else {
            vec![busy.log_hash()]
        };
        let mut tags = tags;
        tags.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(tags, expected, "at {t}");
    }
    assert!(
        s.sessions_of("alice", 1000, &p).await.unwrap().is_empty(),
        "max_lifetime ends it in the listing too"
    );
    assert_eq!(
        s.end_session_tagged(&busy.log_hash(), 1000, &p).await,
        Ok(false)
    );
}

async fn count_counts_sessions_only<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    assert_eq!(s.count().await.unwrap(), 0);
    for i in 0..3 {
        s.update(
            &SessionId::generate(),
            &set("n", &i.to_string()),
            Some(seed(0)),
            0,
            &p,
        )
        .await
        .unwrap();
    }
    s.login(
        None,
        &SessionId::generate(),
        &SignIn::user("carol"),
        &DataChange::default(),
        seed(0),
        0,
        &p,
    )
    .await
    .unwrap();
    assert_eq!(s.count().await.unwrap(), 4);
    s.ping().await.unwrap();
}

async fn concurrent_updates_lose_nothing<S: SessionStore>(s: Arc<S>) {
    let p = Policy {
        max_data_bytes: 100_000,
        ..policy()
    };
    let id = SessionId::generate();
    s.update(&id, &DataChange::default(), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.update(&id, &set(&format!("k{i}"), "v"), None, 1, &p)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let r = s.load(&id, 1, &p).await.unwrap().unwrap();
    assert_eq!(decode(&r.data).len(), 50);
}

/// Data changes give exactly what [`DataChange::apply`] gives, whatever the
/// keys and values hold.
async fn changes_match_data_change_apply<S: SessionStore>(s: Arc<S>) {
    let p = Policy {
        max_data_bytes: 100_000,
        ..policy()
    };
    let odd = [
        "plain",
        "with space",
        "a&b",
        "c=d",
        "pl+us",
        "per%cent",
        "é",
        "日本",
        "",
        "x=y&z",
        "~*-._",
        "semi;colon",
        "new\nline",
    ];
    let changes: Vec<DataChange> = vec![
        DataChange {
            delete: vec![],
            set: odd
                .iter()
                .map(|k| (k.to_string(), format!("{k}!{k}")))
                .collect(),
            incr: vec![],
        },
        DataChange {
            delete: vec!["a&b".into(), "missing".into(), "日本".into()],
            set: vec![("plain".into(), "".into()), ("c=d".into(), "2".into())],
            incr: vec![],
        },
        DataChange {
            delete: vec!["with space".into()],
            set: vec![
                ("twice".into(), "1".into()),
                ("with space".into(), "back".into()),
                ("twice".into(), "2".into()),
            ],
            incr: vec![],
        },
        DataChange {
            delete: odd.iter().map(|k| k.to_string()).collect(),
            set: vec![],
            incr: vec![],
        },
        // Counters: numbers add up, anything else counts as 0, sums stop
        // at the largest exact integer.
        DataChange {
            delete: vec![],
            set: vec![
                ("word".into(), "abc".into()),
                ("neg".into(), "-0012".into()),
                ("near".into(), "9007199254740990".into()),
                ("plus".into(), "+4".into()),
            ],
            incr: vec![
                ("count".into(), 1),
                ("count".into(), 41),
                ("word".into(), -2),
                ("neg".into(), -3),
                ("near".into(), 5),
                ("plus".into(), 1),
                ("fresh key".into(), -7),
                ("日本".into(), 9_007_199_254_740_991),
            ],
        },
        DataChange {
            delete: vec![],
            set: vec![],
            incr: vec![("日本".into(), 1), ("neg".into(), -9_007_199_254_740_991)],
        },
    ];
    let id = SessionId::generate();
    let initial = "count=0&lang=en+gb";
    let mut expected = initial.to_string();
    let mut create = Some(NewSession {
        created: 0,
        initial,
        ip: None,
    });
    for change in &changes {
        expected = change.apply(&expected);
        let r = s.update(&id, change, create.take(), 1, &p).await.unwrap();
        assert_eq!(&*r.data, expected, "after {change:?}");
    }
    let moved = SessionId::generate();
    let last = &changes[0];
    let r = s
        .login(
            Some(&id),
            &moved,
            &SignIn::user("dora"),
            last,
            seed(0),
            2,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(&*r.data, last.apply(&expected));
}

/// Groups a backend gives at sign-in stay with the session through loads,
/// touches and updates; a session signed in without them has none.
async fn groups_live_with_the_session<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let id = SessionId::generate();
    let who = SignIn {
        user: "carol",
        groups: "admins,staff",
        remember: None,
        browser: None,
    };
    let r = s
        .login(None, &id, &who, &set("a", "1"), seed(0), 0, &p)
        .await
        .unwrap();
    assert_eq!(r.groups.as_deref(), Some("admins,staff"));
    assert_eq!(r.remember, None);
    let touched = s.load(&id, 50, &p).await.unwrap().unwrap();
    assert_eq!(touched.groups.as_deref(), Some("admins,staff"));
    let r = s.update(&id, &set("b", "2"), None, 60, &p).await.unwrap();
    assert_eq!(r.groups.as_deref(), Some("admins,staff"));
    assert_eq!(s.load(&id, 61, &p).await.unwrap(), Some(r));
    let plain = SessionId::generate();
    let r = s
        .login(
            Some(&id),
            &plain,
            &SignIn::user("carol"),
            &DataChange::default(),
            seed(70),
            70,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(r.groups, None);
    assert_eq!(s.load(&plain, 71, &p).await.unwrap().unwrap().groups, None);
}

/// A "remember me" session outlives both the idle timeout and the
/// lifetime of an ordinary one, up to its own, and then ends.
async fn remembered_sessions_last_their_own_lifetime<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let id = SessionId::generate();
    let who = SignIn {
        user: "dora",
        groups: "",
        remember: Some(5000),
        browser: None,
    };
    let r = s
        .login(None, &id, &who, &DataChange::default(), seed(0), 0, &p)
        .await
        .unwrap();
    assert_eq!((r.remember, r.groups.as_deref()), (Some(5000), None));
    assert_eq!(r.expires_at(&p), 5000);
    // Idle for far longer than idle_timeout (100), past max_lifetime (1000).
    let r = s.load(&id, 1500, &p).await.unwrap().expect("still live");
    assert_eq!(r.remember, Some(5000));
    let r = s.update(&id, &set("a", "1"), None, 4000, &p).await.unwrap();
    assert_eq!(r.expires_at(&p), 5000);
    assert_eq!(s.sessions_of("dora", 4000, &p).await.unwrap().len(), 1);
    assert!(s.load(&id, 5000, &p).await.unwrap().is_none());
}

/// A request kept across a sign-in: taken once, whoever asks first; over
/// after its time; not a session; its bytes exactly as kept.
async fn kept_requests_are_taken_once<S: SessionStore>(s: Arc<S>) {
    let id = SessionId::generate();
    let request: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.keep_request(&id, &request, 1000, 600).await.unwrap();
    assert_eq!(s.count().await.unwrap(), 0, "a kept request is no session");
    assert_eq!(s.load(&id, 1000, &policy()).await.unwrap(), None);
    assert_eq!(s.take_request(&id, 1599).await.unwrap(), Some(request));
    assert_eq!(s.take_request(&id, 1599).await.unwrap(), None, "only once");

    // Over at its end, and gone even so.
    let late = SessionId::generate();
    s.keep_request(&late, b"a=1", 1000, 600).await.unwrap();
    assert_eq!(s.take_request(&late, 1600).await.unwrap(), None);
    assert_eq!(s.take_request(&late, 1000).await.unwrap(), None);

    // Never stored: nothing.
    let never = SessionId::generate();
    assert_eq!(s.take_request(&never, 1000).await.unwrap(), None);

    // Two takers at once: one gets it.
    let raced = SessionId::generate();
    s.keep_request(&raced, b"form=1", 1000, 600).await.unwrap();
    let (a, b) = tokio::join!(s.take_request(&raced, 1001), s.take_request(&raced, 1001));
    let got: Vec<Vec<u8>> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(got, [b"form=1".to_vec()]);

    // A session with the same id is another thing.
    let both = SessionId::generate();
    s.update(&both, &set("k", "v"), Some(seed(1000)), 1000, &policy())
        .await
        .unwrap();
    s.keep_request(&both, b"x=y", 1000, 600).await.unwrap();
    assert_eq!(
        s.take_request(&both, 1000).await.unwrap(),
        Some(b"x=y".to_vec())
    );
    assert!(s.load(&both, 1000, &policy()).await.unwrap().is_some());
    assert_eq!(s.count().await.unwrap(), 1);
}

/// The browser a sign-in names stays with the session through loads,
/// touches and updates, shows in the user's listing, and is capped; a
/// session signed in without one has none.
async fn browsers_live_with_the_session<S: SessionStore>(s: Arc<S>) {
    let p = policy();
    let id = SessionId::generate();
    let who = SignIn {
        browser: Some("Firefox on Linux"),
        ..SignIn::user("erin")
    };
    let r = s
        .login(None, &id, &who, &set("a", "1"), seed(0), 0, &p)
        .await
        .unwrap();
    assert_eq!(r.browser.as_deref(), Some("Firefox on Linux"));
    let touched = s.load(&id, 50, &p).await.unwrap().unwrap();
    assert_eq!(touched.browser.as_deref(), Some("Firefox on Linux"));
    let r = s.update(&id, &set("b", "2"), None, 60, &p).await.unwrap();
    assert_eq!(r.browser.as_deref(), Some("Firefox on Linux"));
    let listed = s.sessions_of("erin", 61, &p).await.unwrap();
    assert_eq!(listed[0].browser.as_deref(), Some("Firefox on Linux"));

    let long = "y".repeat(300);
    let capped = SessionId::generate();
    let who = SignIn {
        browser: Some(&long),
        ..SignIn::user("erin")
    };
    let r = s
        .login(
            None,
            &capped,
            &who,
            &DataChange::default(),
            seed(70),
            70,
            &p,
        )
        .await
        .unwrap();
    let max = sessiongate::session::browser::MAX_BROWSER_BYTES;
    assert_eq!(r.browser.as_deref(), Some(&long[..max]));
    let loaded = s.load(&capped, 71, &p).await.unwrap().unwrap();
    assert_eq!(loaded.browser.as_deref(), Some(&long[..max]));

    let plain = SessionId::generate();
    let r = s
        .login(
            Some(&id),
            &plain,
            &SignIn::user("erin"),
            &DataChange::default(),
            seed(80),
            80,
            &p,
        )
        .await
        .unwrap();
    assert_eq!(r.browser, None);
    assert_eq!(s.load(&plain, 81, &p).await.unwrap().unwrap().browser, None);
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(MemoryStore::new()).await;
                }
            )*
        }

        mod redis {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    if !redis_available() {
                        return;
                    }
                    let dir = tempfile::tempdir().unwrap();
                    let server = Redis::start(dir.path()).await;
                    let store = RedisStore::open(&server.url(), "sg:").unwrap();
                    assert!(!store.is_cluster());
                    super::$check(Arc::new(store)).await;
                }
            )*
        }

        /// One cluster for every check (making one takes seconds); each
        /// check gets its own key prefix, once without a hash tag (logins
        /// in three steps) and once with one (logins in one script).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn redis_cluster_meets_the_contract() {
            if !redis_available() {
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            let cluster = Cluster::start(dir.path()).await;
            for (n, prefix) in ["t{}:", "{t{}}:"].iter().enumerate() {
                $(
                    let key_prefix = prefix.replace("{}", &format!("{n}-{}", stringify!($check)));
                    let store = RedisStore::open(&cluster.url(), &key_prefix).unwrap();
                    assert!(store.is_cluster());
                    $check(Arc::new(store)).await;
                )*
            }
        }
    };
}

contract!(
    update_creates_only_when_asked,
    idle_and_absolute_expiry,
    loads_touch_at_most_every_touch_interval,
    peeks_never_touch,
    too_large_changes_nothing,
    login_moves_the_session_to_a_new_id,
    login_without_a_live_session_starts_from_initial,
    a_login_marks_the_old_id_for_a_while,
    a_users_sessions_are_listed_by_tag,
    ending_a_users_sessions_ends_them_all,
    one_session_ends_by_its_tag,
    expiry_takes_sessions_out_of_the_listing,
    count_counts_sessions_only,
    concurrent_updates_lose_nothing,
    changes_match_data_change_apply,
    groups_live_with_the_session,
    remembered_sessions_last_their_own_lifetime,
    kept_requests_are_taken_once,
    browsers_live_with_the_session,
);

/// Redis only: a user who logs in again and again does not grow their index
/// past the sessions that can still be alive.
#[tokio::test]
async fn redis_user_index_forgets_ended_sessions() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Redis::start(dir.path()).await;
    let s = RedisStore::open(&server.url(), "sg:").unwrap();
    let p = policy();
    for t in [0, 10, 20, 2000] {
        s.login(
            None,
            &SessionId::generate(),
            &SignIn::user("erin"),
            &DataChange::default(),
            seed(t),
            t,
            &p,
        )
        .await
        .unwrap();
    }
    assert_eq!(server.cli(&["ZCARD", "sg:user:erin"]).trim(), "1");
    let ttl: u64 = server.cli(&["TTL", "sg:user:erin"]).trim().parse().unwrap();
    assert!(ttl > 900 && ttl <= 1000, "{ttl}");
}

/// Redis only: the mark of a moved id is the old session's own key, holding
/// nothing but the time of the login, and Redis drops it after
/// `ROTATED_FOR` seconds.
#[tokio::test]
async fn redis_marks_a_moved_id_in_its_own_key_for_a_minute() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Redis::start(dir.path()).await;
    let s = RedisStore::open(&server.url(), "sg:").unwrap();
    let p = policy();
    let old = SessionId::generate();
    s.update(&old, &set("cart", "3"), Some(seed(0)), 0, &p)
        .await
        .unwrap();
    s.login(
        Some(&old),
        &SessionId::generate(),
        &SignIn::user("fay"),
        &DataChange::default(),
        seed(7),
        7,
        &p,
    )
    .await
    .unwrap();
    let key = format!("sg:{}", old.to_base64());
    assert_eq!(server.cli(&["HGETALL", &key]).trim(), "r\n7");
    let ttl: u64 = server.cli(&["TTL", &key]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= ROTATED_FOR, "{ttl}");
}

/// Redis only: a login writes the id in its user's set and in its tag's
/// set, both expiring with the session's lifetime; a logout, a listing
/// that finds it dead, and an ending take it out of both.
#[tokio::test]
async fn redis_indexes_follow_logins_logouts_and_endings() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Redis::start(dir.path()).await;
    let s = RedisStore::open(&server.url(), "sg:").unwrap();
    let p = policy();
    let tag_key = |id: &SessionId| format!("sg:tag:{}", id.log_hash());
    let member = |key: &str, id: &SessionId| {
        server
            .cli(&["ZSCORE", key, &id.to_base64()])
            .trim()
            .to_string()
    };

    let out = sign_in(&s, "gus", 0, "192.0.2.1").await;
    let kept = sign_in(&s, "gus", 0, "192.0.2.2").await;
    let ended = sign_in(&s, "gus", 0, "192.0.2.3").await;
    assert_eq!(member(&tag_key(&out), &out), "1000");
    let ttl: u64 = server.cli(&["TTL", &tag_key(&out)]).trim().parse().unwrap();
    assert!(ttl > 900 && ttl <= 1000, "{ttl}");

    s.remove(&out).await.unwrap();
    assert_eq!(member("sg:user:gus", &out), "");
    assert_eq!(server.cli(&["EXISTS", &tag_key(&out)]).trim(), "0");

    assert!(
        s.end_session_tagged(&ended.log_hash(), 1, &p)
            .await
            .unwrap()
    );
    assert_eq!(member("sg:user:gus", &ended), "");
    assert_eq!(server.cli(&["EXISTS", &tag_key(&ended)]).trim(), "0");

    // A session Redis expired by itself leaves members that the listing drops.
    server.cli(&["DEL", &format!("sg:{}", kept.to_base64())]);
    assert!(s.sessions_of("gus", 1, &p).await.unwrap().is_empty());
    assert_eq!(server.cli(&["EXISTS", "sg:user:gus"]).trim(), "0");
    assert_eq!(server.cli(&["EXISTS", &tag_key(&kept)]).trim(), "0");
}
