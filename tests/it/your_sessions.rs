//! `{prefix}/sessions`: a user's own sessions, listed and ended by the
//! user, with real sign-ins from browsers that say different things about
//! themselves, one of them through a trusted proxy from another address;
//! on the memory store and on a real redis-server.

use std::path::Path;

use serde_json::Value;

use crate::harness::form::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, csrf_of, id_of, post_login};
use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::{BUDGET, Backend, Proxy, client, config, session_cookie};
use sessiongate::session::snapshot;
use sessiongate::session::{MemoryStore, SessionStore as _};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";

const PAGE: &str = "/.sessiongate/sessions";
const END: &str = "/.sessiongate/sessions/end";
const END_OTHERS: &str = "/.sessiongate/sessions/end-others";

/// A browser that keeps cookies, calls itself `user_agent`, and, when
/// `forwarded_for` is given, comes through the trusted proxy in front.
fn browser_as(user_agent: &str, forwarded_for: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(ip) = forwarded_for {
        headers.insert("x-forwarded-for", ip.parse().unwrap());
    }
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A site with alice and bob in its users file, behind a proxy it trusts
/// for `X-Forwarded-For`, on the store `store` (empty: memory).
fn site_config(backend: &Backend, dir: &Path, store: &str) -> String {
    let users = dir.join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let audit = dir.join("audit.jsonl");
    config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!(
            "{store}\n[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[login]\nusers_file = \"{}\"\n\n[log]\naudit = \"{}\"\n",
            users.display(),
            audit.display()
        ),
    )
}

/// Signs `c` in through the form.
async fn sign_in(c: &reqwest::Client, proxy: &Proxy, user: &str, password: &str) -> String {
    let resp = post_login(c, proxy, user, password).await;
    assert_eq!(resp.status(), 303, "signing in as {user}");
    session_cookie(&resp).unwrap()
}

