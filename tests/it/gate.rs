//! Every way around the gate, tried from outside over real TCP: other
//! spellings of a protected path (against an HTTP backend and against the
//! CGI gateway with real scripts), request heads naming two hosts, broken
//! chunked framing, forged headers in trailers and in odd spellings.
//!
//! The rule each test holds the proxy to: a protected page is reached only
//! through the gate; anything else is a 302/401 from the gate, a 400, or a
//! 404, and never a 502.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{Backend, Proxy, Reply, config, raw};
use tempfile::TempDir;

/// Spellings of `/members/page` that a backend decoding escapes, merging
/// slashes or resolving dot segments would read as that path.
const HTTP_SPELLINGS: &[&str] = &[
    "/%6dembers/page",
    "/%6Dembers/page",
    "/m%65mbers/page",
    "//members/page",
    "///members//page",
    "/./members/page",
    "/pub/../members/page",
    "/pub/%2e%2e/members/page",
    "/pub/%2E%2E/members/page",
    "/pub/.%2e/members/page",
    "/%2e/members/page",
    "/x/y/../../members/page",
    "/members/./page",
    "/members/page/",
    "/%2e%2e/members/page",
    "/../members/page",
    "/members/%zz",
];

/// The status a bypass attempt may get: the gate's own answers, or a
/// refusal. Never the page, never a 502.
fn is_refusal(status: u16) -> bool {
    matches!(status, 302 | 401 | 400 | 404)
}

/// Sends a request line verbatim (no client library would send these
/// spellings unchanged) and returns the status and the whole response.
async fn get_raw(proxy: &Proxy, target: &str) -> (u16, String) {
    let text = raw(
        proxy.addr,
        format!("GET {target} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    (status_of(&text), text)
}

fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

#[tokio::test]
async fn other_spellings_of_a_protected_path_meet_the_gate_in_front_of_http() {
    let backend = Backend::with(|seen| Reply::ok(&format!("page for {}", seen.uri))).await;
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
        ],
        "",
    ))
    .await;
    for spelling in HTTP_SPELLINGS {
        let before = backend.seen().len();
        let (status, text) = get_raw(&proxy, spelling).await;
        assert!(is_refusal(status), "{spelling}: {status}\n{text}");
        assert_eq!(
            backend.seen().len(),
            before,
            "{spelling} reached the backend"
        );
    }
    // An escaped slash or backslash is data, not a separator: it stays
    // escaped, so the path never splits into the protected one here.
    for (spelling, forwarded) in [
        ("/members%2fpage", "/members%2Fpage"),
        ("/pub/..%2fmembers/page", "/pub/..%2Fmembers/page"),
        ("/pub/..%5cmembers/page", "/pub/..%5Cmembers/page"),
    ] {
        let (status, text) = get_raw(&proxy, spelling).await;
        assert_eq!(status, 200, "{spelling}: {text}");
        assert_eq!(backend.last().uri, forwarded);
    }
    // The plain path meets the gate; a public path still works.
    assert_eq!(get_raw(&proxy, "/members/page").await.0, 302);
    let (status, text) = get_raw(&proxy, "/pub/./a//b").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(backend.last().uri, "/pub/a/b");
    assert_eq!(proxy.gate().metrics.upstream_errors(), 0);
}

#[tokio::test]
async fn the_backend_gets_the_path_that_was_checked_and_the_query_untouched() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let cases = [
        ("/%61/b%2f%7e?x=%2e%2e//&y=%6d", "/a/b%2F~?x=%2e%2e//&y=%6d"),
        ("/a/./b/../c//d/", "/a/c/d/"),
        ("/%41%42c", "/ABc"),
    ];
    for (sent, forwarded) in cases {
        let (status, text) = get_raw(&proxy, sent).await;
        assert_eq!(status, 200, "{sent}: {text}");
        assert_eq!(backend.last().uri, forwarded, "{sent}");
    }
    // The login redirect's `next` is the normalised path too.
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "login")], "")).await;
    let (status, text) = get_raw(&proxy, "/a/../%62?q=1").await;
    assert_eq!(status, 302);
    assert!(text.contains("next=%2Fb%3Fq%3D1"), "{text}");
}

/// A CGI directory with a public index and a members' script protected by
/// its own `login` route, as in the demo site.
struct CgiSite {
    _root: TempDir,
    proxy: Proxy,
}

