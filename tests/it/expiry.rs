//! Expiry a page can see coming: `{prefix}/status` reports the session's
//! times without extending them, `{prefix}/keepalive` extends them for a
//! request bound to the session by its CSRF token, `{prefix}/session.js`
//! is served as a cached static script, and `inject_expiry_warning` adds
//! the script's tag to plain HTML pages and to nothing else. Memory and
//! Redis stores alike; the clock is the proxy's own, moved by the test.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::{Backend, KEY, Proxy, Reply, client, session_cookie};

const TAG: &str = "<script src=\"/.sessiongate/session.js\" defer></script>";

/// A backend that signs visitors in at `/signin`, and answers the other
/// paths with the kinds of response the injection must tell apart.
async fn app() -> Backend {
    Backend::with(|seen| {
        let path = seen.uri.split('?').next().unwrap_or("");
        let html = |body: &str| Reply::ok(body).header("content-type", "text/html; charset=utf-8");
        let page = "<html><body><p>page</p></BODY></html>\n";
        match path {
            "/signin" => Reply::ok("welcome").header("X-Session-Login", "alice"),
            "/app/page" => html(page)
                .header("etag", "\"v1\"")
                .header("accept-ranges", "bytes"),
            "/app/nobody" => html("<p>no body element</p>"),
            "/app/gzip" => html(page).header("content-encoding", "gzip"),
            "/app/json" => {
                Reply::ok("{\"html\":\"</body>\"}").header("content-type", "application/json")
            }
            "/app/image" => Reply::ok("\u{89}PNG</body>").header("content-type", "image/png"),
            "/app/not-modified" => html("").status(304),
            "/app/no-content" => html("").status(204),
            "/app/range" => html("<body></body>")
                .status(206)
                .header("content-range", "bytes 0-12/100"),
            "/app/csp-none" => html(page).header("content-security-policy", "script-src 'none'"),
            "/app/csp-self" => html(page).header(
                "content-security-policy",
                "default-src 'none'; script-src 'self'",
            ),
            "/app/csp-report-only" => {
                html(page).header("content-security-policy-report-only", "script-src 'none'")
            }
            _ => html(page),
        }
    })
    .await
}

/// `/app/` needs a login and adds the warning; `/plain/` needs a login and
/// does not; everything else needs a session. Idle timeout 300 s, lifetime
/// 3600 s, and a touch on every request a second apart.
fn site(backend: &Backend, store: &str) -> String {
    let url = backend.url();
    format!(
        r#"[session]
secret_keys = ["{KEY}"]
idle_timeout = "300s"
max_lifetime = "3600s"
touch_interval = "1s"

[login]
source = "backend"
page = "/signin"

{store}

[[route]]
path = "/app/"
upstream = "{url}"
access = "login"
inject_expiry_warning = true

[[route]]
path = "/plain/"
upstream = "{url}"
access = "login"

[[route]]
path = "/"
upstream = "{url}"
access = "session"
"#
    )
}

