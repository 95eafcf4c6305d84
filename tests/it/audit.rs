//! The audit log (`log.audit`): one JSON line per sign-in, refusal,
//! logout, revocation and removal from the users file, none holding a
//! password, a cookie or a session id; written off the request path,
//! complete after a graceful stop, and reopened after logrotate's rename
//! and SIGHUP.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::harness::form::{ALICE, ALICE_PASSWORD, BOB, form_sign_in, id_of, post_login};
use crate::harness::process::within;
use crate::harness::site::{app, sign_in, site};
use crate::harness::{Backend, Binary, KEY, Proxy, Reply, browser, client, config, session_cookie};
use nix::sys::signal::Signal;
use serde_json::Value;
use sessiongate::config::{AuditTarget, Config};
use sessiongate::session::{LogTag, SessionStore};

/// How long a line may take to reach the file.
const LINE_BUDGET: Duration = Duration::from_secs(10);

/// The lines of an audit file, parsed.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l} ({e})")))
        .collect()
}

/// Waits until the audit file holds at least `n` lines; returns them.
async fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let got = within(LINE_BUDGET, async || {
        let got = lines(path);
        (got.len() >= n).then_some(got)
    })
    .await;
    got.unwrap_or_else(|| {
        let got = lines(path);
        panic!(
            "{} audit lines after {LINE_BUDGET:?}, expected {n}: {got:#?}",
            got.len()
        )
    })
}

/// `(event, how, user, session)` of a line, `-` for null.
fn summary(line: &Value) -> (String, String, String, String) {
    let text = |k: &str| line[k].as_str().unwrap_or("-").to_string();
    (text("event"), text("how"), text("user"), text("session"))
}

fn expect(event: &str, how: &str, user: &str, session: &str) -> (String, String, String, String) {
    (event.into(), how.into(), user.into(), session.into())
}

