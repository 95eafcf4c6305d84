//! Sessions outliving the process, with the real binary: a graceful restart,
//! a crash after a snapshot interval, a damaged snapshot, and a SIGTERM in
//! the middle of a request.

mod support;

use std::path::Path;
use std::time::Duration;

use sessiongate::session::snapshot;
use support::process::{BUDGET, Gateway, answers, eventually};
use support::*;

/// A backend that logs a visitor in on `/signin` and remembers something
/// for an anonymous one on `/remember`.
async fn app() -> Backend {
    Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("welcome")
            .header("X-Session-Login", "alice")
            .header("X-Session-Set", "cart=3"),
        "/remember" => Reply::ok("noted").header("X-Session-Set", "n=1"),
        "/slow" => Reply {
            delay: Some(Duration::from_secs(2)),
            ..Reply::ok("finally")
        },
        _ => Reply::ok("page"),
    })
    .await
}

/// `/members/` needs a login, everything else a session.
fn site(backend: &Backend, snapshot: &Path, interval: &str) -> String {
    format!(
        "{}\n[store]\nsnapshot = \"{}\"\nsnapshot_interval = \"{interval}\"\n",
        config(
            &[
                ("/members/", &backend.url(), "login"),
                ("/", &backend.url(), "session"),
            ],
            "",
        ),
        snapshot.display()
    )
}

/// GETs `path` with `cookie`; returns the status and what the backend was
/// told about the session (user, data) when it was forwarded.
async fn visit(
    gateway: &Gateway,
    backend: &Backend,
    path: &str,
    cookie: &str,
) -> (u16, Option<String>, String) {
    let before = backend.seen().len();
    let resp = client()
        .get(gateway.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if backend.seen().len() == before {
        return (status, None, String::new());
    }
    let seen = backend.last();
    (
        status,
        seen.header("x-session-user"),
        seen.header("x-session-data").unwrap_or_default(),
    )
}

/// Logs alice in and gives an anonymous visitor some data; returns both cookies.
async fn make_sessions(gateway: &Gateway) -> (String, String) {
    let c = client();
    let login = c.get(gateway.url("/signin")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let alice = session_cookie(&login).expect("login sets a cookie");
    let anon = c.get(gateway.url("/remember")).send().await.unwrap();
    let anon = session_cookie(&anon).expect("the first session sets a cookie");
    (alice, anon)
}

async fn assert_sessions_survived(gateway: &Gateway, backend: &Backend, alice: &str, anon: &str) {
    assert_eq!(
        visit(gateway, backend, "/members/home", alice).await,
        (200, Some("alice".into()), "cart=3".into())
    );
    assert_eq!(
        visit(gateway, backend, "/page", anon).await,
        (200, None, "n=1".into())
    );
}

#[tokio::test]
async fn graceful_restart_keeps_sessions_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("data/sessions.snapshot");
    let body = site(&backend, &path, "1h");

    let first = Gateway::start(dir.path(), "first", &body).await;
    let (alice, anon) = make_sessions(&first).await;
    assert_eq!(
        visit(&first, &backend, "/members/home", &alice).await.0,
        200
    );
    let status = first.terminate().await;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(path.exists(), "the snapshot is written at shutdown");

    let second = Gateway::start(dir.path(), "second", &body).await;
    assert_sessions_survived(&second, &backend, &alice, &anon).await;
    assert!(second.terminate().await.success());
}

#[tokio::test]
async fn a_crash_after_one_snapshot_interval_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("sessions.snapshot");
    let body = site(&backend, &path, "1s");

    let mut first = Gateway::start(dir.path(), "first", &body).await;
    let (alice, anon) = make_sessions(&first).await;
    eventually("the periodic snapshot holds both sessions", BUDGET, || {
        snapshot::read_file(&path)
            .ok()
            .flatten()
            .is_some_and(|entries| {
                entries.len() == 2
                    && entries
                        .iter()
                        .any(|(_, r)| r.user.as_deref() == Some("alice"))
            })
    })
    .await;
    first.proc.kill();

    let second = Gateway::start(dir.path(), "second", &body).await;
    assert_sessions_survived(&second, &backend, &alice, &anon).await;
}

#[tokio::test]
async fn a_damaged_snapshot_stops_the_start_and_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("sessions.snapshot");
    let body = site(&backend, &path, "1h");

    let first = Gateway::start(dir.path(), "first", &body).await;
    make_sessions(&first).await;
    assert!(first.terminate().await.success());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    for (name, content) in [
        ("flipped", bytes.clone()),
        ("truncated", bytes[..middle].to_vec()),
        ("garbage", b"not a snapshot at all\n".to_vec()),
    ] {
        std::fs::write(&path, &content).unwrap();
        let mut refused = Gateway::spawn(dir.path(), name, &body);
        let status = refused.proc.wait().await;
        assert_eq!(status.code(), Some(2), "{name}: {}", refused.proc.output());
        let stderr = refused.proc.stderr();
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: the message names the file: {stderr}"
        );
        assert!(!answers(refused.addr), "{name}: nothing listens");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            content,
            "{name}: the file is left as it was"
        );
    }
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_saves() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("sessions.snapshot");
    let body = site(&backend, &path, "1h");

    let mut gateway = Gateway::start(dir.path(), "gateway", &body).await;
    let (alice, _) = make_sessions(&gateway).await;
    let in_flight = tokio::spawn({
        let url = gateway.url("/slow");
        let alice = alice.clone();
        async move {
            let resp = client()
                .get(url)
                .header("cookie", alice)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    });
    eventually("the slow request reached the backend", BUDGET, || {
        backend.seen().iter().any(|s| s.uri == "/slow")
    })
    .await;
    gateway.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let addr = gateway.addr;
    eventually("the listener closes at SIGTERM", BUDGET, || !answers(addr)).await;
    assert!(
        !in_flight.is_finished(),
        "the request is still in flight while the listener is closed"
    );
    assert_eq!(in_flight.await.unwrap(), (200, "finally".to_string()));
    let status = gateway.proc.wait().await;
    assert!(status.success(), "exit 0, got {status}");
    let saved = snapshot::read_file(&path).unwrap().unwrap();
    assert!(
        saved
            .iter()
            .any(|(_, r)| r.user.as_deref() == Some("alice"))
    );
}
