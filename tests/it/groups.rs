//! Who may enter: the groups file and groups from the backend, per-route
//! `allow` lists and their 403, `X-Session-Groups` to the backend and never
//! from clients, what `check` says about it, and "remember me".

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use http::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::harness::binary::command as sessiongate;
use crate::harness::form::{ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, csrf_of, form_sign_in};
use crate::harness::process::within;
use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::tls::websocket_echo;
use crate::harness::{Backend, Proxy, Reply, browser, client, config, session_cookie, set_cookies};

/// How long an edit of the groups file may take to apply: it is looked at
/// once a second.
const REFRESH_BUDGET: Duration = Duration::from_secs(5);

/// Users alice and bob; alice is in `admins`, bob in `staff`. Routes:
/// `/admin/` for admins, `/bob/` for user bob, `/members/` for anybody
/// signed in, `/` public.
fn site(dir: &Path, backend: &Backend, extra: &str) -> String {
    let users = dir.join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let groups = dir.join("groups");
    std::fs::write(&groups, "# who is who\nadmins: alice\nstaff: bob\n").unwrap();
    let mut text = config(
        &[
            ("/", &backend.url(), "public"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!(
            "{extra}\n[login]\nusers_file = \"{}\"\ngroups_file = \"{}\"\n",
            users.display(),
            groups.display()
        ),
    );
    for (path, allow) in [
        ("/admin/", "[\"group:admins\"]"),
        ("/bob/", "[\"user:bob\"]"),
    ] {
        text.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{}\"\naccess = \"login\"\nallow = {allow}\n",
            backend.url()
        ));
    }
    text
}

/// GETs `path` with `cookie` (and `accept`, if given).
async fn get(proxy: &Proxy, path: &str, cookie: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = client().get(proxy.url(path)).header("cookie", cookie);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn allow_lists_admit_by_user_and_by_group_and_refuse_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site(dir.path(), &backend, "")).await;
    let alice = form_sign_in(&proxy, "alice", ALICE_PASSWORD).await;
    let bob = form_sign_in(&proxy, "bob", BOB_PASSWORD).await;

    let resp = get(&proxy, "/admin/users", &alice, None).await;
    assert_eq!(resp.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.uri, "/admin/users");
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-session-groups").as_deref(), Some("admins"));
    assert_eq!(get(&proxy, "/bob/page", &bob, None).await.status(), 200);
    assert_eq!(
        backend.last().header("x-session-groups").as_deref(),
        Some("staff")
    );
    // Any signed-in user may enter a login route without allow.
    assert_eq!(get(&proxy, "/members/x", &bob, None).await.status(), 200);

    // Bob is no admin: a page saying who he is and how to sign out, never
    // a redirect to the login page, and nothing reaches the backend.
    let before = backend.seen().len();
    let resp = get(&proxy, "/admin/users", &bob, Some("text/html")).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(set_cookies(&resp).is_empty(), "the session stays as it is");
    let html = resp.text().await.unwrap();
    assert!(html.contains("signed in as <strong>bob</strong>"), "{html}");
    assert!(html.contains("action=\"/.sessiongate/logout\""), "{html}");
    // API clients get JSON.
    let resp = get(&proxy, "/admin/users", &bob, Some("application/json")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["user"], "bob");
    // POST too, and alice is not bob.
    let resp = client()
        .post(proxy.url("/admin/users"))
        .header("cookie", &bob)
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(get(&proxy, "/bob/page", &alice, None).await.status(), 403);
    assert_eq!(
        backend.seen().len(),
        before,
        "refused requests never reach the backend"
    );

    // Nobody signed in: the usual login redirect, not a 403.
    let resp = browser()
        .get(proxy.url("/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
}

#[tokio::test]
async fn groups_file_edits_apply_to_sessions_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site(dir.path(), &backend, "")).await;
    let bob = form_sign_in(&proxy, "bob", BOB_PASSWORD).await;
    let alice = form_sign_in(&proxy, "alice", ALICE_PASSWORD).await;
    assert_eq!(get(&proxy, "/admin/", &bob, None).await.status(), 403);

    let groups = dir.path().join("groups");
    std::fs::write(&groups, "admins: alice\nadmins: bob\nstaff: bob\n").unwrap();
    let admitted = within(REFRESH_BUDGET, async || {
        get(&proxy, "/admin/", &bob, None).await.status() == 200
    })
    .await;
    assert!(admitted.is_some(), "bob not admitted after joining admins");
    assert_eq!(
        backend.last().header("x-session-groups").as_deref(),
        Some("admins,staff")
    );

    // Taken out again: refused on his next request, same session.
    std::fs::write(&groups, "admins: bob\n").unwrap();
    let refused = within(REFRESH_BUDGET, async || {
        get(&proxy, "/admin/", &alice, None).await.status() == 403
    })
    .await;
    assert!(
        refused.is_some(),
        "alice still admitted after leaving admins"
    );

    // A broken file keeps the groups in force.
    std::fs::write(&groups, "no colon on this line\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&proxy, "/admin/", &bob, None).await.status(), 200);
}

