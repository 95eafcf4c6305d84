//! The built-in login: page, form, CSRF, throttling, safe `next`, logout,
//! and backend-driven login, driven like a browser with a cookie jar.

use std::path::Path;

use crate::harness::*;

/// Writes a users file with `alice:wonderland` and `bob:builder`.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("users");
    let text = format!(
        "# test users\nalice:{}\nbob:{}\n",
        sessiongate::login::hash_password("wonderland").unwrap(),
        sessiongate::login::hash_password("builder").unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Site {
    backend: Backend,
    proxy: Proxy,
    /// The config text the proxy runs, for reloads.
    text: String,
    _dir: tempfile::TempDir,
}

async fn site(login_extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/remember" => Reply::ok("noted").header("X-Session-Set", "cart=3"),
        _ => Reply::ok("page"),
    })
    .await;
    let text = config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!(
            "\n[login]\nusers_file = \"{}\"\n{login_extra}\n",
            users.display()
        ),
    );
    Site {
        proxy: Proxy::start(&text).await,
        backend,
        text,
        _dir: dir,
    }
}

/// The value of the hidden csrf field in a login page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\"").expect("a csrf field");
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let v = tag.find("value=\"").unwrap() + 7;
    tag[v..v + tag[v..].find('"').unwrap()].to_string()
}

