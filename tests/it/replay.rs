//! The form interrupted by a sign-in: posted without a session to a
//! `login` route, kept, and sent to the backend once the browser, signed
//! in, comes back to its address; with the memory store and with Redis,
//! the built-in login page and the application's own.

use std::path::Path;

use crate::harness::programs::{prometheus_tool, promtool};
use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::site::redis_store;
use crate::harness::*;
use sessiongate::admin::exposition::{Exposition, Format};

const FORM: &str = "title=Quarterly+report&amount=12%2C50&note=%C3%A9t%C3%A9";
const MULTIPART_TYPE: &str = "multipart/form-data; boundary=----sgboundary";
const MULTIPART: &[u8] = b"------sgboundary\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nreport\r\n------sgboundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\xff\xfe binary\r\n------sgboundary--\r\n";

/// Writes a users file with `alice:wonderland`.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("users");
    let hash = sessiongate::login::hash_password("wonderland").unwrap();
    std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
    path
}

struct Site {
    backend: Backend,
    proxy: Proxy,
    _dir: tempfile::TempDir,
}

/// A site with the built-in login; `extra` goes into `[login]` (and may
/// open `[store]` after it).
async fn site(extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let backend = Backend::with(|seen| Reply::ok(&format!("{} {}", seen.method, seen.uri))).await;
    let text = config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        &format!("\n[login]\nusers_file = \"{}\"\n{extra}\n", users.display()),
    );
    Site {
        proxy: Proxy::start(&text).await,
        backend,
        _dir: dir,
    }
}