/// A backend that signs carol in with groups at `/signin`, and tries to
/// slip a group in through the data at `/sneak`.
async fn backend_login_site(store: &str) -> (Proxy, Backend) {
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("welcome")
            .header("X-Session-Login", "carol")
            .header("X-Session-Groups", "staff, editors"),
        "/sneak" => Reply::ok("sneaky")
            .header("X-Session-Set", "groups=admins")
            .header("X-Session-Groups", "admins"),
        _ => Reply::ok("page"),
    })
    .await;
    let mut text = config(
        &[("/", &backend.url(), "public")],
        &format!("{store}\n[login]\nsource = \"backend\"\npage = \"/signin\"\n"),
    );
    for (path, group) in [("/staff/", "staff"), ("/admin/", "admins")] {
        text.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{}\"\naccess = \"login\"\nallow = [\"group:{group}\"]\n",
            backend.url()
        ));
    }
    (Proxy::start(&text).await, backend)
}

async fn backend_groups_live_with_the_session(store: &str) {
    let (proxy, backend) = backend_login_site(store).await;
    let resp = client().get(proxy.url("/signin")).send().await.unwrap();
    let carol = session_cookie(&resp).expect("signed in");
    let resp = get(&proxy, "/staff/x", &carol, None).await;
    assert_eq!(resp.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("carol"));
    assert_eq!(
        seen.header("x-session-groups").as_deref(),
        Some("editors,staff")
    );
    assert_eq!(get(&proxy, "/admin/x", &carol, None).await.status(), 403);

    // Neither the data nor a Groups header without a login adds a group.
    let resp = get(&proxy, "/sneak", &carol, None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-session-groups").is_none());
    assert_eq!(get(&proxy, "/admin/x", &carol, None).await.status(), 403);
    get(&proxy, "/staff/x", &carol, None).await;
    assert_eq!(
        backend.last().header("x-session-data").as_deref(),
        Some("groups=admins")
    );
    assert_eq!(
        backend.last().header("x-session-groups").as_deref(),
        Some("editors,staff")
    );
}

#[tokio::test]
async fn backend_groups_live_with_the_session_in_memory() {
    backend_groups_live_with_the_session("").await;
}

#[tokio::test]
async fn backend_groups_live_with_the_session_in_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    backend_groups_live_with_the_session(&redis_store(&redis.url(), "sg:")).await;
}

