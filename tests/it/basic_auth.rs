//! HTTP Basic on `basic_auth` login routes, for scripts and cron jobs:
//! checked against the users file under the login form's throttle, served
//! without a session or a cookie, `Authorization` never forwarded; browsers
//! without credentials still go to the login page, other clients get a
//! Basic challenge. Driven with reqwest, curl and a WebSocket client against
//! a backend that records what it received.

use std::path::{Path, PathBuf};

use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use serde_json::Value;
use sessiongate::session::SessionStore as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::harness::form::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, form_sign_in};
use crate::harness::tls::websocket_echo;
use crate::harness::{
    BUDGET, Backend, Binary, Proxy, Reply, client, config, eventually, set_cookies,
};

/// What a browser sends when it navigates.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A proxy with `/scripts/` (login, basic_auth) and `/members/` (login)
/// to a recording backend, `/` (public) to it too, and `/ws` (login,
/// basic_auth) to a WebSocket echo; the users file holds alice and bob.
struct Site {
    proxy: Proxy,
    backend: Backend,
    users: PathBuf,
    audit: PathBuf,
    ws: std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
    _dir: tempfile::TempDir,
}

async fn site(login_extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        // A backend that tries to start a session on a script's request.
        "/scripts/sign-me-in" => Reply::ok("ok")
            .header("X-Session-Login", "mallory")
            .header("X-Session-Set", "k=v"),
        _ => Reply::ok("ok"),
    })
    .await;
    let (echo, ws) = websocket_echo().await;
    let mut text = config(
        &[
            ("/", &backend.url(), "public"),
            ("/members/", &backend.url(), "login"),
            ("/scripts/", &backend.url(), "login"),
            ("/ws", &format!("http://{echo}"), "login"),
        ],
        &format!(
            "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[login]\nusers_file = \"{}\"\nbasic_realm = \"legacy scripts\"\n{login_extra}\n\n[log]\naudit = \"{}\"\n",
            users.display(),
            audit.display()
        ),
    );
    for path in ["/scripts/", "/ws"] {
        let route = format!("path = \"{path}\"\n");
        let at = text.find(&route).unwrap() + route.len();
        text = format!("{}basic_auth = true\n{}", &text[..at], &text[at..]);
    }
    Site {
        proxy: Proxy::start(&text).await,
        backend,
        users,
        audit,
        ws,
        _dir: dir,
    }
}

impl Site {
    /// `GET path` accepting `accept` (curl's is `*/*`), from `client_ip`
    /// (told to the proxy by X-Forwarded-For, which it trusts from
    /// 127.0.0.1).
    fn get(&self, path: &str, accept: &str, client_ip: &str) -> reqwest::RequestBuilder {
        client()
            .get(self.proxy.url(path))
            .header("accept", accept)
            .header("x-forwarded-for", client_ip)
    }

    async fn basic(&self, user: &str, password: &str, client_ip: &str) -> reqwest::Response {
        self.get("/scripts/report", "*/*", client_ip)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
    }

    async fn stored_sessions(&self) -> usize {
        self.proxy.gate().store.count().await.unwrap()
    }

    /// `(ok, failed, throttled)` logins so far.
    fn logins(&self) -> (u64, u64, u64) {
        let l = &self.proxy.gate().metrics.logins;
        (l.ok(), l.failed(), l.throttled())
    }
}

/// A 401 with the Basic challenge of the realm configured.
fn assert_challenged(resp: &reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"legacy scripts\", charset=\"UTF-8\""
    );
    assert!(set_cookies(resp).is_empty(), "{:?}", set_cookies(resp));
}

/// The audit file's lines, parsed, once it holds at least `n`.
async fn audit_lines(path: &Path, n: usize) -> Vec<Value> {
    eventually("the audit lines", BUDGET, async || {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines.len() >= n).then_some(lines)
    })
    .await
}

