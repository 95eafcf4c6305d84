//! FastCGI routes against a real php-fpm (a config of its own, one pool on
//! TCP and one on a unix socket), and against servers that misbehave.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::programs::{PHP_FPM_CHILDREN, PhpFpm};
use crate::harness::{KEY, Proxy, browser, client, session_cookie};

/// The scripts of the test site.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "app/env.php",
        "<?php header('Content-Type: application/json'); echo json_encode($_SERVER);",
    ),
    ("app/index.php", "<?php echo 'index of app';"),
    (
        "post.php",
        "<?php $in = file_get_contents('php://input'); echo strlen($in), ' ', hash('crc32b', $in);",
    ),
    (
        "session.php",
        "<?php
if (isset($_GET['login'])) { header('X-Session-Login: ' . $_GET['login']); }
if (isset($_GET['set'])) { header('X-Session-Set: ' . $_GET['set']); }
echo $_SERVER['HTTP_X_SESSION_DATA'] ?? '';",
    ),
    ("redirect.php", "<?php header('Location: /elsewhere?x=1');"),
    ("missing.php", "<?php http_response_code(404); echo 'gone';"),
    (
        "big.php",
        "<?php for ($i = 0; $i < 160; $i++) { echo str_repeat(chr(97 + $i % 26), 65536); flush(); }",
    ),
    ("sleep.php", "<?php sleep(4); echo 'late';"),
    ("hello.php", "<?php echo 'hello';"),
];

/// A document root holding [`SCRIPTS`].
fn docroot() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in SCRIPTS {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("directory");
        std::fs::write(&path, text).expect("write script");
    }
    // php-fpm's children may run as another user.
    for dir in [dir.path().to_path_buf(), dir.path().join("app")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// A proxy with one `fastcgi` route at `/` to `upstream`, root `root`.
async fn start_proxy(upstream: &str, root: &Path, extra_route: &str) -> Proxy {
    Proxy::start(&format!(
        "[server]\nupstream_timeout = \"2s\"\nupstream_max_connections = {PHP_FPM_CHILDREN}\n\n\
         [session]\nsecret_keys = [\"{KEY}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\nroot = \"{}\"\naccess = \"session\"\n{extra_route}\n",
        root.display()
    ))
    .await
}

/// The `$_SERVER` a request to `env.php` saw.
async fn server_vars(
    http: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
) -> BTreeMap<String, serde_json::Value> {
    let mut req = http.get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().await.expect("JSON of $_SERVER")
}

fn var<'a>(vars: &'a BTreeMap<String, serde_json::Value>, name: &str) -> &'a str {
    vars.get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing: {vars:?}"))
}

