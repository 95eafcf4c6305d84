//! Sessions outliving the process, with the real binary: a graceful restart,
//! a crash after a snapshot interval, a damaged snapshot, and a SIGTERM in
//! the middle of a request.

use std::path::Path;

use crate::harness::binary::listening_addrs;
use crate::harness::process::answers;
use crate::harness::site::{app, sign_in, site, visit};
use crate::harness::*;
use sessiongate::session::snapshot;

/// The test site with a memory store saved to `snapshot`.
fn snapshot_site(backend: &Backend, snapshot: &Path, interval: &str) -> String {
    site(
        backend,
        &[KEY],
        &format!(
            "[store]\nsnapshot = \"{}\"\nsnapshot_interval = \"{interval}\"\n",
            snapshot.display()
        ),
    )
}

/// Logs alice in and gives an anonymous visitor some data; returns both cookies.
async fn make_sessions(gateway: &RunningBinary) -> (String, String) {
    let alice = sign_in(&gateway.url("")).await;
    let anon = client().get(gateway.url("/remember")).send().await.unwrap();
    let anon = session_cookie(&anon).expect("the first session sets a cookie");
    (alice, anon)
}

async fn assert_sessions_survived(
    gateway: &RunningBinary,
    backend: &Backend,
    alice: &str,
    anon: &str,
) {
    let base = gateway.url("");
    assert_eq!(
        visit(&base, backend, "/members/home", alice).await,
        (200, Some("alice".into()), "cart=3".into())
    );
    assert_eq!(
        visit(&base, backend, "/page", anon).await,
        (200, None, "n=1".into())
    );
}

#[tokio::test]
async fn graceful_restart_keeps_sessions_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("data/sessions.snapshot");
    let body = snapshot_site(&backend, &path, "1h");

    let mut first = Binary::new(&body).start().await;
    let (alice, anon) = make_sessions(&first).await;
    assert_eq!(
        visit(&first.url(""), &backend, "/members/home", &alice)
            .await
            .0,
        200
    );
    let status = first.terminate().await;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    assert!(path.exists(), "the snapshot is written at shutdown");

    let mut second = Binary::new(&body).start().await;
    assert_sessions_survived(&second, &backend, &alice, &anon).await;
    assert!(second.terminate().await.success());
}

#[tokio::test]
async fn a_crash_after_one_snapshot_interval_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("sessions.snapshot");
    let body = snapshot_site(&backend, &path, "1s");

    let mut first = Binary::new(&body).start().await;
    let (alice, anon) = make_sessions(&first).await;
    eventually(
        "the periodic snapshot holds both sessions",
        BUDGET,
        async || {
            snapshot::read_file(&path)
                .ok()
                .flatten()
                .is_some_and(|entries| {
                    entries.len() == 2
                        && entries
                            .iter()
                            .any(|(_, r)| r.user.as_deref() == Some("alice"))
                })
        },
    )
    .await;
    first.proc.kill();

    let second = Binary::new(&body).start().await;
    assert_sessions_survived(&second, &backend, &alice, &anon).await;
}

#[tokio::test]
async fn a_damaged_snapshot_stops_the_start_and_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let path = dir.path().join("sessions.snapshot");
    let body = snapshot_site(&backend, &path, "1h");

    let mut first = Binary::new(&body).start().await;
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
        let refused = Binary::new(&body).run().await;
        assert_eq!(refused.status.code(), Some(2), "{name}: {refused:?}");
        let stderr = &refused.stderr;
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: the message names the file: {stderr}"
        );
        assert!(
            listening_addrs(&refused.stdout).is_empty(),
            "{name}: nothing listens"
        );
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
    let body = snapshot_site(&backend, &path, "1h");

    let mut gateway = Binary::new(&body).start().await;
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
    eventually("the slow request reached the backend", BUDGET, async || {
        backend.seen().iter().any(|s| s.uri == "/slow")
    })
    .await;
    gateway.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let addr = gateway.addr;
    eventually("the listener closes at SIGTERM", BUDGET, async || {
        !answers(addr)
    })
    .await;
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
