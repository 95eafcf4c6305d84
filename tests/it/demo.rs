//! The shipped demo: `config/sessiongate.toml` in front of the legacy CGI
//! site, driven like a browser through the proxy.

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
