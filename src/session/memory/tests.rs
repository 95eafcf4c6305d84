//! The memory store's own behaviour, beyond the store contract every
//! store passes (`tests/it/store_contract.rs`): its count, index, eviction
//! and sweeping.

use super::*;

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

#[tokio::test]
async fn eviction_takes_anonymous_sessions_first() {
    let s = MemoryStore::new();
    let p = Policy {
        max_sessions: 10,
        ..policy()
    };
    let mut users = Vec::new();
    for i in 0..5 {
        let new = SessionId::generate();
        s.login(
            None,
            &new,
            &SignIn::user(&format!("u{i}")),
            &DataChange::default(),
            seed(0),
            0,
            &p,
        )
        .await
        .unwrap();
        users.push(new);
    }
    for i in 0..20 {
        s.update(
            &SessionId::generate(),
            &set("n", &i.to_string()),
            Some(seed(0)),
            0,
            &p,
        )
        .await
        .unwrap();
        assert!(s.len() <= 10);
    }
    for u in &users {
        assert!(
            s.load(u, 1, &p).await.unwrap().is_some(),
            "logged-in sessions survive"
        );
    }
}

#[tokio::test]
async fn the_kept_count_follows_every_insert_and_removal() {
    let s = MemoryStore::new();
    let p = policy();
    let counted = |s: &MemoryStore| {
        assert_eq!(s.size.load(Ordering::Relaxed), s.map.len());
    };
    let mut ids = Vec::new();
    for i in 0..40u64 {
        let id = SessionId::generate();
        s.update(&id, &set("n", "1"), Some(seed(i)), i, &p)
            .await
            .unwrap();
        // A second update of the same session adds nothing.
        s.update(&id, &set("n", "2"), None, i, &p).await.unwrap();
        ids.push(id);
    }
    counted(&s);
    // A login replaces its old session by a new one.
    let new = SessionId::generate();
    s.login(
        Some(&ids[0]),
        &new,
        &SignIn::user("ann"),
        &set("a", "1"),
        seed(50),
        50,
        &p,
    )
    .await
    .unwrap();
    s.login(
        None,
        &SessionId::generate(),
        &SignIn::user("ann"),
        &set("a", "1"),
        seed(50),
        50,
        &p,
    )
    .await
    .unwrap();
    counted(&s);
    s.remove(&ids[1]).await.unwrap();
    s.remove(&ids[1]).await.unwrap();
    counted(&s);
    assert_eq!(s.end_sessions_of("ann").await.unwrap(), 2);
    counted(&s);
    // Expired sessions met by a load, an update, then the sweep.
    let late = 2 + 39 + p.idle_timeout;
    assert!(s.load(&ids[2], late, &p).await.unwrap().is_none());
    assert!(
        s.update(&ids[3], &set("n", "3"), None, late, &p)
            .await
            .is_err()
    );
    counted(&s);
    assert!(s.sweep(late, &p) > 0);
    counted(&s);
    s.insert(
        ids[4],
        SessionRecord {
            created: late,
            last_seen: late,
            user: None,
            data: Arc::from("n=1"),
            ip: None,
            groups: None,
            remember: None,
            browser: None,
        },
    );
    counted(&s);
    assert_eq!(s.len(), 1);
}