#[tokio::test]
async fn right_credentials_pass_without_a_session_and_without_authorization() {
    let site = site("").await;
    for round in 0..2 {
        let resp = site.basic("alice", ALICE_PASSWORD, "192.0.2.10").await;
        assert_eq!(resp.status(), 200, "round {round}");
        assert!(set_cookies(&resp).is_empty(), "{:?}", set_cookies(&resp));
        let seen = site.backend.last();
        assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
        assert_eq!(seen.header("authorization"), None);
        for absent in [
            "x-session-data",
            "x-session-created",
            "x-session-expires",
            "x-session-new",
        ] {
            assert_eq!(seen.header(absent), None, "{absent}: there is no session");
        }
    }
    assert_eq!(site.stored_sessions().await, 0);
    // The second request was a cache hit: one login counted, not two.
    assert_eq!(site.logins(), (1, 0, 0));
    assert_eq!(site.proxy.gate().setup().login.basic().cache().len(), 1);

    // What the backend answers cannot start a session either.
    let resp = site
        .get("/scripts/sign-me-in", "*/*", "192.0.2.10")
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookies(&resp).is_empty(), "{:?}", set_cookies(&resp));
    assert!(resp.headers().get("x-session-login").is_none());
    assert_eq!(site.stored_sessions().await, 0);
}