impl CgiSite {
    async fn start() -> CgiSite {
        let root = tempfile::tempdir().unwrap();
        let cgi = root.path().join("cgi-bin");
        std::fs::create_dir_all(cgi.join("pub")).unwrap();
        script(&cgi.join("members.cgi"), "echo 'for members only'");
        script(&cgi.join("index.cgi"), "echo 'welcome'");
        script(&cgi.join("pub/index.cgi"), "echo 'public area'");
        let dir = cgi.display().to_string();
        let proxy = Proxy::start(&config(
            &[
                ("/", &format!("cgi:{dir}"), "session"),
                ("/members.cgi", &format!("cgi:{dir}"), "login"),
            ],
            "",
        ))
        .await;
        CgiSite { _root: root, proxy }
    }
}

fn script(path: &Path, body: &str) {
    std::fs::write(
        path,
        format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n{body}\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn other_spellings_of_a_protected_script_meet_the_gate_in_front_of_cgi() {
    let site = CgiSite::start().await;
    let proxy = &site.proxy;
    for spelling in [
        "/%6dembers.cgi",
        "/%6Dembers.cgi",
        "/members%2ecgi",
        "//members.cgi",
        "/./members.cgi",
        "/pub/../members.cgi",
        "/pub/%2e%2e/members.cgi",
        "/%2e/members.cgi",
        "/pub/..%2fmembers.cgi",
        "/..%2fmembers.cgi",
        "/pub/..%5cmembers.cgi",
        "/members.cgi/",
        "/members.cgi/extra/info",
        "//members.cgi//x",
        "/../members.cgi",
        "/members.cgi%00",
    ] {
        let (status, text) = get_raw(proxy, spelling).await;
        assert!(is_refusal(status), "{spelling}: {status}\n{text}");
        assert!(!text.contains("for members only"), "{spelling}:\n{text}");
    }
    let (status, text) = get_raw(proxy, "/pub/").await;
    assert_eq!(status, 200);
    assert!(text.contains("public area"), "{text}");
    let (status, text) = get_raw(proxy, "//pub//./").await;
    assert_eq!(status, 200);
    assert!(text.contains("public area"), "{text}");
}

#[tokio::test]
async fn a_request_head_names_one_host() {
    let backend = Backend::start().await;
    let admin = Backend::with(|_| Reply::ok("admin area")).await;
    let mut toml = config(&[("/", &backend.url(), "public")], "");
    toml.push_str(&format!(
        "\n[[route]]\npath = \"/\"\nhost = \"admin.example\"\nupstream = \"{}\"\naccess = \"login\"\n",
        admin.url()
    ));
    let proxy = Proxy::start(&toml).await;
    let send = |head: &'static str| raw(proxy.addr, head.as_bytes());

    let twice = send(
        "GET / HTTP/1.1\r\nHost: www.example\r\nHost: admin.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&twice), 400, "{twice}");
    let disagree = send(
        "GET http://admin.example/ HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&disagree), 400, "{disagree}");
    let other_port = send("GET http://admin.example:8080/ HTTP/1.1\r\nHost: admin.example\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&other_port), 400, "{other_port}");

    // An absolute-form target's host is the one routed on.
    let absolute = send(
        "GET http://admin.example/ HTTP/1.1\r\nHost: ADMIN.example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&absolute), 302, "{absolute}");
    let by_host = send("GET / HTTP/1.1\r\nHost: admin.example\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&by_host), 302, "{by_host}");
    let plain = send("GET / HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&plain), 200, "{plain}");
    assert!(admin.seen().is_empty());
}

/// Chunked bodies no server should accept: a hex prefix, bare LF line ends,
/// a garbage size, a size too large to be a number.
const BAD_CHUNKED: &[&str] = &[
    "0x5\r\nhello\r\n0\r\n\r\n",
    "5\nhello\n0\n\n",
    "zz\r\nhello\r\n0\r\n\r\n",
    "5\r\nhelloXX0\r\n\r\n",
    "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "-5\r\nhello\r\n0\r\n\r\n",
];

async fn post_chunked(proxy: &Proxy, path: &str, body: &str) -> String {
    raw(
        proxy.addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
        )
        .as_bytes(),
    )
    .await
}

#[tokio::test]
async fn broken_chunked_framing_is_the_clients_error() {
    let backend = Backend::start().await;
    let root = tempfile::tempdir().unwrap();
    // A script that reads its whole body before answering.
    std::fs::write(
        root.path().join("echo.cgi"),
        "#!/bin/sh\ncat >/dev/null\nprintf 'Content-Type: text/plain\\r\\n\\r\\nread\\n'\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.path().join("echo.cgi"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let proxy = Proxy::start(&config(
        &[
            ("/", &backend.url(), "public"),
            ("/cgi/", &format!("cgi:{}", root.path().display()), "public"),
        ],
        "",
    ))
    .await;
    for body in BAD_CHUNKED {
        for path in ["/upload", "/cgi/echo.cgi"] {
            let text = post_chunked(&proxy, path, body).await;
            assert_eq!(status_of(&text), 400, "{path} {body:?}:\n{text}");
        }
    }
    let metrics = &proxy.gate().metrics;
    assert_eq!(metrics.upstream_errors(), 0);
    // A well-formed one passes.
    let good = post_chunked(&proxy, "/upload", "5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&good), 200, "{good}");
    assert_eq!(&backend.last().body[..], b"hello");
    let good = post_chunked(&proxy, "/cgi/echo.cgi", "5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status_of(&good), 200, "{good}");
    // The proxy keeps serving everyone else.
    let again = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&again), 200);
}

#[tokio::test]
async fn trailers_are_stripped_like_headers() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let text = raw(
        proxy.addr,
        b"POST /t HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\
          Trailer: X-Checksum, X-Session-User, X_Session_User, X.Session.Data, X-Forwarded-For, X_Forwarded_For, Host, Cookie\r\n\
          Connection: close\r\n\r\n\
          5\r\nhello\r\n0\r\n\
          X-Checksum: abc\r\nX-Session-User: admin\r\nX_Session_User: admin\r\nX.Session.Data: a=1\r\n\
          X-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nHost: evil.example\r\nCookie: sg_session=x\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&text), 200, "{text}");
    let seen = backend.last();
    assert_eq!(&seen.body[..], b"hello");
    let trailers = seen.trailers.clone().unwrap_or_default();
    for name in trailers.keys() {
        let n = name.as_str().replace(['_', '.'], "-");
        assert!(
            !n.starts_with("x-session-") && !n.starts_with("x-forwarded-"),
            "trailer {name} reached the backend"
        );
        assert!(
            name != "host" && name != "cookie",
            "trailer {name} reached the backend"
        );
    }
    // What a trailer is for still travels.
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.to_str().unwrap()),
        Some("abc"),
        "trailers seen: {trailers:?}"
    );
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
}

/// `Connection` may name any field, `Host` too: it goes as hop-by-hop,
/// and the backend still gets the host the request was routed by.
#[tokio::test]
async fn a_host_named_in_connection_is_still_sent() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let text = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: site.example\r\nConnection: close, Host\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&text), 200, "{text}");
    let seen = backend.last();
    assert_eq!(seen.header("host").as_deref(), Some("site.example"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("site.example")
    );
}

#[tokio::test]
async fn forwarding_headers_in_odd_spellings_never_reach_the_backend() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let text = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: site.example\r\nX_Forwarded_For: 6.6.6.6\r\n\
          X.Forwarded.Proto: https\r\nX_Real_IP: 6.6.6.6\r\nX-Forwarded-Port: 443\r\n\
          x_forwarded_host: evil.example\r\nForwarded: for=6.6.6.6\r\nX_FORWARDED_PREFIX: /admin\r\n\
          Connection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&text), 200, "{text}");
    let seen = backend.last();
    for name in seen.headers.keys() {
        let s = name.as_str();
        assert!(
            !s.contains('_') && !s.contains('.'),
            "{s} reached the backend"
        );
    }
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("site.example")
    );
    assert_eq!(seen.header("x-forwarded-port"), None);
    assert_eq!(seen.header("forwarded"), None);
}

#[tokio::test]
async fn http2_trailers_are_stripped_like_headers() {
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    trailers.insert("x-session-user", "admin".parse().unwrap());
    trailers.insert("x_session_user", "admin".parse().unwrap());
    trailers.insert("x.forwarded.for", "6.6.6.6".parse().unwrap());
    let frames: Vec<Result<Frame<bytes::Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(bytes::Bytes::from_static(b"hello"))),
        Ok(Frame::trailers(trailers)),
    ];
    let req = http::Request::post(proxy.url("/h2"))
        .header(
            "trailer",
            "x-checksum, x-session-user, x_session_user, x.forwarded.for",
        )
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = backend.last();
    assert_eq!(&seen.body[..], b"hello");
    let trailers = seen.trailers.clone().unwrap_or_default();
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.to_str().unwrap()),
        Some("abc"),
        "{trailers:?}"
    );
    assert_eq!(trailers.len(), 1, "{trailers:?}");
}