#[tokio::test]
async fn php_sees_the_cgi_environment_over_a_unix_socket() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let root = docroot();
    let upstream = format!("fastcgi:unix:{}", fpm.socket.display());
    let proxy = start_proxy(
        &upstream,
        root.path(),
        "env = { APP_MODE = \"test\", GITWEB_CONFIG = \"/etc/gitweb.conf\" }",
    )
    .await;
    let http = browser();
    let url = proxy.url("/app/env.php/extra/path?x=1&y=%20");
    let vars = server_vars(&http, url.clone(), &[("Remote-User", "mallory")]).await;
    let root_text = root.path().display().to_string();
    assert_eq!(var(&vars, "SCRIPT_NAME"), "/app/env.php");
    assert_eq!(var(&vars, "PATH_INFO"), "/extra/path");
    assert_eq!(
        var(&vars, "SCRIPT_FILENAME"),
        format!("{root_text}/app/env.php")
    );
    assert_eq!(var(&vars, "DOCUMENT_ROOT"), root_text);
    assert_eq!(var(&vars, "QUERY_STRING"), "x=1&y=%20");
    assert_eq!(
        var(&vars, "REQUEST_URI"),
        "/app/env.php/extra/path?x=1&y=%20"
    );
    assert_eq!(var(&vars, "REQUEST_METHOD"), "GET");
    assert_eq!(var(&vars, "GATEWAY_INTERFACE"), "CGI/1.1");
    assert_eq!(var(&vars, "REDIRECT_STATUS"), "200");
    assert_eq!(var(&vars, "APP_MODE"), "test");
    assert_eq!(var(&vars, "GITWEB_CONFIG"), "/etc/gitweb.conf");
    assert_eq!(var(&vars, "HTTP_REMOTE_USER"), "mallory");
    assert!(!vars.contains_key("REMOTE_USER"), "{vars:?}");
    assert!(!vars.contains_key("AUTH_TYPE"), "{vars:?}");

    // Signed in (by a script's control header), the visitor is REMOTE_USER.
    let resp = http
        .get(proxy.url("/session.php?login=alice"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let vars = server_vars(&http, url, &[("Remote-User", "mallory")]).await;
    assert_eq!(var(&vars, "REMOTE_USER"), "alice");
    assert_eq!(var(&vars, "AUTH_TYPE"), "Form");
    assert_eq!(var(&vars, "HTTP_REMOTE_USER"), "mallory");

    // A directory runs its index script.
    let resp = http.get(proxy.url("/app/")).send().await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "index of app");
    // A path that could leave the root never reaches the server.
    let resp = http
        .get(proxy.url("/app%2F..%2F..%2Fetc/passwd.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 404, "{}", fpm.output());
}

/// crc32 (IEEE), as PHP's `hash('crc32b')` prints it.
fn crc32(data: &[u8]) -> String {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    format!("{:08x}", !crc)
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let root = docroot();
    let proxy = start_proxy(&format!("fastcgi://{}", fpm.addr), root.path(), "").await;
    let http = client();
    for size in [0, 11, 65_535, 65_536, 3 * 1024 * 1024 + 7] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let resp = http
            .post(proxy.url("/post.php"))
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 200, "{}", fpm.output());
        assert_eq!(
            resp.text().await.expect("body"),
            format!("{size} {}", crc32(&body))
        );
    }
    // A chunked body of unknown length is read whole first, to tell PHP
    // its CONTENT_LENGTH; within a bound.
    let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![Ok(b"abc"), Ok(b"defg")];
    let resp = http
        .post(proxy.url("/post.php"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let chunked = resp.text().await.expect("body");
    // A client whose chunked framing breaks gets 400, not 502.
    let answer = crate::harness::raw(
        proxy.addr,
        b"POST /post.php HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(chunked, format!("7 {}", crc32(b"abcdefg")));
    let too_large: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..=8).map(|_| Ok(vec![b'x'; 1024 * 1024])).collect();
    let resp = http
        .post(proxy.url("/post.php"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            too_large,
        )))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 413);
    // The rest of the body was never read: the client is told the
    // connection ends with this answer.
    assert_eq!(resp.headers()["connection"], "close");

    // A new client: the 413 went out before the body was read, so the proxy
    // closes that connection, and the client's pool may not know yet when a
    // proxy thread of its own (workers) closes it.
    let resp = client()
        .get(proxy.url("/big.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("body");
    assert_eq!(body.len(), 160 * 65536);
    for (i, chunk) in body.chunks(65536).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == b'a' + (i % 26) as u8),
            "chunk {i}"
        );
    }
}