#[tokio::test]
async fn a_signed_in_session_is_served_as_before_and_authorization_still_goes() {
    let site = site("").await;
    let cookie = form_sign_in(&site.proxy, "bob", BOB_PASSWORD).await;
    let resp = site
        .get("/scripts/x", "*/*", "192.0.2.11")
        .header("cookie", &cookie)
        .basic_auth("alice", Some("not alice's password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = site.backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("bob"));
    assert!(
        seen.header("x-session-created").is_some(),
        "a session's headers"
    );
    assert_eq!(seen.header("authorization"), None);
    // The credentials were not even looked at.
    assert_eq!(site.logins(), (1, 0, 0));

    // Routes without basic_auth pass Authorization on, as before.
    let resp = site
        .get("/other", "*/*", "192.0.2.11")
        .header("authorization", "Bearer abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        site.backend.last().header("authorization").as_deref(),
        Some("Bearer abc")
    );
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_are_challenged() {
    let site = site("max_attempts = 10").await;
    let resp = site.basic("alice", "wrong", "192.0.2.20").await;
    assert_challenged(&resp);
    let resp = site.basic("nobody", ALICE_PASSWORD, "192.0.2.20").await;
    assert_challenged(&resp);
    let resp = site.basic("alice", "", "192.0.2.20").await;
    assert_challenged(&resp);
    assert_eq!(site.logins(), (0, 3, 0));
    assert!(site.backend.seen().is_empty());

    // JSON clients get the challenge with a JSON body.
    let resp = site
        .get("/scripts/report", "application/json", "192.0.2.20")
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_challenged(&resp);
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn the_throttle_counts_per_user_and_per_address() {
    let site = site("max_attempts = 3").await;
    // Alice's password guessed from three addresses: alice is locked,
    // from a fourth address too, and even with the right password.
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert_challenged(&site.basic("alice", "guess", ip).await);
    }
    let resp = site.basic("alice", ALICE_PASSWORD, "192.0.2.4").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Bob, from a fresh address, is not.
    assert_eq!(
        site.basic("bob", BOB_PASSWORD, "192.0.2.4").await.status(),
        200
    );

    // One address trying three names is locked for every name.
    for user in ["carol", "dave", "erin"] {
        assert_challenged(&site.basic(user, "guess", "198.51.100.7").await);
    }
    let resp = site.basic("bob", BOB_PASSWORD, "198.51.100.7").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(site.logins(), (1, 6, 2));

    // The window passes: alice gets in again.
    site.proxy.advance(301);
    assert_eq!(
        site.basic("alice", ALICE_PASSWORD, "192.0.2.4")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn without_credentials_browsers_are_sent_to_the_login_page_and_scripts_challenged() {
    let site = site("").await;
    // curl's Accept.
    assert_challenged(
        &site
            .get("/scripts/a?b=1", "*/*", "192.0.2.30")
            .send()
            .await
            .unwrap(),
    );
    // No Accept at all.
    let resp = client()
        .get(site.proxy.url("/scripts/a"))
        .send()
        .await
        .unwrap();
    assert_challenged(&resp);
    // A form post from a browser.
    let resp = client()
        .post(site.proxy.url("/scripts/a"))
        .header("accept", BROWSER_ACCEPT)
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_challenged(&resp);
    // A browser navigating.
    let resp = client()
        .get(site.proxy.url("/scripts/a?b=1"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()["location"],
        "/.sessiongate/login?next=%2Fscripts%2Fa%3Fb%3D1"
    );
    assert!(resp.headers().get("www-authenticate").is_none());
    // Other login routes are as they were: curl is redirected there.
    let resp = site
        .get("/members/a", "*/*", "192.0.2.30")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(site.backend.seen().is_empty());
}

#[tokio::test]
async fn other_schemes_count_as_no_credentials() {
    let site = site("").await;
    let resp = site
        .get("/scripts/a", "*/*", "192.0.2.40")
        .header("authorization", "Bearer eyJhbGciOi.x.y")
        .send()
        .await
        .unwrap();
    assert_challenged(&resp);
    let resp = site
        .get("/scripts/a", BROWSER_ACCEPT, "192.0.2.40")
        .header("authorization", "Bearer eyJhbGciOi.x.y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(site.logins(), (0, 0, 0));
}

#[tokio::test]
async fn malformed_credentials_are_challenged_and_not_counted() {
    let site = site("").await;
    let b64 = |raw: &[u8]| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    for value in [
        b64(b"alice has no colon"),
        "Basic %%%not base64%%%".to_string(),
        b64(b"\xffalice:\xfe"),
        "Basic".to_string(),
    ] {
        let resp = site
            .get("/scripts/a", BROWSER_ACCEPT, "192.0.2.50")
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        // Credentials were offered: no redirect, even for a browser.
        assert_challenged(&resp);
    }
    assert_eq!(site.logins(), (0, 0, 0));
    assert!(site.backend.seen().is_empty());
}

#[tokio::test]
async fn a_changed_password_stops_working_once_the_users_file_is_read_again() {
    let site = site("").await;
    assert_eq!(
        site.basic("alice", ALICE_PASSWORD, "192.0.2.60")
            .await
            .status(),
        200
    );
    let gate = site.proxy.gate();
    let users = gate.setup().login.users.clone().unwrap();
    let before = users.generation();
    // The cached password still passes: nothing has changed yet.
    assert_eq!(
        site.basic("alice", ALICE_PASSWORD, "192.0.2.60")
            .await
            .status(),
        200
    );
    assert_eq!(site.logins(), (1, 0, 0));

    let new_hash = sessiongate::login::hash_password("a new password").unwrap();
    std::fs::write(&site.users, format!("alice:{new_hash}\n{BOB}\n")).unwrap();
    eventually("the users file is read again", BUDGET, async || {
        users.generation() != before
    })
    .await;
    assert_challenged(&site.basic("alice", ALICE_PASSWORD, "192.0.2.60").await);
    assert_eq!(
        site.basic("alice", "a new password", "192.0.2.60")
            .await
            .status(),
        200
    );
    assert_eq!(site.logins(), (2, 1, 0));
}

#[tokio::test]
async fn checks_are_audited_and_cache_hits_are_not() {
    let site = site("max_attempts = 2").await;
    assert_eq!(
        site.basic("alice", ALICE_PASSWORD, "192.0.2.70")
            .await
            .status(),
        200
    );
    assert_eq!(
        site.basic("alice", ALICE_PASSWORD, "192.0.2.70")
            .await
            .status(),
        200
    );
    assert_challenged(&site.basic("bob", "guess", "192.0.2.71").await);
    assert_challenged(&site.basic("bob", "guess", "192.0.2.71").await);
    let resp = site.basic("bob", BOB_PASSWORD, "192.0.2.71").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    let lines = audit_lines(&site.audit, 4).await;
    let summary: Vec<(String, String, String, String, Value)> = lines
        .iter()
        .map(|l| {
            let text = |k: &str| l[k].as_str().unwrap_or("-").to_string();
            (
                text("event"),
                text("how"),
                text("user"),
                text("client"),
                l["session"].clone(),
            )
        })
        .collect();
    let line = |event: &str, user: &str, client: &str| {
        (
            event.into(),
            "basic".into(),
            user.into(),
            client.into(),
            Value::Null,
        )
    };
    assert_eq!(
        summary,
        [
            line("login", "alice", "192.0.2.70"),
            line("login_failed", "bob", "192.0.2.71"),
            line("login_failed", "bob", "192.0.2.71"),
            line("login_throttled", "bob", "192.0.2.71"),
        ]
    );
    let text = std::fs::read_to_string(&site.audit).unwrap();
    assert!(
        !text.contains(ALICE_PASSWORD) && !text.contains("guess"),
        "{text}"
    );
}

#[tokio::test]
async fn a_websocket_handshake_may_carry_basic_credentials() {
    let site = site("").await;
    let mut req = format!("ws://{}/ws/feed", site.proxy.addr)
        .into_client_request()
        .unwrap();
    let auth = {
        use base64::Engine as _;
        let pair = format!("alice:{ALICE_PASSWORD}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    req.headers_mut()
        .insert("authorization", auth.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "ping"
    );
    ws.close(None).await.unwrap();
    let handshake = site.ws.lock().unwrap()[0].clone();
    assert_eq!(handshake.get("x-session-user").unwrap(), "alice");
    assert!(handshake.get("authorization").is_none());

    // Without credentials, the handshake is challenged.
    let req = format!("ws://{}/ws/feed", site.proxy.addr)
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert!(resp.headers().contains_key("www-authenticate"));
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

/// The real binary, and curl as a cron job would run it.
#[tokio::test]
async fn curl_with_and_without_credentials_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n")).unwrap();
    let backend = Backend::start().await;
    let mut text = config(
        &[("/", &backend.url(), "login")],
        &format!("[login]\nusers_file = \"{}\"\n", users.display()),
    );
    text.push_str("basic_auth = true\n");
    let mut proxy = Binary::new(&text).start().await;
    let url = proxy.url("/cron/run");
    // The response head curl prints, lower-cased; curl runs as a child
    // process, so the backend in this test's runtime can answer meanwhile.
    let curl = async |extra: &[&str]| {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D", "-"])
            .args(extra)
            .arg(&url)
            .output()
            .await
            .expect("curl runs");
        String::from_utf8(out.stdout).unwrap().to_ascii_lowercase()
    };
    let head = curl(&[]).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("www-authenticate: basic realm=\"sessiongate\""),
        "{head}"
    );
    let head = curl(&["-u", &format!("alice:{ALICE_PASSWORD}")]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("set-cookie"), "{head}");
    assert_eq!(
        backend.last().header("x-session-user").as_deref(),
        Some("alice")
    );
    assert_eq!(backend.last().header("authorization"), None);
    let head = curl(&["-u", "alice:wrong"]).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    proxy.terminate().await;
}

#[test]
fn check_refuses_basic_auth_where_it_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| {
        let path = dir.path().join("sessiongate.toml");
        std::fs::write(&path, body).unwrap();
        let out = crate::harness::binary::command(&["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let public = config(&[("/", "http://127.0.0.1:9", "public")], "") + "basic_auth = true\n";
    let (code, stderr) = check(&public);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("basic_auth needs access = \"login\""),
        "{stderr}"
    );
    let backend = config(
        &[("/", "http://127.0.0.1:9", "login")],
        "[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n",
    ) + "basic_auth = true\n";
    let (code, stderr) = check(&backend);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("login.source = \"backend\""), "{stderr}");
    let quote = config(
        &[("/", "http://127.0.0.1:9", "login")],
        "[login]\nbasic_realm = 'say \"hi\"'\n",
    ) + "basic_auth = true\n";
    let (code, stderr) = check(&quote);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("login.basic_realm"), "{stderr}");
    // A valid one says which routes take Basic, and the realm.
    let valid = config(
        &[("/", "http://127.0.0.1:9", "login")],
        "[login]\nbasic_realm = \"ops\"\n",
    ) + "basic_auth = true\n";
    let path = dir.path().join("sessiongate.toml");
    std::fs::write(&path, valid).unwrap();
    let out = crate::harness::binary::command(&["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.contains("access=login +basic"), "{summary}");
    assert!(summary.contains("basic auth: realm \"ops\""), "{summary}");
}