async fn login_form(c: &reqwest::Client, proxy: &Proxy, next: &str) -> String {
    let url = proxy.url(&format!("/.sessiongate/login?next={}", urlencode(next)));
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    csrf_of(&resp.text().await.unwrap())
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn post_login(
    c: &reqwest::Client,
    proxy: &Proxy,
    user: &str,
    password: &str,
    next: &str,
    csrf: &str,
) -> reqwest::Response {
    c.post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("next", next),
            ("csrf", csrf),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_whole_flow() {
    let s = site("").await;
    let c = browser();
    // Something stored before login must survive it.
    c.get(s.proxy.url("/remember")).send().await.unwrap();
    let r = c
        .get(s.proxy.url("/members/area?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/.sessiongate/login?next="),
        "{location}"
    );

    let page = c.get(s.proxy.url(&location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    assert!(
        html.contains("value=\"/members/area?x=1\""),
        "next is carried in the form"
    );
    let csrf = csrf_of(&html);

    let wrong = post_login(&c, &s.proxy, "alice", "nope", "/members/area?x=1", &csrf).await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("not right"), "the page shows the error");

    let ok = post_login(
        &c,
        &s.proxy,
        "alice",
        "wonderland",
        "/members/area?x=1",
        &csrf,
    )
    .await;
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/members/area?x=1");
    assert_eq!(set_cookies(&ok).len(), 1);

    let r = c
        .get(s.proxy.url("/members/area?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = s.backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
    assert_eq!(seen.header("x-session-data").as_deref(), Some("cart=3"));
    assert!(
        seen.header("x-session-data")
            .unwrap()
            .find("password")
            .is_none()
    );

    let out = c
        .post(s.proxy.url("/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()["location"], "/");
    assert!(set_cookies(&out)[0].contains("Max-Age=0"));
    let r = c.get(s.proxy.url("/members/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn login_issues_a_new_id_and_the_old_one_is_not_logged_in() {
    let s = site("").await;
    let c = client();
    let r = c.get(s.proxy.url("/remember")).send().await.unwrap();
    let before = session_cookie(&r).unwrap();
    let page = c
        .get(s.proxy.url("/.sessiongate/login"))
        .header("cookie", &before)
        .send()
        .await
        .unwrap();
    assert!(
        set_cookies(&page).is_empty(),
        "the existing session carries the form"
    );
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = c
        .post(s.proxy.url("/.sessiongate/login"))
        .header("cookie", &before)
        .form(&[
            ("username", "bob"),
            ("password", "builder"),
            ("next", "/members/"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let after = session_cookie(&r).unwrap();
    assert_ne!(before, after);
    let r = c
        .get(s.proxy.url("/members/"))
        .header("cookie", &before)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the pre-login id is dead");
    let r = c
        .get(s.proxy.url("/members/"))
        .header("cookie", &after)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn csrf_is_required_and_bound_to_the_session() {
    let s = site("").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", "").await;
    assert_eq!(r.status(), 403);
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", "forged-token").await;
    assert_eq!(r.status(), 403);
    // A token from another visitor's session does not work here.
    let other = browser();
    let others = login_form(&other, &s.proxy, "/").await;
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &others).await;
    assert_eq!(r.status(), 403);
    // No cookie at all.
    let r = post_login(&client(), &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 403);
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn throttling_locks_even_the_right_password() {
    let s = site("max_attempts = 3\nattempt_window = \"1h\"").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    for _ in 0..3 {
        let r = post_login(&c, &s.proxy, "alice", "wrong", "/", &csrf).await;
        assert_eq!(r.status(), 401);
    }
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    assert_eq!(s.proxy.gate().metrics.logins.throttled(), 1);
    assert_eq!(s.proxy.gate().metrics.logins.failed(), 3);
}

/// Puts `text` in force in the running proxy, as SIGHUP does.
fn reload(proxy: &Proxy, text: &str) {
    let config: sessiongate::config::Config = text.parse().unwrap();
    proxy
        .gate()
        .swap_setup(sessiongate::setup::Setup::build(config).unwrap());
}

#[tokio::test]
async fn a_reload_keeps_the_failed_login_counts() {
    let s = site("max_attempts = 2\nattempt_window = \"1h\"").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    for _ in 0..2 {
        let r = post_login(&c, &s.proxy, "alice", "wrong", "/", &csrf).await;
        assert_eq!(r.status(), 401);
    }
    // The same limits after a reload: still locked, no fresh window.
    reload(&s.proxy, &s.text);
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 429);
    // New limits are a new throttle.
    reload(
        &s.proxy,
        &s.text.replace("max_attempts = 2", "max_attempts = 5"),
    );
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn throttling_counts_per_client_ip_across_users() {
    let s = site("max_attempts = 3\nattempt_window = \"1h\"").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    for user in ["u1", "u2", "u3"] {
        let r = post_login(&c, &s.proxy, user, "wrong", "/", &csrf).await;
        assert_eq!(r.status(), 401);
    }
    let r = post_login(&c, &s.proxy, "bob", "builder", "/", &csrf).await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn throttle_window_passes() {
    let s = site("max_attempts = 2\nattempt_window = \"2s\"").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    for _ in 0..2 {
        post_login(&c, &s.proxy, "alice", "wrong", "/", &csrf).await;
    }
    assert_eq!(
        post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf)
            .await
            .status(),
        429
    );
    // The window runs on the proxy's clock: locked until it has passed.
    s.proxy.advance(1);
    assert_eq!(
        post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf)
            .await
            .status(),
        429
    );
    s.proxy.advance(1);
    assert_eq!(
        post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf)
            .await
            .status(),
        303,
        "the lock lifts when the window ends"
    );
}

#[tokio::test]
async fn expired_message_is_shown() {
    let s = site("expired_message = \"Session over, come back!\"").await;
    let c = browser();
    let r = c
        .get(
            s.proxy
                .url("/.sessiongate/login?next=%2Fmembers%2F&expired=1"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Session over, come back!"));
    let r = c
        .get(s.proxy.url("/.sessiongate/login?next=%2Fmembers%2F"))
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("Session over"));
}

const NASTY_NEXTS: &[&str] = &[
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/\tevil",
    "/\r\nSet-Cookie: x=1",
    "/%0d%0aSet-Cookie:x=1",
    " //evil.example",
    "/／evil.example",
    "",
];

#[tokio::test]
async fn next_never_leaves_the_site() {
    let s = site("").await;
    for next in NASTY_NEXTS {
        let c = browser();
        let csrf = login_form(&c, &s.proxy, "/").await;
        let r = post_login(&c, &s.proxy, "alice", "wonderland", next, &csrf).await;
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(r.headers()["location"], "/", "{next:?}");
        let r = c
            .get(
                s.proxy
                    .url(&format!("/.sessiongate/logout?next={}", urlencode(next))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], "/", "logout {next:?}");
    }
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/members/a?b=c", &csrf).await;
    assert_eq!(r.headers()["location"], "/members/a?b=c");
}

#[tokio::test]
async fn the_page_is_self_contained() {
    let s = site("").await;
    let r = browser()
        .get(s.proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-security-policy").is_some());
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script"), "no JavaScript needed");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );
    assert!(html.contains("name=\"viewport\""));
}

#[tokio::test]
async fn unknown_builtin_paths_are_404() {
    let s = site("").await;
    let r = browser()
        .get(s.proxy.url("/.sessiongate/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = browser()
        .delete(s.proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn users_file_is_reread_when_it_changes() {
    let s = site("").await;
    let path = s._dir.path().join("users");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "carol:{}\n",
        sessiongate::login::hash_password("secret").unwrap()
    ));
    std::fs::write(&path, text).unwrap();
    // Polled through the proxy's users rather than by logging in: failed
    // attempts would count towards the throttle.
    let users = s.proxy.gate().setup().login.users.clone().unwrap();
    eventually("the proxy read the new users file", BUDGET, async || {
        users.current().contains("carol")
    })
    .await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    let status = post_login(&c, &s.proxy, "carol", "secret", "/", &csrf)
        .await
        .status();
    assert_eq!(status, 303, "carol is a user");
}

#[tokio::test]
async fn backend_source_redirects_to_the_applications_page() {
    let backend = Backend::with(|seen| {
        if seen.uri.starts_with("/login.cgi") && seen.method == "POST" {
            Reply::ok("")
                .status(303)
                .header("Location", "/members/")
                .header("X-Session-Login", "dora")
        } else {
            Reply::ok("page")
        }
    })
    .await;
    let text = config(
        &[
            ("/", &backend.url(), "public"),
            ("/members/", &backend.url(), "login"),
        ],
        "\n[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n",
    );
    let proxy = Proxy::start(&text).await;
    let c = browser();
    let r = c.get(proxy.url("/members/x")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/login.cgi?next=%2Fmembers%2Fx");
    let r = c
        .post(proxy.url("/login.cgi"))
        .body("user=dora")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c.get(proxy.url("/members/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        backend.last().header("x-session-user").as_deref(),
        Some("dora")
    );
    // The built-in form is not offered when the application logs users in.
    let r = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Requests still carrying the pre-login cookie after a backend login get
/// no cookie and no session (the scenario is shared with Redis and Cluster).
#[tokio::test]
async fn requests_racing_a_backend_login_get_no_cookie() {
    crate::harness::site::requests_racing_a_login("").await;
}

/// The same for the built-in login, whose pre-login session either held
/// data or was only made for the login form: requests with that cookie,
/// the login page and a logout with it included, set no cookie, and the
/// login stands.
#[tokio::test]
async fn requests_racing_the_builtin_login_get_no_cookie() {
    let s = site("").await;
    let c = client();
    for (first, data) in [("/remember", "cart=3"), ("", "")] {
        let mut before = String::new();
        if !first.is_empty() {
            let r = c.get(s.proxy.url(first)).send().await.unwrap();
            before = session_cookie(&r).unwrap();
        }
        let page = c
            .get(s.proxy.url("/.sessiongate/login"))
            .header("cookie", &before)
            .send()
            .await
            .unwrap();
        if before.is_empty() {
            before = session_cookie(&page).expect("the form's session");
        }
        let csrf = csrf_of(&page.text().await.unwrap());
        let r = c
            .post(s.proxy.url("/.sessiongate/login"))
            .header("cookie", &before)
            .form(&[
                ("username", "bob"),
                ("password", "builder"),
                ("next", "/members/"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let after = session_cookie(&r).unwrap();

        let paths = ["/", "/remember", "/members/", "/.sessiongate/login"];
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let path = paths[i % paths.len()];
                let request = c.get(s.proxy.url(path)).header("cookie", &before).send();
                tokio::spawn(async move { (path, request.await.unwrap()) })
            })
            .collect();
        for t in tasks {
            let (path, r) = t.await.unwrap();
            assert!(set_cookies(&r).is_empty(), "{first}: {path} set a cookie");
            let expected = if path == "/members/" { 302 } else { 200 };
            assert_eq!(r.status(), expected, "{first}: {path}");
            if let Some(location) = r.headers().get("location") {
                assert!(!location.to_str().unwrap().contains("expired"));
            }
        }
        let r = c
            .post(s.proxy.url("/.sessiongate/logout"))
            .header("cookie", &before)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(
            set_cookies(&r).is_empty(),
            "a logout with the replaced cookie leaves the new one alone"
        );

        let r = c
            .get(s.proxy.url("/members/"))
            .header("cookie", &after)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{first}: the login stands");
        let seen = s.backend.last();
        assert_eq!(seen.header("x-session-user").as_deref(), Some("bob"));
        assert_eq!(seen.header("x-session-data").unwrap_or_default(), data);
    }
}

#[tokio::test]
async fn the_throttled_page_says_how_long_to_wait() {
    let s = site("max_attempts = 1\nattempt_window = \"5m\"").await;
    let c = browser();
    let csrf = login_form(&c, &s.proxy, "/").await;
    assert_eq!(
        post_login(&c, &s.proxy, "alice", "wrong", "/", &csrf)
            .await
            .status(),
        401
    );
    s.proxy.advance(10);
    let r = post_login(&c, &s.proxy, "alice", "wonderland", "/", &csrf).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "290");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Please wait 290 seconds (about 5 minutes) and try again."),
        "{html}"
    );
    assert!(!html.contains("a few minutes"), "{html}");
}

#[tokio::test]
async fn without_a_users_file_the_login_endpoints_are_not_there() {
    let backend = Backend::start().await;
    // The built-in login is the source, but no route needs it and the
    // file does not exist: there is no page to show.
    let text = config(
        &[("/", &backend.url(), "session")],
        "\n[login]\nusers_file = \"/nonexistent/users\"\n",
    );
    let proxy = Proxy::start(&text).await;
    let c = browser();
    for (method, path) in [
        (reqwest::Method::GET, "/.sessiongate/login"),
        (reqwest::Method::POST, "/.sessiongate/login"),
        (reqwest::Method::PUT, "/.sessiongate/login"),
    ] {
        let r = c
            .request(method.clone(), proxy.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    // Logout ends whatever session there is, users file or not.
    let r = c
        .get(proxy.url("/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(backend.seen().is_empty());
}

#[tokio::test]
async fn logout_without_next_goes_to_the_cookie_path() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let backend = Backend::start().await;
    let text = config(
        &[("/app/", &backend.url(), "login")],
        &format!(
            "cookie_path = \"/app/\"\n\n[login]\nusers_file = \"{}\"\nprefix = \"/app/.sessiongate\"\n",
            users.display()
        ),
    );
    let proxy = Proxy::start(&text).await;
    let r = client()
        .get(proxy.url("/app/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/app/");
    let r = client()
        .get(proxy.url("/app/.sessiongate/logout?next=/app/bye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/app/bye");
}

#[tokio::test]
async fn logouts_are_logged_with_their_user() {
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("hi").header("X-Session-Login", "alice"),
        "/signout" => Reply::ok("bye").header("X-Session-Logout", "1"),
        _ => Reply::ok("page"),
    })
    .await;
    let text = config(
        &[("/", &backend.url(), "session")],
        "\n[login]\nsource = \"backend\"\npage = \"/signin\"\n",
    );
    let mut gate = Binary::new(&text).start().await;
    let base = gate.url("");
    let sign_in = async || {
        let r = client().get(format!("{base}/signin")).send().await.unwrap();
        session_cookie(&r).expect("signed in")
    };

    // The backend's X-Session-Logout.
    let cookie = sign_in().await;
    let r = client()
        .get(gate.url("/signout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&r)[0].contains("Max-Age=0"));
    let line = gate.logged("\"GET /signout\"").await;
    assert!(line.contains("user=\"alice\""), "{line}");

    // The built-in logout endpoint.
    let cookie = sign_in().await;
    let r = client()
        .post(gate.url("/.sessiongate/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let line = gate.logged("\"POST /.sessiongate/logout\"").await;
    assert!(line.contains("user=\"alice\""), "{line}");
    assert!(!line.contains("session=-"), "{line}");
}