#[tokio::test]
async fn control_headers_status_and_location() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let root = docroot();
    let proxy = start_proxy(&format!("fastcgi://{}", fpm.addr), root.path(), "").await;
    let http = client();
    let resp = http
        .get(proxy.url("/session.php?set=color%3Dblue"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    // The control header went to the session, not to the client.
    assert!(resp.headers().get("x-session-set").is_none());
    let cookie = session_cookie(&resp).expect("a session cookie");
    let resp = http
        .get(proxy.url("/session.php"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("response");
    assert!(
        resp.text().await.expect("body").contains("color=blue"),
        "{}",
        fpm.output()
    );

    let resp = http
        .get(proxy.url("/redirect.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/elsewhere?x=1");
    let resp = http
        .get(proxy.url("/missing.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.expect("body"), "gone");
}

/// A TCP relay in front of a server, counting the connections made to it.
struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, accepted }
    }
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let relay = Relay::start(fpm.addr).await;
    let root = docroot();
    let proxy = start_proxy(&format!("fastcgi://{}", relay.addr), root.path(), "").await;
    let http = client();
    for _ in 0..20 {
        let resp = http
            .get(proxy.url("/hello.php"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "hello");
    }
    assert_eq!(relay.accepted.load(Ordering::SeqCst), 1);
    // Two at a time, twenty times. A pair that finds one idle connection
    // opens a second; while that one waits for its first answer, the
    // pool keeps nothing idle (see `upstream::fastcgi::pool`), so a few
    // more are opened, but never more than one a pair.
    for _ in 0..20 {
        let url = proxy.url("/post.php");
        let (a, b) = tokio::join!(
            http.post(&url).body("one").send(),
            http.post(&url).body("two").send()
        );
        for resp in [a, b] {
            let resp = resp.expect("response");
            assert_eq!(resp.status(), 200);
            assert!(resp.text().await.expect("body").starts_with("3 "));
        }
    }
    let after_pairs = relay.accepted.load(Ordering::SeqCst);
    assert!((1..=21).contains(&after_pairs), "{after_pairs} connections");
    // After the burst, a connection is idle again and carries what follows.
    for _ in 0..10 {
        let resp = http
            .get(proxy.url("/hello.php"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.text().await.expect("body"), "hello");
    }
    assert_eq!(relay.accepted.load(Ordering::SeqCst), after_pairs);
}

#[tokio::test]
async fn under_steady_load_the_connections_are_reused() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let relay = Relay::start(fpm.addr).await;
    let root = docroot();
    let proxy = start_proxy(&format!("fastcgi://{}", relay.addr), root.path(), "").await;
    let http = client();
    // Eight clients, each sending its next request as soon as the last is
    // answered: four times as many as there are connections, so requests
    // always wait for one to come back.
    let clients = (0..8).map(|_| {
        let (http, url) = (http.clone(), proxy.url("/hello.php"));
        async move {
            for _ in 0..40 {
                let resp = http.get(&url).send().await.expect("response");
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.text().await.expect("body"), "hello");
            }
        }
    });
    futures_util::future::join_all(clients).await;
    // 320 requests. A pool that replaced its connections as they ended
    // (each close letting a waiting request open another) made one a request.
    let accepted = relay.accepted.load(Ordering::SeqCst);
    assert!(
        accepted <= 4 * PHP_FPM_CHILDREN,
        "{accepted} connections for 320 requests"
    );
}

#[tokio::test]
async fn more_connections_than_php_fpm_has_children_do_not_starve() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let root = docroot();
    // A pool bound above the children: connections beyond them wait in
    // php-fpm's backlog until a kept-alive one is closed.
    let proxy = Proxy::start(&format!(
        "[server]\nupstream_timeout = \"2s\"\nupstream_max_connections = {}\n\n\
         [session]\nsecret_keys = [\"{KEY}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"fastcgi://{}\"\nroot = \"{}\"\n",
        4 * PHP_FPM_CHILDREN,
        fpm.addr,
        root.path().display()
    ))
    .await;
    let http = client();
    for _ in 0..3 {
        let requests = (0..4 * PHP_FPM_CHILDREN).map(|_| http.get(proxy.url("/hello.php")).send());
        for resp in futures_util::future::join_all(requests).await {
            assert_eq!(resp.expect("response").status(), 200, "{}", fpm.output());
        }
    }
}

#[tokio::test]
async fn a_slow_script_is_a_504_and_a_dead_server_a_502() {
    let Some(mut fpm) = PhpFpm::start().await else {
        return;
    };
    let root = docroot();
    let proxy = start_proxy(&format!("fastcgi://{}", fpm.addr), root.path(), "").await;
    let http = client();
    let resp = http
        .get(proxy.url("/sleep.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 504);
    // The other child still answers; the connection given up on is closed.
    let resp = http
        .get(proxy.url("/hello.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    fpm.kill();
    // The kept-alive connection is dead, and nothing listens any more.
    for _ in 0..2 {
        let resp = http
            .get(proxy.url("/hello.php"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 502);
    }
}

/// A server on TCP that reads a little, then does `answer` with the socket.
async fn fake_server<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// One FastCGI record of request 1.
fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&u16::try_from(content.len()).expect("short").to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(content);
    out
}

#[tokio::test]
async fn servers_that_misbehave_are_a_502_never_a_panic() {
    let root = docroot();
    let junk = fake_server(async |mut s| {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let closes = fake_server(async |s| drop(s)).await;
    let bad_head = fake_server(async |mut s| {
        let _ = s.write_all(&record(6, b"this is no header\n\n")).await;
        let _ = s.write_all(&record(3, &[0; 8])).await;
    })
    .await;
    let other_request = fake_server(async |mut s| {
        let mut r = record(6, b"Status: 200\r\n\r\n");
        r[3] = 2;
        let _ = s.write_all(&r).await;
    })
    .await;
    let overloaded = fake_server(async |mut s| {
        let _ = s.write_all(&record(3, &[0, 0, 0, 0, 2, 0, 0, 0])).await;
    })
    .await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    for addr in [junk, closes, bad_head, other_request, overloaded, refused] {
        let proxy = start_proxy(&format!("fastcgi://{addr}"), root.path(), "").await;
        let resp = client()
            .get(proxy.url("/x.php"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status(), 502, "{addr}");
    }

    // A server that closes mid-body: the response is cut (the client may
    // see the head first, or not even that when the cut comes at once).
    let cut = fake_server(async |mut s| {
        let _ = s
            .write_all(&record(6, b"Content-Type: text/plain\r\n\r\npart of it"))
            .await;
    })
    .await;
    let proxy = start_proxy(&format!("fastcgi://{cut}"), root.path(), "").await;
    match client().get(proxy.url("/x.php")).send().await {
        Ok(resp) => {
            assert_eq!(resp.status(), 200);
            assert!(
                resp.bytes().await.is_err(),
                "a cut body must not look whole"
            );
        }
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    // A server that accepts and says nothing: 504.
    let silent = fake_server(async |s| {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        drop(s);
    })
    .await;
    let proxy = start_proxy(&format!("fastcgi://{silent}"), root.path(), "").await;
    let resp = client()
        .get(proxy.url("/x.php"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 504);
}