/// Whether `c` is let into a login route.
async fn let_in(c: &reqwest::Client, proxy: &Proxy) -> bool {
    let resp = c
        .get(proxy.url("/members/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    resp.status() == 200
}

/// The JSON listing `c` gets.
async fn listing(c: &reqwest::Client, proxy: &Proxy) -> Value {
    let resp = c
        .get(proxy.url(PAGE))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

/// `(tag, browser, client, current)` of every session listed.
fn rows(listing: &Value) -> Vec<(String, String, String, bool)> {
    listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session"].as_str().unwrap().to_owned(),
                s["browser"].as_str().unwrap_or("-").to_owned(),
                s["client"].as_str().unwrap_or("-").to_owned(),
                s["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Posts `fields` to `path` as `c`, asking for `accept`.
async fn post(
    c: &reqwest::Client,
    proxy: &Proxy,
    path: &str,
    accept: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    c.post(proxy.url(path))
        .header("accept", accept)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The whole story, on the store `store`.
async fn a_user_sees_and_ends_their_own_sessions(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site_config(&backend, dir.path(), store)).await;
    let firefox = browser_as(FIREFOX, None);
    let chrome = browser_as(CHROME, Some("198.51.100.7"));
    let script = browser_as("curl/8.8.0", None);
    let bob = browser_as(SAFARI, None);
    let f_cookie = sign_in(&firefox, &proxy, "alice", ALICE_PASSWORD).await;
    proxy.advance(10);
    let c_cookie = sign_in(&chrome, &proxy, "alice", ALICE_PASSWORD).await;
    proxy.advance(10);
    let s_cookie = sign_in(&script, &proxy, "alice", ALICE_PASSWORD).await;
    let b_cookie = sign_in(&bob, &proxy, "bob", BOB_PASSWORD).await;
    let tag = |cookie: &str| id_of(cookie).log_hash();

    // Three sessions, oldest first, each with its browser and address;
    // only the asking one is current. Bob's is not among them.
    let list = listing(&firefox, &proxy).await;
    assert_eq!(list["user"], "alice");
    assert_eq!(
        rows(&list),
        vec![
            (
                tag(&f_cookie),
                "Firefox on Linux".into(),
                "127.0.0.1".into(),
                true
            ),
            (
                tag(&c_cookie),
                "Chrome on Windows".into(),
                "198.51.100.7".into(),
                false
            ),
            (tag(&s_cookie), "curl".into(), "127.0.0.1".into(), false),
        ]
    );
    let first = &list["sessions"][0];
    assert_eq!(first["created"], proxy.now() - 20);
    assert!(first["expires"].as_u64().unwrap() > proxy.now());
    let token = list["csrf"].as_str().unwrap().to_owned();
    let other = listing(&chrome, &proxy).await;
    assert!(rows(&other)[1].3, "chrome sees itself as current");
    let chrome_token = other["csrf"].as_str().unwrap().to_owned();

    // The page: the built-in style under its CSP, every session, the
    // current one marked, a token bound to this session.
    let resp = firefox.get(proxy.url(PAGE)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert_eq!(html.matches("<li>").count(), 3, "{html}");
    assert!(html.contains("<strong>Firefox on Linux</strong> (this browser)"));
    assert!(html.contains("from 198.51.100.7"));
    assert!(html.contains("Sign out all others"));
    assert_eq!(csrf_of(&html), token);

    // A wrong token, or the token of another session, ends nothing.
    for bad in ["", "nope", chrome_token.as_str()] {
        let resp = post(&firefox, &proxy, END_OTHERS, "text/html", &[("csrf", bad)]).await;
        assert_eq!(resp.status(), 403, "token {bad:?}");
        assert!(resp.text().await.unwrap().contains("expired"));
        let resp = post(
            &firefox,
            &proxy,
            END,
            "application/json",
            &[("csrf", bad), ("session", &tag(&c_cookie))],
        )
        .await;
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "bad csrf token");
    }
    assert_eq!(rows(&listing(&firefox, &proxy).await).len(), 3);

    // Bob's tag, or a tag of nobody's, is refused; Bob stays signed in.
    for foreign in [tag(&b_cookie), "0123456789ab".into(), "../x".into()] {
        let resp = post(
            &firefox,
            &proxy,
            END,
            "application/json",
            &[("csrf", &token), ("session", &foreign)],
        )
        .await;
        assert_eq!(resp.status(), 404, "{foreign}");
        let resp = post(
            &firefox,
            &proxy,
            END,
            "text/html",
            &[("csrf", &token), ("session", &foreign)],
        )
        .await;
        assert_eq!(resp.status(), 404);
        assert!(resp.text().await.unwrap().contains("not one of yours"));
    }
    assert!(let_in(&bob, &proxy).await);
    assert_eq!(rows(&listing(&bob, &proxy).await).len(), 1);
    assert_eq!(revoked(&proxy), 0);

    // Ending one: the form's way, back to the page with a notice.
    let resp = post(
        &firefox,
        &proxy,
        END,
        "text/html",
        &[("csrf", &token), ("session", &tag(&c_cookie))],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], format!("{PAGE}?ended=1"));
    assert!(!let_in(&chrome, &proxy).await, "the chrome session ended");
    assert!(let_in(&firefox, &proxy).await);
    let page = firefox
        .get(proxy.url(&format!("{PAGE}?ended=1")))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Signed out 1 session."));
    assert_eq!(revoked(&proxy), 1);

    // All the others: the current one stays.
    let resp = post(
        &firefox,
        &proxy,
        END_OTHERS,
        "application/json",
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["ended"], 1);
    assert!(!let_in(&script, &proxy).await);
    assert!(let_in(&firefox, &proxy).await);
    assert!(let_in(&bob, &proxy).await, "bob's session is not alice's");
    assert_eq!(
        rows(&listing(&firefox, &proxy).await),
        vec![(
            tag(&f_cookie),
            "Firefox on Linux".into(),
            "127.0.0.1".into(),
            true
        )]
    );
    assert_eq!(revoked(&proxy), 2);
    let html = firefox.get(proxy.url(PAGE)).send().await.unwrap();
    assert!(!html.text().await.unwrap().contains("Sign out all others"));

    // Each ending is in the audit log, with alice as the actor.
    let audit = dir.path().join("audit.jsonl");
    let ended: Vec<String> = crate::harness::eventually("two revoked lines", BUDGET, async || {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &Value| l["event"] == "revoked")
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .await
    .iter()
    .map(|l| {
        assert_eq!(l["user"], "alice");
        assert_eq!(l["how"], "sessions_page");
        assert_eq!(l["client"], "127.0.0.1");
        l["session"].as_str().unwrap().to_owned()
    })
    .collect();
    assert_eq!(ended, [tag(&c_cookie), tag(&s_cookie)]);

    // Ending its own session signs the browser out.
    let resp = post(
        &firefox,
        &proxy,
        END,
        "application/json",
        &[("csrf", &token), ("session", &tag(&f_cookie))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let cleared = crate::harness::set_cookies(&resp);
    assert!(
        cleared.iter().any(|c| c.starts_with("sg_session=;")),
        "{cleared:?}"
    );
    assert!(!let_in(&firefox, &proxy).await);
}

/// Sessions revoked, by the proxy's counters.
fn revoked(proxy: &Proxy) -> u64 {
    proxy
        .gate()
        .metrics
        .sessions_revoked
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_user_sees_and_ends_their_own_sessions_in_memory() {
    a_user_sees_and_ends_their_own_sessions("").await;
}

#[tokio::test]
async fn a_user_sees_and_ends_their_own_sessions_in_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    a_user_sees_and_ends_their_own_sessions(&redis_store(&redis.url(), "sg:")).await;
}

#[tokio::test]
async fn nobody_signed_in_is_sent_to_sign_in_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site_config(&backend, dir.path(), "")).await;
    let c = client();
    let resp = c
        .get(proxy.url(PAGE))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        "/.sessiongate/login?next=%2F.sessiongate%2Fsessions"
    );
    let resp = c
        .get(proxy.url(PAGE))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "login required"
    );
    for path in [END, END_OTHERS] {
        let resp = c
            .post(proxy.url(path))
            .header("accept", "text/html")
            .form(&[("csrf", "x"), ("session", "0123456789ab")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    // An anonymous session is nobody either.
    let anonymous = browser_as(FIREFOX, None);
    let resp = anonymous.get(proxy.url("/")).send().await.unwrap();
    assert!(session_cookie(&resp).is_some());
    let resp = anonymous
        .get(proxy.url(PAGE))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The wrong methods.
    let resp = c.delete(proxy.url(PAGE)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    let resp = c.get(proxy.url(END)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
}

/// A backend's sign-in (`X-Session-Login`) keeps the browser too, and the
/// description survives a snapshot and a restore.
#[tokio::test]
async fn the_browser_of_a_backend_sign_in_survives_a_snapshot() {
    let backend = Backend::with(|seen| {
        if seen.uri == "/signin" {
            crate::harness::Reply::ok("welcome").header("X-Session-Login", "carol")
        } else {
            crate::harness::Reply::ok("page")
        }
    })
    .await;
    let text = config(&[("/", &backend.url(), "session")], "");
    let proxy = Proxy::start(&text).await;
    let safari = browser_as(SAFARI, None);
    let resp = safari.get(proxy.url("/signin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let list = listing(&safari, &proxy).await;
    assert_eq!(list["user"], "carol");
    assert_eq!(list["sessions"][0]["browser"], "Safari on macOS");
    assert_eq!(list["sessions"][0]["current"], true);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions.snap");
    let gate = proxy.gate();
    let memory = gate.store.as_memory().unwrap().clone();
    snapshot::save(memory, file.clone()).await.unwrap();
    let restored = MemoryStore::new();
    let policy = gate.setup().sessions.policy;
    let now = gate.clock.now();
    snapshot::restore(&restored, &file, now, &policy).unwrap();
    let sessions = restored.sessions_of("carol", now, &policy).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].browser.as_deref(), Some("Safari on macOS"));
}
