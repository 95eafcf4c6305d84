//! The shipped demo: `config/sessiongate.toml` in front of the legacy CGI
//! site, driven like a browser through the proxy.

use crate::harness::binary;
use crate::harness::*;

async fn demo() -> Proxy {
    let text = std::fs::read_to_string("config/sessiongate.toml").unwrap();
    Proxy::start(&text).await
}

#[tokio::test]
async fn the_demo_site_works_end_to_end() {
    let proxy = demo().await;
    let c = browser();
    let home = c.get(proxy.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        session_cookie(&home).is_some(),
        "the session route gives a session"
    );
    assert!(home.text().await.unwrap().contains("not signed in"));

    for expected in ["1", "2", "3"] {
        let page = c.get(proxy.url("/counter.cgi")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&format!("<strong>{expected}</strong>"))
                || html.contains(&format!(">{expected}<")),
            "visit {expected}: {html}"
        );
    }

    let r = c.get(proxy.url("/members.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/login.cgi?next=%2Fmembers.cgi");

    let r = c
        .post(proxy.url("/login.cgi"))
        .form(&[
            ("username", "alice"),
            ("password", "wrong"),
            ("next", "/members.cgi"),
        ])
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 303);

    let r = c
        .post(proxy.url("/login.cgi"))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", "/members.cgi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/members.cgi");
    assert!(r.headers().get("x-session-login").is_none());
    assert!(session_cookie(&r).is_some(), "a new session id after login");

    let members = c.get(proxy.url("/members.cgi")).send().await.unwrap();
    assert_eq!(members.status(), 200);
    let html = members.text().await.unwrap();
    assert!(html.contains("alice"), "{html}");

    // The counter kept counting through the login.
    let html = c
        .get(proxy.url("/counter.cgi"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(">4<"), "{html}");

    let r = c.get(proxy.url("/logout.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(set_cookies(&r).iter().any(|c| c.contains("Max-Age=0")));
    let r = c.get(proxy.url("/members.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn traversal_out_of_the_cgi_directory_is_refused() {
    let proxy = demo().await;
    for path in [
        "/../lib/layout.sh",
        "/%2e%2e/lib/layout.sh",
        "/..%2flib/layout.sh",
        "/%2E%2E%2Flib%2Flayout.sh",
    ] {
        let resp = raw(
            proxy.addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status: u16 = resp[9..12].parse().unwrap();
        assert!(
            status == 404 || status == 403 || status == 400,
            "{path}: {resp}"
        );
        assert!(!resp.contains("site.css"), "{path}");
    }
}

#[tokio::test]
async fn the_demo_serves_its_static_pages_and_picture() {
    let proxy = demo().await;
    let c = browser();
    let home = c.get(proxy.url("/")).send().await.unwrap();
    assert!(home.text().await.unwrap().contains("href=\"/pages/\""));

    let pages = c.get(proxy.url("/pages/")).send().await.unwrap();
    assert_eq!(pages.status(), 200);
    assert_eq!(pages.headers()["content-type"], "text/html");
    assert!(pages.headers().contains_key("etag"));
    assert!(
        session_cookie(&pages).is_none(),
        "the public route issues no cookie"
    );
    let html = pages.text().await.unwrap();
    assert!(html.contains("<h1>Old Pages</h1>"), "{html}");
    for link in ["about.html", "site.css", "img/construction.svg"] {
        let r = c
            .get(proxy.url(&format!("/pages/{link}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{link}");
    }
    let svg = c
        .get(proxy.url("/pages/img/construction.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<svg"));
    let css = c.get(proxy.url("/pages/site.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
}

/// Signs alice in through the demo site's own form (login.cgi), as a
/// client without a cookie jar; returns the session cookie's `name=value`.
async fn sign_in_at_login_cgi(base: &str) -> String {
    let r = client()
        .post(format!("{base}/login.cgi"))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", "/members.cgi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    session_cookie(&r).expect("a login sets the cookie")
}

/// The members' page as the holder of `cookie` sees it.
async fn lounge(base: &str, cookie: &str) -> (u16, String) {
    let r = client()
        .get(format!("{base}/members.cgi"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn without_a_key_the_demo_keeps_one_and_its_sessions_survive_a_restart() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = binary::repo_toml("config/sessiongate.toml");
    let snapshot = data.join("sessions.snapshot").display().to_string();
    binary::set(&mut config, "store", "snapshot", snapshot.into());
    let key_file = data.join("session.key");

    let mut first = Binary::from_table(config.clone())
        .env_remove("SESSIONGATE_KEY")
        .start()
        .await;
    let warning = first.logged("SESSIONGATE_KEY is not set").await;
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains(&format!("kept it in {}", key_file.display())),
        "{warning}"
    );
    assert!(warning.contains("never for production"), "{warning}");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim_end().len(), 43, "a gen-key sized key");

    let cookie = sign_in_at_login_cgi(&first.url("")).await;
    let (status, html) = lounge(&first.url(""), &cookie).await;
    assert_eq!((status, html.contains("alice")), (200, true), "{html}");
    assert!(first.terminate().await.success());

    let mut second = Binary::from_table(config)
        .env_remove("SESSIONGATE_KEY")
        .start()
        .await;
    let warning = second.logged("SESSIONGATE_KEY is not set").await;
    assert!(
        warning.contains(&format!("the key kept in {}", key_file.display())),
        "{warning}"
    );
    let (status, html) = lounge(&second.url(""), &cookie).await;
    assert_eq!(status, 200, "{}", second.output());
    assert!(
        html.contains("Welcome to the lounge, <b>alice</b>"),
        "{html}"
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "written once"
    );
}

#[tokio::test]
async fn with_the_key_set_the_demo_keeps_no_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = binary::repo_toml("config/sessiongate.toml");
    let snapshot = dir.path().join("sessions.snapshot").display().to_string();
    binary::set(&mut config, "store", "snapshot", snapshot.into());
    let gate = Binary::from_table(config)
        .env("SESSIONGATE_KEY", KEY)
        .start()
        .await;
    let (status, _) = lounge(&gate.url(""), "sg_session=nothing").await;
    assert_eq!(status, 302);
    assert!(!dir.path().join("session.key").exists());
    assert!(!gate.output().contains("is not set"), "{}", gate.output());
}

#[tokio::test]
async fn the_demo_login_page_says_when_a_session_expired() {
    let proxy = demo().await;
    let base = proxy.url("");
    let cookie = sign_in_at_login_cgi(&base).await;
    assert_eq!(lounge(&base, &cookie).await.0, 200);
    proxy.advance(31 * 60);

    let r = client()
        .get(proxy.url("/members.cgi"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, "/login.cgi?next=%2Fmembers.cgi&expired=1");
    let page = client().get(proxy.url(&to)).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Your session has expired"), "{html}");

    // Without the query, the gate tells the page itself (X-Session-Expired):
    // the cookie names a session that has ended.
    let page = client()
        .get(proxy.url("/login.cgi"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Your session has expired"), "{html}");
    let fresh = client().get(proxy.url("/login.cgi")).send().await.unwrap();
    let html = fresh.text().await.unwrap();
    assert!(!html.contains("Your session has expired"), "{html}");
}

#[tokio::test]
async fn the_builtin_login_demo_shows_the_page_and_an_admins_only_office() {
    use crate::harness::form::post_login;

    let text = std::fs::read_to_string("config/builtin-login.toml").unwrap();
    let proxy = Proxy::start(&text).await;
    let c = browser();
    let r = c.get(proxy.url("/office.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.sessiongate/login?next=%2Foffice.cgi"
    );
    let page = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));

    // bob is a member, not an admin.
    assert_eq!(post_login(&c, &proxy, "bob", "builder").await.status(), 303);
    let (status, html) = get_text(&c, &proxy.url("/members.cgi")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Welcome to the lounge, <b>bob</b>"), "{html}");
    let (status, html) = get_text(&c, &proxy.url("/office.cgi")).await;
    assert_eq!(status, 403);
    assert!(html.contains("bob"), "{html}");
    assert!(!html.contains("Welcome to the office"), "{html}");

    // The built-in logout goes to the cookie's path, "/".
    let r = c
        .get(proxy.url("/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");

    // alice is in the admins group (config/groups).
    let r = post_login(&c, &proxy, "alice", "wonderland").await;
    assert_eq!(r.status(), 303);
    let (status, html) = get_text(&c, &proxy.url("/office.cgi")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Welcome to the office, <b>alice</b>"),
        "{html}"
    );
    // The script read its groups from HTTP_X_SESSION_GROUPS.
    assert!(
        html.contains("Your groups: <code>admins,members</code>"),
        "{html}"
    );
}

async fn get_text(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}