/// Posts `body` of `content_type` to `path` as the browser `c`.
async fn post(
    c: &reqwest::Client,
    proxy: &Proxy,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    c.post(proxy.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Follows the login redirect `location` as `c`: the page, then the form
/// signed as alice with the page's `next`; returns the page's text and
/// where the sign-in sends the browser.
async fn sign_in_at(c: &reqwest::Client, proxy: &Proxy, location: &str) -> (String, String) {
    let page = c.get(proxy.url(location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = form::csrf_of(&html);
    let next = url_next(location);
    let resp = c
        .post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", &next),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    (html, to)
}

/// The `next` parameter of a login address.
fn url_next(location: &str) -> String {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn kept_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.starts_with("sg_kept="))
}

fn replays(proxy: &Proxy) -> Vec<(&'static str, u64)> {
    proxy.gate().metrics.replays.all().to_vec()
}

/// A form posted without a session is kept (nothing reaches the backend),
/// and sent, once, when the signed-in browser comes back.
async fn a_kept_form_arrives_once_after_sign_in(store: &str) {
    let site = site(store).await;
    let (proxy, backend) = (&site.proxy, &site.backend);
    for (path, content_type, body) in [
        (
            "/members/save?id=7",
            "application/x-www-form-urlencoded",
            FORM.as_bytes(),
        ),
        ("/members/upload", MULTIPART_TYPE, MULTIPART),
    ] {
        let c = browser();
        let resp = post(&c, proxy, path, content_type, body.to_vec()).await;
        assert_eq!(resp.status(), 303);
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with("/.sessiongate/login?next="),
            "{location}"
        );
        assert!(location.ends_with("&replay=kept"), "{location}");
        assert_eq!(url_next(&location), path);
        let cookie = kept_cookie(&resp).expect("the one-time cookie");
        assert!(cookie.contains("; HttpOnly; SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("; Max-Age=600"), "{cookie}");
        assert!(
            backend.seen().iter().all(|s| s.uri != path),
            "kept, not sent"
        );

        let (html, to) = sign_in_at(&c, proxy, &location).await;
        assert!(
            html.contains("will be sent again after you sign in"),
            "{html}"
        );
        assert_eq!(to, path);
        let resp = c.get(proxy.url(&to)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let cleared = kept_cookie(&resp).expect("the cookie cleared");
        assert!(cleared.starts_with("sg_kept=;") && cleared.contains("Max-Age=0"));
        assert_eq!(resp.text().await.unwrap(), format!("{} {path}", "POST"));
        let seen = backend.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, path);
        assert_eq!(&seen.body[..], body);
        assert_eq!(seen.header("content-type").as_deref(), Some(content_type));
        assert_eq!(seen.header("content-length"), Some(body.len().to_string()));
        assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
        let cookies = seen.header("cookie").unwrap_or_default();
        assert!(!cookies.contains("sg_session="), "{cookies}");

        // Once: the next visit is the visit it is.
        let before = backend.seen().len();
        let again = c.get(proxy.url(path)).send().await.unwrap();
        assert_eq!(again.text().await.unwrap(), format!("GET {path}"));
        assert_eq!(backend.seen().len(), before + 1);
    }
    assert_eq!(
        replays(proxy),
        [
            ("kept", 2),
            ("not_kept", 0),
            ("replayed", 2),
            ("missing", 0)
        ]
    );
}

/// Past `replay_ttl` the kept form is gone: the visit is a visit, and the
/// cookie is cleared.
async fn a_kept_form_ends_with_its_time(store: &str) {
    let site = site(&format!("replay_ttl = \"1m\"\n{store}")).await;
    let (proxy, backend) = (&site.proxy, &site.backend);
    let c = browser();
    let resp = post(
        &c,
        proxy,
        "/members/save",
        "application/x-www-form-urlencoded",
        FORM,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert!(kept_cookie(&resp).unwrap().contains("; Max-Age=60"));
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    proxy.advance(61);
    let (_, to) = sign_in_at(&c, proxy, &location).await;
    let resp = c.get(proxy.url(&to)).send().await.unwrap();
    assert!(kept_cookie(&resp).unwrap().contains("Max-Age=0"));
    assert_eq!(resp.text().await.unwrap(), "GET /members/save");
    assert!(backend.seen().iter().all(|s| s.method != "POST"));
    assert_eq!(
        replays(proxy),
        [
            ("kept", 1),
            ("not_kept", 0),
            ("replayed", 0),
            ("missing", 1)
        ]
    );
}

#[tokio::test]
async fn a_kept_form_arrives_once_with_the_memory_store() {
    a_kept_form_arrives_once_after_sign_in("").await;
}

#[tokio::test]
async fn a_kept_form_ends_with_its_time_in_the_memory_store() {
    a_kept_form_ends_with_its_time("").await;
}

#[tokio::test]
async fn a_kept_form_arrives_once_with_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    a_kept_form_arrives_once_after_sign_in(&redis_store(&redis.url(), "replay:")).await;
}

#[tokio::test]
async fn a_kept_form_ends_with_its_time_in_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    a_kept_form_ends_with_its_time(&redis_store(&redis.url(), "replay:")).await;
}

#[tokio::test]
async fn a_form_over_the_limit_is_not_kept_and_the_page_says_send_it_again() {
    let site = site("replay_max_bytes = 100").await;
    let (proxy, backend) = (&site.proxy, &site.backend);
    let c = browser();
    let big = format!("text={}", "x".repeat(200));
    let resp = post(
        &c,
        proxy,
        "/members/save",
        "application/x-www-form-urlencoded",
        big,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert!(kept_cookie(&resp).is_none());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("&replay=too-large"), "{location}");
    let (html, to) = sign_in_at(&c, proxy, &location).await;
    assert!(html.contains("please send it again"), "{html}");
    let resp = c.get(proxy.url(&to)).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "GET /members/save");
    assert!(backend.seen().iter().all(|s| s.method != "POST"));
    // Without a Content-Length (chunked), the limit holds as it is read.
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok("text=".into()), Ok("y".repeat(200))];
    let stream = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = post(
        &browser(),
        proxy,
        "/members/x",
        "application/x-www-form-urlencoded",
        stream,
    )
    .await;
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("&replay=too-large")
    );
    assert_eq!(replays(proxy)[1], ("not_kept", 2));
}