async fn status(proxy: &Proxy, cookie: Option<&str>) -> (u16, Value) {
    let mut req = client().get(proxy.url("/.sessiongate/status"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    (code, resp.json().await.unwrap())
}

async fn keepalive(proxy: &Proxy, cookie: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(proxy.url("/.sessiongate/keepalive"))
        .header("cookie", cookie);
    if let Some(token) = token {
        req = req.header("x-csrf-token", token);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (code, resp.json().await.unwrap())
}

async fn signed_in(proxy: &Proxy) -> String {
    let resp = client().get(proxy.url("/signin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    session_cookie(&resp).expect("a login sets the cookie")
}

/// The whole contract of `/status` and `/keepalive`, on one store.
async fn status_reads_and_keepalive_extends(store: &str) {
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, store)).await;

    // Without a session: 401 in JSON, naming the login page.
    let (code, body) = status(&proxy, None).await;
    assert_eq!(code, 401);
    assert_eq!(body["login"], "/signin");

    let cookie = signed_in(&proxy).await;
    let (code, body) = status(&proxy, Some(&cookie)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user"], "alice");
    assert_eq!(body["groups"], serde_json::json!([]));
    assert_eq!(body["idle_seconds"], 300);
    assert_eq!(body["expires_seconds"], 3600);
    assert_eq!(body["idle_timeout"], 300);
    assert_eq!(body["remembered"], false);
    assert_eq!(body["login"], "/signin");
    let token = body["csrf_token"].as_str().unwrap().to_string();

    // Asking, again and again, long past touch_interval, extends nothing.
    for (advance, left) in [(100, 200), (150, 50), (49, 1)] {
        proxy.advance(advance);
        let (code, body) = status(&proxy, Some(&cookie)).await;
        assert_eq!((code, &body["idle_seconds"]), (200, &Value::from(left)));
    }
    // A request does extend it; status then shows the new deadline.
    let resp = client()
        .get(proxy.url("/plain/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, body) = status(&proxy, Some(&cookie)).await;
    assert_eq!(body["idle_seconds"], 300);
    assert_eq!(body["expires_seconds"], 3600 - 299);

    // keepalive: refused without the token, or with another session's.
    proxy.advance(200);
    let (code, body) = keepalive(&proxy, &cookie, None).await;
    assert_eq!(code, 403, "{body}");
    let other = signed_in(&proxy).await;
    let (_, theirs) = status(&proxy, Some(&other)).await;
    let (code, _) = keepalive(&proxy, &cookie, theirs["csrf_token"].as_str()).await;
    assert_eq!(code, 403);
    let (code, _) = keepalive(&proxy, &cookie, Some("not-a-token")).await;
    assert_eq!(code, 403);
    let (_, body) = status(&proxy, Some(&cookie)).await;
    assert_eq!(
        body["idle_seconds"], 100,
        "a refused keepalive extends nothing"
    );
    // ... and with it, the idle deadline starts again.
    let (code, body) = keepalive(&proxy, &cookie, Some(&token)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["idle_seconds"], 300);
    assert_eq!(body["user"], "alice");
    proxy.advance(299);
    let (code, body) = status(&proxy, Some(&cookie)).await;
    assert_eq!((code, &body["idle_seconds"]), (200, &Value::from(1)));

    // Past the idle deadline: over, for status and keepalive alike.
    proxy.advance(1);
    let (code, _) = status(&proxy, Some(&cookie)).await;
    assert_eq!(code, 401);
    let (code, _) = keepalive(&proxy, &cookie, Some(&token)).await;
    assert_eq!(code, 401);
    let resp = client()
        .get(proxy.url("/plain/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "the session ended");

    // The wrong methods.
    let resp = client()
        .post(proxy.url("/.sessiongate/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = client()
        .get(proxy.url("/.sessiongate/keepalive"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn status_and_keepalive_with_the_memory_store() {
    status_reads_and_keepalive_extends("").await;
}

#[tokio::test]
async fn status_and_keepalive_with_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    status_reads_and_keepalive_extends(&redis_store(&redis.url(), "expiry:")).await;
}

#[tokio::test]
async fn the_script_is_static_cached_and_revalidated() {
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, "")).await;
    let resp = client()
        .get(proxy.url("/.sessiongate/session.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=86400");
    assert!(h.get("set-cookie").is_none(), "no session for a script");
    let etag = h["etag"].clone();
    let text = resp.text().await.unwrap();
    assert_eq!(text, sessiongate::login::expiry::SCRIPT);
    let resp = client()
        .get(proxy.url("/.sessiongate/session.js"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], etag);
    assert!(backend.seen().is_empty(), "served by the gate itself");
}

/// GETs (or HEADs) `path` signed in; the status, headers and body bytes.
async fn fetch(
    proxy: &Proxy,
    cookie: &str,
    method: reqwest::Method,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = client()
        .request(method, proxy.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    (code, headers, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_tag_goes_into_plain_html_pages_only() {
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, "")).await;
    let cookie = signed_in(&proxy).await;
    let get = reqwest::Method::GET;

    let (code, h, body) = fetch(&proxy, &cookie, get.clone(), "/app/page").await;
    assert_eq!(code, 200);
    let want = format!("<html><body><p>page</p>{TAG}</BODY></html>\n");
    assert_eq!(String::from_utf8(body).unwrap(), want);
    assert_eq!(h["content-length"], want.len().to_string());
    assert_eq!(
        h["etag"], "W/\"v1\"",
        "the bytes are no longer the backend's"
    );
    assert!(h.get("accept-ranges").is_none());

    let (_, _, body) = fetch(&proxy, &cookie, get.clone(), "/app/nobody").await;
    assert_eq!(body, format!("<p>no body element</p>{TAG}").as_bytes());
    let (_, _, body) = fetch(&proxy, &cookie, get.clone(), "/app/csp-self").await;
    assert!(String::from_utf8(body).unwrap().contains(TAG));
    let (_, _, body) = fetch(&proxy, &cookie, get.clone(), "/app/csp-report-only").await;
    assert!(String::from_utf8(body).unwrap().contains(TAG));

    // Everything else, byte for byte as the backend sent it.
    let page = b"<html><body><p>page</p></BODY></html>\n".to_vec();
    for (path, code, body) in [
        ("/app/gzip", 200, page.clone()),
        ("/app/json", 200, b"{\"html\":\"</body>\"}".to_vec()),
        ("/app/image", 200, "\u{89}PNG</body>".as_bytes().to_vec()),
        ("/app/not-modified", 304, vec![]),
        ("/app/no-content", 204, vec![]),
        ("/app/range", 206, b"<body></body>".to_vec()),
        ("/app/csp-none", 200, page.clone()),
        ("/plain/page", 200, page.clone()),
        ("/other", 200, page.clone()),
    ] {
        let (got_code, h, got) = fetch(&proxy, &cookie, get.clone(), path).await;
        assert_eq!((got_code, &got), (code, &body), "{path}");
        if !body.is_empty() {
            assert_eq!(h["content-length"], body.len().to_string(), "{path}");
        }
    }
    let (code, h, body) = fetch(&proxy, &cookie, reqwest::Method::HEAD, "/app/page").await;
    assert_eq!((code, body.len()), (200, 0));
    assert_eq!(
        h["content-length"],
        page.len().to_string(),
        "HEAD left alone"
    );
    assert_eq!(h["etag"], "\"v1\"");
}

/// A backend that streams one HTML page in chunks cut inside `</body>`,
/// without a length: the splice happens across chunks, and the body
/// arrives whole.
#[tokio::test]
async fn the_tag_finds_a_close_cut_across_chunks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                for chunk in ["<html><body>streamed</bo", "DY>", "</html>"] {
                    out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
                    stream.write_all(&out).await.ok();
                    stream.flush().await.ok();
                    out.clear();
                }
                stream.write_all(b"0\r\n\r\n").await.ok();
            });
        }
    });
    let toml = format!(
        "[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://{addr}\"\naccess = \"session\"\ninject_expiry_warning = true\n"
    );
    let proxy = Proxy::start(&toml).await;
    let resp = client().get(proxy.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(
        resp.text().await.unwrap(),
        format!("<html><body>streamed{TAG}</boDY></html>")
    );
}

#[test]
fn check_refuses_the_warning_on_public_routes_and_shows_it_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessiongate.toml");
    let check = |body: &str| {
        std::fs::write(&path, body).unwrap();
        crate::harness::binary::command(&["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let route = |access: &str| {
        format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\naccess = \"{access}\"\ninject_expiry_warning = true\n"
        )
    };
    let out = check(&route("public"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("inject_expiry_warning needs access = \"session\" or \"login\""),
        "{stderr}"
    );
    let out = check(&route("session"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("expiry warning: script tag added"),
        "{stdout}"
    );
}