#[tokio::test]
async fn the_index_follows_every_way_a_signed_in_session_leaves() {
    let s = MemoryStore::new();
    let p = Policy {
        max_sessions: 4,
        ..policy()
    };
    let none = DataChange::default();
    let sign_in = |user: &'static str, at: u64| {
        let (s, none) = (&s, &none);
        async move {
            let id = SessionId::generate();
            s.login(None, &id, &SignIn::user(user), none, seed(at), at, &p)
                .await
                .unwrap();
            id
        }
    };
    // Logout, and a login that replaces a signed-in session.
    let a = sign_in("ann", 0).await;
    s.remove(&a).await.unwrap();
    let b = sign_in("ann", 0).await;
    s.login(
        Some(&b),
        &SessionId::generate(),
        &SignIn::user("ann"),
        &none,
        seed(1),
        1,
        &p,
    )
    .await
    .unwrap();
    assert_eq!((s.index.users(), s.index.tagged()), (1, 1));
    // Expiry met by a lookup, by an update, and by the sweep.
    let c = sign_in("cat", 0).await;
    let d = sign_in("dan", 0).await;
    assert!(s.load(&c, 100, &p).await.unwrap().is_none());
    assert!(s.update(&d, &set("n", "1"), None, 100, &p).await.is_err());
    assert_eq!(s.index.tagged(), 1);
    s.sweep(101, &p);
    assert_eq!((s.index.users(), s.index.tagged()), (0, 0));
    // Eviction, once the store is full of signed-in sessions.
    for at in 200..210 {
        sign_in("eve", at).await;
        assert!(s.len() <= 4);
    }
    assert_eq!(s.index.tagged(), s.len(), "only what the map holds");
    // A restore indexes what it inserts.
    let restored = MemoryStore::new();
    for (id, record) in s.entries() {
        restored.insert(id, record);
    }
    assert_eq!(restored.index.tagged(), s.len());
    assert_eq!(restored.end_sessions_of("eve").await.unwrap(), s.len());
    assert_eq!((restored.index.users(), restored.index.tagged()), (0, 0));
}

#[tokio::test]
async fn marks_of_moved_ids_are_bounded_and_swept() {
    let s = MemoryStore::new();
    let p = Policy {
        max_sessions: 10,
        idle_timeout: 10 * ROTATED_FOR,
        max_lifetime: 100 * ROTATED_FOR,
        ..policy()
    };
    let login = |old: SessionId, at: u64| {
        let s = &s;
        async move {
            s.login(
                Some(&old),
                &SessionId::generate(),
                &SignIn::user("ann"),
                &DataChange::default(),
                seed(at),
                at,
                &p,
            )
            .await
            .unwrap();
        }
    };
    let first: Vec<SessionId> = (0..30).map(|_| SessionId::generate()).collect();
    for old in &first {
        login(*old, 0).await;
        assert!(s.rotated.len() <= 10, "{}", s.rotated.len());
    }
    assert_eq!(s.rotated.len(), 10, "a full map takes no more");
    assert_eq!(s.lookup(&first[0], 1, &p).await, Ok(Lookup::Rotated));
    assert_eq!(s.lookup(&first[29], 1, &p).await, Ok(Lookup::Absent));
    // Once the marks are over, a full map makes room for new ones.
    let later = SessionId::generate();
    login(later, ROTATED_FOR).await;
    assert_eq!(s.rotated.len(), 1);
    assert_eq!(s.lookup(&later, ROTATED_FOR, &p).await, Ok(Lookup::Rotated));
    // The sweeper drops marks that are over, and no session with them.
    s.sweep(2 * ROTATED_FOR - 1, &p);
    assert_eq!(s.rotated.len(), 1);
    s.sweep(2 * ROTATED_FOR, &p);
    assert_eq!(s.rotated.len(), 0);
    assert_eq!(s.len(), 10, "the sessions stay");
}

#[tokio::test]
async fn expired_and_evicted_sessions_are_counted_apart() {
    let s = MemoryStore::new();
    let p = Policy {
        max_sessions: 200,
        ..policy()
    };
    let ids: Vec<SessionId> = (0..3).map(|_| SessionId::generate()).collect();
    for id in &ids {
        s.update(id, &set("n", "1"), Some(seed(0)), 0, &p)
            .await
            .unwrap();
    }
    let late = p.idle_timeout;
    // One met by a lookup, one by an update, one by the sweep.
    assert!(s.load(&ids[0], late, &p).await.unwrap().is_none());
    assert!(
        s.update(&ids[1], &set("n", "2"), None, late, &p)
            .await
            .is_err()
    );
    assert_eq!(s.sweep(late, &p), 1);
    assert_eq!((s.expired_total(), s.evicted_total()), (3, 0));
    // Past max_sessions, 1% (at least one) goes at a time.
    for _ in 0..201 {
        s.update(
            &SessionId::generate(),
            &set("n", "1"),
            Some(seed(late)),
            late,
            &p,
        )
        .await
        .unwrap();
    }
    assert_eq!((s.expired_total(), s.evicted_total()), (3, 2));
}
