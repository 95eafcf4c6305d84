//! End-to-end behaviour of the proxy over real TCP: the access table,
//! cookies, session headers, control headers, and failure handling.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::*;

fn data_of(seen: &Seen) -> String {
    seen.header("x-session-data").unwrap_or_default()
}

#[tokio::test]
async fn public_route_without_cookie_forwards_and_issues_nothing() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let resp = client().get(proxy.url("/page?x=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookies(&resp).is_empty());
    let seen = backend.last();
    assert_eq!(seen.uri, "/page?x=1");
    assert!(
        seen.headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-session-")),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn session_route_creates_one_session_and_keeps_it() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        "initial = { count = \"0\" }",
    ))
    .await;
    let c = client();
    let first = c.get(proxy.url("/")).send().await.unwrap();
    let cookies = set_cookies(&first);
    assert_eq!(cookies.len(), 1);
    let set = &cookies[0];
    assert!(set.starts_with("sg_session="), "{set}");
    assert!(
        set.contains("; Path=/") && set.contains("; HttpOnly") && set.contains("; SameSite=Lax"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain HTTP gets no Secure flag with cookie_secure = auto: {set}"
    );
    assert!(
        !set.contains("Max-Age"),
        "a session cookie by default: {set}"
    );
    let seen = backend.last();
    assert_eq!(seen.header("x-session-new").as_deref(), Some("1"));
    assert_eq!(data_of(&seen), "count=0");
    let created: u64 = seen.header("x-session-created").unwrap().parse().unwrap();
    let expires: u64 = seen.header("x-session-expires").unwrap().parse().unwrap();
    assert_eq!(expires, created + 30 * 60);
    assert!(seen.header("x-session-user").is_none());
    assert!(
        seen.header("x-session-id").is_none(),
        "send_id is off by default"
    );

    let cookie = session_cookie(&first).unwrap();
    let second = c
        .get(proxy.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(
        set_cookies(&second).is_empty(),
        "same session, no new cookie"
    );
    let seen = backend.last();
    assert!(seen.header("x-session-new").is_none());
    assert_eq!(
        seen.header("x-session-created")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        created
    );
    // The untouched anonymous session costs the store nothing.
    assert_eq!(proxy_store_len(&proxy), 0);
}

fn proxy_store_len(proxy: &Proxy) -> usize {
    proxy.gate().store.as_memory().map_or(0, |m| m.len())
}

#[tokio::test]
async fn crawlers_cost_no_memory() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let c = client();
    for _ in 0..50 {
        let resp = c.get(proxy.url("/")).send().await.unwrap();
        assert_eq!(set_cookies(&resp).len(), 1);
    }
    assert_eq!(proxy_store_len(&proxy), 0);
}

#[tokio::test]
async fn login_route_redirects_browsers_and_refuses_api_clients() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "login")], "")).await;
    let c = client();
    let resp = c
        .get(proxy.url("/members/page?a=1&b=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        location,
        "/.sessiongate/login?next=%2Fmembers%2Fpage%3Fa%3D1%26b%3D2"
    );
    assert!(set_cookies(&resp).is_empty());

    let head = c.head(proxy.url("/x")).send().await.unwrap();
    assert_eq!(head.status(), 302);

    let api = c
        .get(proxy.url("/x"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(
        api.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );

    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = c
            .request(method.clone(), proxy.url("/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method}");
    }
    assert!(backend.seen().is_empty(), "nothing reached the backend");
}

/// A backend where `/login?user=NAME` logs in, `/set?k=v` sets data,
/// `/logout` logs out, and everything else just answers.
async fn app_backend() -> Backend {
    Backend::with(|seen| {
        let (path, query) = seen.uri.split_once('?').unwrap_or((&seen.uri, ""));
        match path {
            "/login" => {
                Reply::ok("welcome").header("X-Session-Login", query.trim_start_matches("user="))
            }
            "/set" => Reply::ok("stored").header("X-Session-Set", query),
            "/delete" => Reply::ok("deleted").header("X-Session-Delete", query),
            "/logout" => Reply::ok("bye").header("X-Session-Logout", "1"),
            _ => Reply::ok("page"),
        }
    })
    .await
}

#[tokio::test]
async fn backend_login_rotates_the_id_and_keeps_the_data() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/set?cart=3")).send().await.unwrap();
    let anon = session_cookie(&r).unwrap();
    assert_eq!(set_cookies(&r).len(), 1);
    // Anonymous: the members area sends us to log in.
    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &anon)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    let r = c
        .get(proxy.url("/login?user=alice"))
        .header("cookie", &anon)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-session-login").is_none(),
        "control headers never reach the client"
    );
    let logged_in = session_cookie(&r).unwrap();
    assert_ne!(logged_in, anon, "login issues a new id");
    assert_eq!(set_cookies(&r).len(), 1);

    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &logged_in)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
    assert_eq!(data_of(&seen), "cart=3", "data survives the login");

    // The pre-login id is dead (fixation defence).
    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &anon)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn control_headers_update_the_session_and_are_stripped() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let c = client();
    let r = c
        .get(proxy.url("/set?a=1&b=two+words&c=%26"))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("x-session"))
    );
    let cookie = session_cookie(&r).unwrap();
    c.get(proxy.url("/delete?b"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    c.get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(&backend.last()), "a=1&c=%26");

    let r = c
        .get(proxy.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(&r);
    assert_eq!(cleared.len(), 1);
    assert!(
        cleared[0].starts_with("sg_session=;") && cleared[0].contains("Max-Age=0"),
        "{cleared:?}"
    );
    assert!(cleared[0].contains("Path=/") && cleared[0].contains("SameSite=Lax"));
    // The old cookie names a destroyed session: a fresh one is issued.
    let r = c
        .get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_ne!(session_cookie(&r).unwrap(), cookie);
    assert_eq!(backend.last().header("x-session-new").as_deref(), Some("1"));
}

#[tokio::test]
async fn public_route_backend_can_start_a_session() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let c = client();
    let r = c.get(proxy.url("/set?theme=dark")).send().await.unwrap();
    let cookie = session_cookie(&r).expect("the backend stored data: a session starts");
    c.get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(data_of(&backend.last()), "theme=dark");
}