#[tokio::test]
async fn every_event_leaves_one_line_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let audit = dir.path().join("audit/audit.jsonl");
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("hi").header("X-Session-Login", "dora"),
        "/signout" => Reply::ok("bye").header("X-Session-Logout", "1"),
        _ => Reply::ok("page"),
    })
    .await;
    let text = config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!(
            "\n[login]\nusers_file = \"{}\"\nmax_attempts = 3\n\n[log]\naudit = \"{}\"\n",
            users.display(),
            audit.display()
        ),
    );
    let proxy = Proxy::start(&text).await;
    let gate = proxy.gate();
    assert!(gate.audit.is_on());
    let wrong = "not-the-password-7c1e";
    let mut cookies = Vec::new();
    let mut expected = Vec::new();

    // The form: a wrong password, a sign-in, a logout.
    let r = post_login(&browser(), &proxy, "alice", wrong).await;
    assert_eq!(r.status(), 401);
    expected.push(expect("login_failed", "form", "alice", "-"));
    let c = browser();
    let r = post_login(&c, &proxy, "alice", ALICE_PASSWORD).await;
    assert_eq!(r.status(), 303);
    let first = session_cookie(&r).unwrap();
    let tag = id_of(&first).log_hash();
    expected.push(expect("login", "form", "alice", &tag));
    let r = c
        .get(proxy.url("/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    expected.push(expect("logout", "form", "alice", &tag));
    cookies.push(first);

    // The backend's control headers.
    let dora = sign_in(&format!("http://{}", proxy.addr)).await;
    let tag = id_of(&dora).log_hash();
    expected.push(expect("login", "backend", "dora", &tag));
    let r = client()
        .get(proxy.url("/signout"))
        .header("cookie", &dora)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expected.push(expect("logout", "backend", "dora", &tag));
    cookies.push(dora);

    // The admin API's two revocations, as its endpoints make them.
    let operator: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
    let everywhere = form_sign_in(&proxy, "alice", ALICE_PASSWORD).await;
    expected.push(expect(
        "login",
        "form",
        "alice",
        &id_of(&everywhere).log_hash(),
    ));
    let ended = gate.store.end_sessions_of("alice").await.unwrap();
    assert_eq!(ended, 1);
    gate.audit.revoked(Some("alice"), None, ended, operator);
    expected.push(expect("revoked", "admin", "alice", "-"));
    let one = form_sign_in(&proxy, "alice", ALICE_PASSWORD).await;
    let tag = id_of(&one).log_hash();
    expected.push(expect("login", "form", "alice", &tag));
    let policy = gate.setup().sessions.policy;
    let now = gate.clock.now();
    assert!(
        gate.store
            .end_session_tagged(&tag, now, &policy)
            .await
            .unwrap()
    );
    gate.audit.revoked(None, LogTag::parse(&tag), 1, operator);
    expected.push(expect("revoked", "admin", "-", &tag));
    cookies.extend([everywhere, one]);

    // Throttling: this address has failed once; two more, then locked.
    for _ in 0..2 {
        let r = post_login(&browser(), &proxy, "bob", wrong).await;
        assert_eq!(r.status(), 401);
        expected.push(expect("login_failed", "form", "bob", "-"));
    }
    let r = post_login(&browser(), &proxy, "bob", wrong).await;
    assert_eq!(r.status(), 429);
    expected.push(expect("login_throttled", "form", "bob", "-"));

    // The users file.
    std::fs::write(&users, format!("{BOB}\n")).unwrap();
    expected.push(expect("user_removed", "users_file", "alice", "-"));

    let got = wait_for_lines(&audit, expected.len()).await;
    assert_eq!(got.iter().map(summary).collect::<Vec<_>>(), expected);
    let text = std::fs::read_to_string(&audit).unwrap();
    for secret in [ALICE_PASSWORD, wrong, KEY] {
        assert!(!text.contains(secret), "{secret:?} in the audit log");
    }
    for cookie in &cookies {
        let (_, value) = cookie.split_once('=').unwrap();
        assert!(!text.contains(value), "a cookie value in the audit log");
        let id = id_of(cookie).to_base64();
        assert!(!text.contains(&id), "a session id in the audit log");
        assert!(
            !text.contains(&id[..16]),
            "part of a session id in the audit log"
        );
    }
    for line in &got {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in ["time", "event", "user", "client", "session", "how"] {
            assert!(keys.contains(&key), "{key} missing from {line}");
        }
        let time = line["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    }
    let client_of =
        |event: &str| got.iter().find(|l| l["event"] == event).unwrap()["client"].clone();
    assert_eq!(client_of("login"), "127.0.0.1");
    assert_eq!(client_of("user_removed"), Value::Null);
    let ended_of = |event: &str| got.iter().find(|l| l["event"] == event).unwrap()["ended"].clone();
    assert_eq!(ended_of("revoked"), 1);
    assert_eq!(ended_of("user_removed"), 0, "alice had no session left");
    assert_eq!(gate.audit.dropped(), 0);
}

#[tokio::test]
async fn the_binary_reopens_the_file_on_sighup_and_loses_nothing_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let backend = app().await;
    let audit = dir.path().join("audit.jsonl");
    let rotated = dir.path().join("audit.jsonl.1");
    let body = format!(
        "{}\n[log]\naudit = \"{}\"\n",
        site(&backend, &[KEY], ""),
        audit.display()
    );
    let mut gateway = Binary::new(&body).start().await;
    let base = gateway.url("");
    let before = sign_in(&base).await;
    wait_for_lines(&audit, 1).await;

    // logrotate: rename, then SIGHUP; the reload creates the file again.
    std::fs::rename(&audit, &rotated).unwrap();
    gateway.signal(Signal::SIGHUP);
    gateway
        .proc
        .until("reopening the audit file", async || audit.exists())
        .await;
    let after: Vec<String> = futures_util::future::join_all((0..20).map(|_| sign_in(&base))).await;

    // A graceful stop writes every line out before the process exits.
    let status = gateway.terminate().await;
    assert!(status.success(), "{status}");
    let old = lines(&rotated);
    let new = lines(&audit);
    assert_eq!(old[0]["session"], id_of(&before).log_hash());
    assert!(!new.is_empty(), "nothing went to the reopened file");
    // Every sign-in has its line, in one file or the other (one racing
    // the reopen itself may still land in the renamed file).
    let mut tags: Vec<&str> = old
        .iter()
        .chain(&new)
        .map(|l| l["session"].as_str().unwrap())
        .collect();
    tags.sort_unstable();
    let mut expected: Vec<String> = after
        .iter()
        .chain([&before])
        .map(|c| id_of(c).log_hash())
        .collect();
    expected.sort_unstable();
    assert_eq!(tags, expected);
}

#[test]
fn log_audit_is_a_path_or_stdout_and_off_unless_set() {
    let parse = |extra: &str| {
        config(
            &[("/", "http://127.0.0.1:9", "public")],
            &format!("[log]\n{extra}\n"),
        )
        .parse::<Config>()
    };
    assert_eq!(parse("").unwrap().log.audit, None);
    assert_eq!(
        parse("audit = \"stdout\"").unwrap().log.audit,
        Some(AuditTarget::Stdout)
    );
    assert_eq!(
        parse("audit = \"logs/audit.jsonl\"").unwrap().log.audit,
        Some(AuditTarget::File("logs/audit.jsonl".into()))
    );
    for bad in ["audit = \"\"", "audit = \"logs/\""] {
        let err = parse(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            err.to_string()
                .contains("log.audit must be a file path or \"stdout\""),
            "{bad}: {err}"
        );
    }
    assert!(parse("audit = 3").is_err());
}
