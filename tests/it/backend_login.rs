//! The application's own login page (`login.source = "backend"`) gets what
//! the built-in one has: the expired notice (`X-Session-Expired: 1`), and
//! the login throttle, fed by the backend's `X-Session-Login-Failed`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::process::within;
use crate::harness::*;

/// A backend with a login page at `/login` and a sign-in API at
/// `/api/login`: `password=right` signs the named user in, anything else
/// is reported as a failure for them.
async fn application() -> Backend {
    Backend::with(|seen| {
        let form: Vec<(String, String)> = form_urlencoded::parse(&seen.body).into_owned().collect();
        let field = |k: &str| {
            form.iter()
                .find(|(name, _)| name == k)
                .map_or("", |(_, v)| v.as_str())
                .to_string()
        };
        let signing_in = seen.method == "POST"
            && (seen.uri.starts_with("/login") || seen.uri.starts_with("/api/login"));
        if !signing_in {
            return Reply::ok("page");
        }
        let user = field("user");
        if field("password") == "right" {
            Reply::ok("welcome")
                .status(303)
                .header("X-Session-Login", &user)
        } else {
            Reply::ok("wrong password")
                .status(401)
                .header("X-Session-Login-Failed", &user)
        }
    })
    .await
}

fn gate_config(backend: &Backend, audit: &Path) -> String {
    config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!(
            "idle_timeout = \"30m\"\n\n[login]\nsource = \"backend\"\npage = \"/login\"\nmax_attempts = 3\nattempt_window = \"5m\"\n\n[log]\naudit = \"{}\"\n",
            audit.display()
        ),
    )
}

async fn post(proxy: &Proxy, path: &str, user: &str, password: &str) -> reqwest::Response {
    client()
        .post(proxy.url(path))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap()
}

/// `(event, how, user)` of the audit file's lines, once it holds `n`.
async fn audit_lines(path: &Path, n: usize) -> Vec<(String, String, String)> {
    let read = || -> Vec<(String, String, String)> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
                (text("event"), text("how"), text("user"))
            })
            .collect()
    };
    within(Duration::from_secs(10), async || {
        let got = read();
        (got.len() >= n).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("expected {n} audit lines: {:?}", read()))
}

fn line(event: &str, how: &str, user: &str) -> (String, String, String) {
    (event.into(), how.into(), user.into())
}

#[tokio::test]
async fn failures_the_backend_reports_lock_its_login_page() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let backend = application().await;
    let proxy = Proxy::start(&gate_config(&backend, &audit)).await;
    let logins = &proxy.gate().metrics.logins;

    for _ in 0..3 {
        let r = post(&proxy, "/login", "alice", "guess").await;
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("x-session-login-failed").is_none());
    }
    assert_eq!(logins.failed(), 3);
    let posts = |b: &Backend| b.seen_with("POST").len();
    assert_eq!(posts(&backend), 3);

    // Locked: the right password does not even reach the backend.
    let r = post(&proxy, "/login", "alice", "right").await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("Please wait {wait} seconds")),
        "the page names the wait: {html}"
    );
    assert_eq!(posts(&backend), 3);
    assert_eq!(logins.throttled(), 1);
    // The page itself is still shown.
    let r = client().get(proxy.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    proxy.advance(300);
    let r = post(&proxy, "/login", "alice", "right").await;
    assert_eq!(r.status(), 303);
    let cookie = session_cookie(&r).expect("signed in");
    let r = client()
        .get(proxy.url("/members/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend.last().header("x-session-user").as_deref(),
        Some("alice")
    );
    assert_eq!(logins.ok(), 1);

    let got = audit_lines(&audit, 5).await;
    assert_eq!(
        got,
        vec![
            line("login_failed", "backend", "alice"),
            line("login_failed", "backend", "alice"),
            line("login_failed", "backend", "alice"),
            line("login_throttled", "backend", "-"),
            line("login", "backend", "alice"),
        ]
    );
}

#[tokio::test]
async fn a_login_for_a_locked_user_is_refused_wherever_the_backend_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let backend = application().await;
    let proxy = Proxy::start(&gate_config(&backend, &audit)).await;

    // A sign-in API, not the login page: every request reaches the backend.
    for _ in 0..3 {
        assert_eq!(
            post(&proxy, "/api/login", "bob", "guess").await.status(),
            401
        );
    }
    let r = post(&proxy, "/api/login", "bob", "right").await;
    assert_eq!(r.status(), 429, "the backend's 303 does not go out");
    assert!(r.headers().contains_key("retry-after"));
    assert!(session_cookie(&r).is_none(), "no session for bob");
    assert!(r.headers().get("location").is_none());
    assert_eq!(proxy.gate().metrics.logins.throttled(), 1);
    let got = audit_lines(&audit, 4).await;
    assert_eq!(got[3], line("login_throttled", "backend", "bob"));
}

#[tokio::test]
async fn the_login_page_is_told_when_the_visitors_session_ended() {
    let dir = tempfile::tempdir().unwrap();
    let backend = application().await;
    let proxy = Proxy::start(&gate_config(&backend, &dir.path().join("a.jsonl"))).await;
    let r = post(&proxy, "/login", "carol", "right").await;
    let cookie = session_cookie(&r).expect("signed in");
    proxy.advance(31 * 60);

    let r = client()
        .get(proxy.url("/members/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, "/login?next=%2Fmembers%2Fx&expired=1");
    client().get(proxy.url(&to)).send().await.unwrap();
    assert_eq!(
        backend.last().header("x-session-expired").as_deref(),
        Some("1")
    );

    // The cookie alone says so too.
    client()
        .get(proxy.url("/login"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        backend.last().header("x-session-expired").as_deref(),
        Some("1")
    );

    // Not from a client, and not on other pages.
    client()
        .get(proxy.url("/login"))
        .header("x-session-expired", "1")
        .header("X_Session_Expired", "1")
        .send()
        .await
        .unwrap();
    let seen = backend.last();
    assert_eq!(seen.uri, "/login");
    assert!(seen.header("x-session-expired").is_none(), "{seen:?}");
    client()
        .get(proxy.url("/other?expired=1"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(backend.last().header("x-session-expired").is_none());
}