#[tokio::test]
async fn tampered_forged_and_garbage_cookies_are_no_session() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/login?user=alice")).send().await.unwrap();
    let good = session_cookie(&r).unwrap();
    let value = good.trim_start_matches("sg_session=");
    let mut bytes = value.as_bytes().to_vec();
    bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
    let tampered = format!("sg_session={}", String::from_utf8(bytes).unwrap());
    let other_key = {
        // A cookie of another deployment (another key) must not verify here.
        let signer =
            sessiongate::session::Signer::new(&[b"another-key-another-key-another-key!".to_vec()]);
        let claims = sessiongate::session::CookieClaims {
            id: sessiongate::session::SessionId::generate(),
            created: 1_700_000_000,
            stored: true,
            remembered: false,
        };
        format!("sg_session={}", signer.encode(&claims))
    };
    let long = format!("sg_session={}", "A".repeat(5000));
    for bad in [
        tampered,
        other_key,
        long,
        "sg_session=".into(),
        "sg_session=%%%".into(),
        "sg_session=\"x\"".into(),
    ] {
        let r = c
            .get(proxy.url("/members/x"))
            .header("cookie", &bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{bad}");
        let loc = r.headers()["location"].to_str().unwrap();
        assert!(!loc.contains("expired=1"), "{bad}: {loc}");
        let r = c
            .get(proxy.url("/page"))
            .header("cookie", &bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            backend.last().header("x-session-new").as_deref(),
            Some("1"),
            "{bad}"
        );
    }
    let r = c
        .get(proxy.url("/members/x"))
        .header("cookie", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn expired_sessions_redirect_with_expired_flag() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "idle_timeout = \"10m\"\nmax_lifetime = \"1h\"\ntouch_interval = \"1m\"",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/login?user=bob")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    // Activity keeps it alive past the idle timeout...
    for _ in 0..3 {
        proxy.advance(5 * 60);
        let r = c
            .get(proxy.url("/members/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // ...inactivity ends it.
    proxy.advance(11 * 60);
    let r = c
        .get(proxy.url("/members/a?b=c"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.sessiongate/login?next=%2Fmembers%2Fa%3Fb%3Dc&expired=1"
    );

    // max_lifetime ends even an active session, and its cookie fails before any lookup.
    let r = c.get(proxy.url("/login?user=bob")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    for _ in 0..6 {
        proxy.advance(9 * 60);
        let r = c
            .get(proxy.url("/members/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    proxy.advance(9 * 60);
    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("&expired=1")
    );
}

#[tokio::test]
async fn client_session_headers_never_reach_the_backend() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let c = client();
    let r = c.get(proxy.url("/login?user=alice")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    let spellings = [
        "X-Session-User",
        "x-session-user",
        "X_SESSION_USER",
        "x_session_user",
        "X.Session.User",
        "x.session.user",
        "X-Session_User",
        "X_Session.User",
        "x-SESSION-uSeR",
    ];
    for name in spellings {
        for with_cookie in [false, true] {
            let mut req = format!(
                "GET /page HTTP/1.1\r\nHost: test\r\n{name}: mallory\r\nX-Session-Data: role=admin\r\nx_session_id: forged\r\nConnection: close\r\n"
            );
            if with_cookie {
                req.push_str(&format!("Cookie: {cookie}\r\n"));
            }
            req.push_str("\r\n");
            let resp = raw(proxy.addr, req.as_bytes()).await;
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
            let seen = backend.last();
            for (k, v) in &seen.headers {
                let v = v.to_str().unwrap_or("");
                assert!(
                    !v.contains("mallory") && !v.contains("role=admin") && v != "forged",
                    "{name}: leaked {k}: {v}"
                );
            }
            let expected_user = with_cookie.then_some("alice".to_string());
            assert_eq!(seen.header("x-session-user"), expected_user, "{name}");
        }
    }
}

#[tokio::test]
async fn connection_header_cannot_drop_injected_headers() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let r = client()
        .get(proxy.url("/login?user=alice"))
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&r).unwrap();
    let req = format!(
        "GET /page HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\nConnection: close, X-Session-User, X-Session-Data, X-Forwarded-For\r\n\r\n"
    );
    let resp = raw(proxy.addr, req.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let seen = backend.last();
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
    assert!(seen.header("x-session-data").is_some());
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn our_cookie_is_removed_and_others_pass() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let c = client();
    let r = c.get(proxy.url("/")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    c.get(proxy.url("/"))
        .header("cookie", format!("theme=dark; {cookie}; lang=en"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        backend.last().header("cookie").as_deref(),
        Some("theme=dark; lang=en")
    );
    c.get(proxy.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(backend.last().header("cookie").is_none());
}

#[tokio::test]
async fn forwarded_headers_are_replaced_for_untrusted_peers() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let req = b"GET /a HTTP/1.1\r\nHost: site.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n";
    raw(proxy.addr, req).await;
    let seen = backend.last();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("site.example")
    );
    assert_eq!(seen.header("host").as_deref(), Some("site.example"));
}

#[tokio::test]
async fn trusted_proxy_chain_and_https_give_secure_cookies() {
    let backend = Backend::start().await;
    let text = format!(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n{}",
        config(&[("/", &backend.url(), "session")], "")
    );
    let proxy = Proxy::start(&text).await;
    let req = b"GET /a HTTP/1.1\r\nHost: site.example\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    let resp = raw(proxy.addr, req).await;
    assert!(
        resp.contains("; Secure"),
        "a trusted proxy says https: {resp}"
    );
    let seen = backend.last();
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-real-ip").as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn concurrent_updates_of_one_session_lose_nothing() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        "max_data_bytes = 100000",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/set?start=1")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        let url = proxy.url(&format!("/set?k{i}={i}"));
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            c.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    c.get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let data = data_of(&backend.last());
    for i in 0..40 {
        assert!(data.contains(&format!("k{i}={i}")), "k{i} lost: {data}");
    }
}

#[tokio::test]
async fn oversized_updates_are_refused_whole_but_the_response_arrives() {
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/small" => Reply::ok("small").header("X-Session-Set", "a=1"),
        "/big" => {
            Reply::ok("big body").header("X-Session-Set", &format!("b={}&c=2", "x".repeat(200)))
        }
        _ => Reply::ok("page"),
    })
    .await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        "max_data_bytes = 100",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/small")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    let r = c
        .get(proxy.url("/big"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "big body");
    c.get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        data_of(&backend.last()),
        "a=1",
        "the whole update was refused"
    );
    assert_eq!(
        proxy
            .gate()
            .metrics
            .updates_too_large
            .load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn one_set_cookie_whatever_the_status() {
    for status in [200u16, 404, 500, 302] {
        let backend = Backend::with(move |_| {
            Reply::ok("x")
                .status(status)
                .header("Set-Cookie", "sg_session=forged-by-backend; Path=/")
                .header("Set-Cookie", "theirs=1; Path=/")
                .header("X-Session-Set", "k=v")
        })
        .await;
        let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
        let r = client().get(proxy.url("/")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let cookies = set_cookies(&r);
        let ours: Vec<_> = cookies
            .iter()
            .filter(|c| c.starts_with("sg_session="))
            .collect();
        assert_eq!(ours.len(), 1, "{status}: {cookies:?}");
        assert!(!ours[0].contains("forged"));
        assert!(cookies.iter().any(|c| c.starts_with("theirs=1")));
    }
}

#[tokio::test]
async fn bind_ip_rejects_a_cookie_from_another_address() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "bind_ip = true",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/login?user=alice")).send().await.unwrap();
    let cookie = session_cookie(&r).unwrap();
    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = elsewhere
        .get(proxy.url("/members/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn dead_and_slow_upstreams_give_502_and_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = Backend::with(|_| Reply {
        delay: Some(Duration::from_secs(5)),
        ..Reply::ok("late")
    })
    .await;
    let text = format!(
        "[server]\nupstream_timeout = \"1s\"\n\n{}",
        config(
            &[
                ("/dead/", &format!("http://{dead}"), "public"),
                ("/slow/", &slow.url(), "public")
            ],
            ""
        )
    );
    let proxy = Proxy::start(&text).await;
    let c = client();
    let r = c.get(proxy.url("/dead/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = c.get(proxy.url("/slow/x")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    // Still alive.
    let r = c.get(proxy.url("/dead/y")).send().await.unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test]
async fn bad_requests_get_clear_statuses_and_the_proxy_lives() {
    let backend = Backend::start().await;
    let text = format!(
        "[server]\nmax_header_bytes = 4096\n\n{}",
        config(&[("/app/", &backend.url(), "public")], "")
    );
    let proxy = Proxy::start(&text).await;
    let big = format!(
        "GET /app/ HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(6000)
    );
    let resp = raw(proxy.addr, big.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    let huge = format!(
        "GET /app/ HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let resp = raw(proxy.addr, huge.as_bytes()).await;
    assert!(
        resp.starts_with("HTTP/1.1 431") || resp.is_empty(),
        "{resp}"
    );
    let resp = raw(proxy.addr, b"NONSENSE\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.1 400") || resp.is_empty(),
        "{resp}"
    );
    let resp = raw(
        proxy.addr,
        b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    let r = client().get(proxy.url("/app/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn encoded_paths_are_forwarded_as_received() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    raw(
        proxy.addr,
        b"GET /%2F/x%20y?q=%2F HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(backend.last().uri, "/%2F/x%20y?q=%2F");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c.get(proxy.url("/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(session_cookie(&r).is_some());
    let seen = backend.last();
    assert_eq!(
        seen.header("host").as_deref(),
        Some(proxy.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let backend = Backend::with(|seen| Reply::ok(&"z".repeat(seen.body.len()))).await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let body = vec![b'a'; 3 * 1024 * 1024];
    let r = client()
        .post(proxy.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 3 * 1024 * 1024);
    assert_eq!(backend.last().body.len(), 3 * 1024 * 1024);
}

#[tokio::test]
async fn send_id_and_custom_prefix() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        "[headers]\nprefix = \"X-Gate-\"\nsend_id = true",
    ))
    .await;
    let req = b"GET / HTTP/1.1\r\nHost: t\r\nX-Gate-User: mallory\r\nX-Session-User: kept\r\nConnection: close\r\n\r\n";
    raw(proxy.addr, req).await;
    let seen = backend.last();
    assert!(seen.header("x-gate-user").is_none());
    assert_eq!(
        seen.header("x-session-user").as_deref(),
        Some("kept"),
        "only the configured prefix is ours"
    );
    assert_eq!(seen.header("x-gate-id").map(|v| v.len()), Some(43));
    assert_eq!(seen.header("x-gate-new").as_deref(), Some("1"));
}

#[tokio::test]
async fn max_sessions_evicts_anonymous_first() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "[store]\nmax_sessions = 20",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/login?user=alice")).send().await.unwrap();
    let alice = session_cookie(&r).unwrap();
    let counter = Arc::new(AtomicUsize::new(0));
    for i in 0..60 {
        c.get(proxy.url(&format!("/set?n={i}")))
            .send()
            .await
            .unwrap();
        counter.fetch_add(1, Ordering::Relaxed);
        assert!(proxy_store_len(&proxy) <= 20);
    }
    let r = c
        .get(proxy.url("/members/"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the logged-in session survived");
}

#[tokio::test]
async fn cookie_attributes_follow_the_config() {
    let backend = app_backend().await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        "persistent_cookie = true\nmax_lifetime = \"2h\"\ncookie_same_site = \"strict\"\ncookie_domain = \"example.org\"\ncookie_path = \"/\"\ncookie_secure = true",
    ))
    .await;
    let c = client();
    let r = c.get(proxy.url("/")).send().await.unwrap();
    let set = &set_cookies(&r)[0];
    for part in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Secure",
        "; Domain=example.org",
        "; Max-Age=7200",
    ] {
        assert!(set.contains(part), "{part} missing: {set}");
    }
    let cookie = session_cookie(&r).unwrap();
    proxy.advance(600);
    let r = c
        .get(proxy.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let cleared = &set_cookies(&r)[0];
    for part in [
        "; Path=/",
        "; SameSite=Strict",
        "; Domain=example.org",
        "Max-Age=0",
    ] {
        assert!(cleared.contains(part), "{part} missing: {cleared}");
    }
    // After a login the cookie's Max-Age is the new session's whole lifetime.
    let r = c
        .get(proxy.url("/login?user=zoe"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&r)[0].contains("; Max-Age=7200"));
}