#[tokio::test]
async fn groups_from_clients_are_stripped_in_every_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site(dir.path(), &backend, "")).await;
    let bob = form_sign_in(&proxy, "bob", BOB_PASSWORD).await;
    let spellings = [
        "X-Session-Groups",
        "x-session-groups",
        "X_Session_Groups",
        "X.Session.Groups",
        "x-session_groups",
    ];
    for path in ["/admin/", "/"] {
        let mut req = client().get(proxy.url(path)).header("cookie", &bob);
        for name in spellings {
            req = req.header(name, "admins");
        }
        let resp = req.send().await.unwrap();
        if path == "/admin/" {
            assert_eq!(resp.status(), 403, "a header cannot make bob an admin");
            continue;
        }
        assert_eq!(resp.status(), 200);
        let seen = backend.last();
        let groups: Vec<_> = seen
            .headers
            .iter()
            .filter(|(k, _)| k.as_str().replace(['_', '.'], "-") == "x-session-groups")
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(groups, ["staff"], "only the proxy's own groups header");
    }
    // Anonymous visitors get no groups header at all.
    let mut req = client().get(proxy.url("/"));
    for name in spellings {
        req = req.header(name, "admins");
    }
    req.send().await.unwrap();
    let seen = backend.last();
    assert!(
        seen.headers.keys().all(|k| !k
            .as_str()
            .replace(['_', '.'], "-")
            .starts_with("x-session-")),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn websocket_upgrades_obey_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let (echo, seen) = websocket_echo().await;
    let mut text = site(dir.path(), &backend, "");
    text.push_str(&format!(
        "\n[[route]]\npath = \"/ws\"\nupstream = \"http://{echo}\"\naccess = \"login\"\nallow = [\"group:admins\"]\n"
    ));
    let proxy = Proxy::start(&text).await;
    let request = |cookie: &str| {
        let mut req = format!("ws://{}/ws/chat", proxy.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req
    };
    let bob = form_sign_in(&proxy, "bob", BOB_PASSWORD).await;
    match tokio_tungstenite::connect_async(request(&bob)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("bob's upgrade was not refused: {other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());

    let alice = form_sign_in(&proxy, "alice", ALICE_PASSWORD).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(request(&alice))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    use futures_util::SinkExt as _;
    ws.send("hi".into()).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap(), "hi");
    assert_eq!(
        seen.lock().unwrap()[0].get("x-session-groups").unwrap(),
        "admins"
    );
}

#[test]
fn check_says_who_may_enter_and_warns_about_names_nobody_has() {
    let dir = tempfile::tempdir().unwrap();
    let backend_url = "http://127.0.0.1:9";
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n{BOB}\n")).unwrap();
    let groups = dir.path().join("groups");
    std::fs::write(&groups, "admins: alice\nempty:\n").unwrap();
    let mut text = config(
        &[
            ("/", backend_url, "public"),
            ("/app/", backend_url, "session"),
            ("/members/", backend_url, "login"),
        ],
        &format!(
            "[login]\nusers_file = \"{}\"\ngroups_file = \"{}\"\n",
            users.display(),
            groups.display()
        ),
    );
    text.push_str(&format!(
        "\n[[route]]\npath = \"/admin/\"\nupstream = \"{backend_url}\"\naccess = \"login\"\nallow = [\"group:admins\", \"user:carol\", \"group:empty\", \"group:ghosts\"]\n"
    ));
    let path = dir.path().join("sessiongate.toml");
    std::fs::write(&path, &text).unwrap();
    let out = sessiongate(&["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "who may enter: anyone\n",
        "who may enter: anyone, with a session",
        "who may enter: any signed-in user\n",
        "who may enter: signed-in users allowed by group:admins, user:carol, group:empty, group:ghosts\n",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    for warning in [
        "warning: route /admin/: allow names user:carol, a user the users file does not list",
        "warning: route /admin/: allow names group:empty, a group nobody is in",
        "warning: route /admin/: allow names group:ghosts, a group nobody is in",
    ] {
        assert!(stderr.contains(warning), "missing {warning:?} in\n{stderr}");
    }
    assert!(!stderr.contains("group:admins"), "{stderr}");

    // allow on a route that is not `login`, or with an unknown prefix.
    for (access, allow, message) in [
        (
            "public",
            "[\"user:alice\"]",
            "allow is for access = \"login\" routes",
        ),
        (
            "session",
            "[\"group:admins\"]",
            "allow is for access = \"login\" routes",
        ),
        (
            "login",
            "[\"role:admins\"]",
            "must start with \"user:\" or \"group:\"",
        ),
        ("login", "[]", "allow = [] admits nobody"),
    ] {
        let bad = format!(
            "{text}\n[[route]]\npath = \"/bad/\"\nupstream = \"{backend_url}\"\naccess = \"{access}\"\nallow = {allow}\n"
        );
        std::fs::write(&path, &bad).unwrap();
        let out = sessiongate(&["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(message), "missing {message:?} in\n{stderr}");
        assert!(stderr.contains("sessiongate.toml:"), "{stderr}");
    }

    // A groups file that cannot be parsed stops the check.
    std::fs::write(&path, &text).unwrap();
    std::fs::write(&groups, "admins alice\n").unwrap();
    let out = sessiongate(&["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("groups:1:1: expected group"), "{stderr}");
}

/// Signs in through the form, ticking "remember me" when `remember`.
async fn sign_in_remembered(proxy: &Proxy, remember: bool) -> reqwest::Response {
    let c = browser();
    let page = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"remember\""), "{html}");
    let csrf = csrf_of(&html);
    let mut form = vec![
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("next", "/"),
        ("csrf", &csrf),
    ];
    if remember {
        form.push(("remember", "1"));
    }
    c.post(proxy.url("/.sessiongate/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn remember_me_makes_one_session_persistent_and_longer() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let extra = "idle_timeout = \"30m\"\nmax_lifetime = \"12h\"\n";
    let text =
        site(dir.path(), &backend, extra).replace("[login]\n", "[login]\nremember_me = \"30d\"\n");
    let proxy = Proxy::start(&text).await;

    let remembered = sign_in_remembered(&proxy, true).await;
    assert_eq!(remembered.status(), 303);
    let set = set_cookies(&remembered);
    assert_eq!(set.len(), 1);
    assert!(set[0].contains("; Max-Age=2592000"), "{set:?}");
    let long = session_cookie(&remembered).unwrap();

    let ordinary = sign_in_remembered(&proxy, false).await;
    let set = set_cookies(&ordinary);
    assert!(
        !set[0].contains("Max-Age"),
        "a browser-session cookie: {set:?}"
    );
    let short = session_cookie(&ordinary).unwrap();

    // Two hours idle: past idle_timeout, so only the remembered one lives.
    proxy.advance(2 * 3600);
    assert_eq!(get(&proxy, "/members/", &long, None).await.status(), 200);
    assert_eq!(get(&proxy, "/members/", &short, None).await.status(), 302);
    // Past max_lifetime, still in; past thirty days, out.
    proxy.advance(20 * 86_400);
    assert_eq!(get(&proxy, "/members/", &long, None).await.status(), 200);
    proxy.advance(10 * 86_400);
    assert_eq!(get(&proxy, "/members/", &long, None).await.status(), 302);
}

#[tokio::test]
async fn without_remember_me_the_page_offers_none() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let proxy = Proxy::start(&site(dir.path(), &backend, "")).await;
    let page = browser()
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(!html.contains("remember"), "{html}");
    // A forged "remember" field changes nothing.
    let c = browser();
    let page = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let resp = c
        .post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", "alice"),
            ("password", ALICE_PASSWORD),
            ("next", "/"),
            ("csrf", &csrf),
            ("remember", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(!set_cookies(&resp)[0].contains("Max-Age"));
}

#[tokio::test]
async fn basic_auth_users_obey_the_allow_list_and_carry_their_groups() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start().await;
    let text = site(dir.path(), &backend, "").replace(
        "allow = [\"group:admins\"]\n",
        "allow = [\"group:admins\"]\nbasic_auth = true\n",
    );
    let proxy = Proxy::start(&text).await;
    let basic = |user: &str, password: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    };
    let resp = client()
        .get(proxy.url("/admin/report"))
        .header("authorization", basic("alice", ALICE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-session-groups").as_deref(), Some("admins"));
    assert_eq!(seen.header("authorization"), None);

    let before = backend.seen().len();
    let resp = client()
        .get(proxy.url("/admin/report"))
        .header("authorization", basic("bob", BOB_PASSWORD))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"], "bob");
    assert_eq!(backend.seen().len(), before);
}