#[tokio::test]
async fn what_is_not_a_form_or_not_kept_gets_the_401_as_before() {
    let site = site("").await;
    let proxy = &site.proxy;
    let json = post(&browser(), proxy, "/members/api", "application/json", "{}").await;
    assert_eq!(json.status(), 401);
    assert!(kept_cookie(&json).is_none());
    let off = site_off().await;
    let resp = post(
        &browser(),
        &off.proxy,
        "/members/save",
        "application/x-www-form-urlencoded",
        FORM,
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(kept_cookie(&resp).is_none());
}

async fn site_off() -> Site {
    site("replay_max_bytes = 0").await
}

#[tokio::test]
async fn a_form_kept_for_one_address_waits_there_and_is_taken_nowhere_else() {
    let site = site("").await;
    let (proxy, backend) = (&site.proxy, &site.backend);
    let c = browser();
    let resp = post(
        &c,
        proxy,
        "/members/a?x=1",
        "application/x-www-form-urlencoded",
        FORM,
    )
    .await;
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    sign_in_at(&c, proxy, &location).await;
    for elsewhere in ["/members/b", "/members/a", "/members/a?x=2"] {
        let resp = c.get(proxy.url(elsewhere)).send().await.unwrap();
        assert!(kept_cookie(&resp).is_none(), "{elsewhere}");
        assert_eq!(resp.text().await.unwrap(), format!("GET {elsewhere}"));
    }
    // Another browser, signed in too, with no cookie: nothing.
    let other = browser();
    let page = other
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let csrf = form::csrf_of(&page.text().await.unwrap());
    other
        .post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", "/"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    let resp = other.get(proxy.url("/members/a?x=1")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "GET /members/a?x=1");
    // The browser that sent it, at its address: sent.
    let resp = c.get(proxy.url("/members/a?x=1")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "POST /members/a?x=1");
    assert_eq!(backend.seen_with("POST").len(), 1);
}

#[tokio::test]
async fn with_the_applications_own_login_page() {
    let backend = Backend::with(|seen| {
        if seen.uri.starts_with("/login") && seen.method == "POST" {
            return Reply::ok("welcome")
                .status(303)
                .header("X-Session-Login", "alice");
        }
        let replay = seen.header("x-session-replay").unwrap_or_default();
        Reply::ok(&format!("{} {} {replay}", seen.method, seen.uri))
    })
    .await;
    let text = config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "\n[login]\nsource = \"backend\"\npage = \"/login\"\n",
    );
    let proxy = Proxy::start(&text).await;
    let c = browser();
    let resp = post(
        &c,
        &proxy,
        "/members/save",
        "application/x-www-form-urlencoded",
        FORM,
    )
    .await;
    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/login?next=%2Fmembers%2Fsave&replay=kept");
    let page = c.get(proxy.url(&location)).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), format!("GET {location} kept"));
    // Without the cookie, the page is not told of a form kept.
    let page = client().get(proxy.url(&location)).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), format!("GET {location} "));
    let page = client()
        .get(proxy.url("/login?replay=too-large"))
        .header("x-session-replay", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.text().await.unwrap(),
        "GET /login?replay=too-large too-large"
    );
    let signed = c
        .post(proxy.url("/login"))
        .form(&[("u", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let resp = c.get(proxy.url("/members/save")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "POST /members/save ");
    let seen = backend.last();
    assert_eq!(&seen.body[..], FORM.as_bytes());
    assert_eq!(seen.header("x-session-user").as_deref(), Some("alice"));
}

#[tokio::test]
async fn the_replays_are_counted_in_a_scrape_promtool_accepts() {
    let site = site("").await;
    let form = "application/x-www-form-urlencoded";
    post(&browser(), &site.proxy, "/members/save", form, FORM).await;
    let gate = site.proxy.running.as_ref().unwrap().gate.clone();
    let text = Exposition::new(gate).encode(Format::Prometheus).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"sessiongate_replays_total{outcome=\"kept\"} 1"),
        "{text}"
    );
    assert!(lines.contains(&"sessiongate_replays_total{outcome=\"replayed\"} 0"));
    if !prometheus_tool("promtool") {
        return;
    }
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
}

#[tokio::test]
async fn a_cgi_script_gets_the_kept_form_as_its_own_post() {
    let dir = tempfile::tempdir().unwrap();
    let users = users_file(dir.path());
    let cgi = dir.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    let script = cgi.join("save.cgi");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s %s %s ' \"$REQUEST_METHOD\" \"$CONTENT_LENGTH\" \"$REMOTE_USER\" \"$HTTP_IF_NONE_MATCH\"\nhead -c \"$CONTENT_LENGTH\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = config(
        &[("/cgi/", &format!("cgi:{}", cgi.display()), "login")],
        &format!("\n[login]\nusers_file = \"{}\"\n", users.display()),
    );
    let proxy = Proxy::start(&text).await;
    let c = browser();
    let form = "application/x-www-form-urlencoded";
    let resp = post(&c, &proxy, "/cgi/save.cgi?x=1", form, FORM).await;
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (_, to) = sign_in_at(&c, &proxy, &location).await;
    let resp = c
        .get(proxy.url(&to))
        .header("if-none-match", "\"cached\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        format!("POST {} alice  {FORM}", FORM.len())
    );
}
