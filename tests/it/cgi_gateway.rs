//! The CGI gateway against real shell and Python scripts written into a
//! temporary directory: what the scripts see, what the client gets, and that
//! no process outlives its request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use sessiongate::respond::Reject;
use sessiongate::upstream::cgi::{CgiBody, CgiContext, CgiError, CgiGateway, CgiOptions};
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::harness::eventually;

/// How long a test waits for something that should happen at once.
const BUDGET: Duration = Duration::from_secs(10);

/// A temporary site: `root/` with the CGI directory `root/cgi-bin/` in it.
struct Site {
    root: TempDir,
    cgi: PathBuf,
}

impl Site {
    fn new() -> Site {
        let root = tempfile::tempdir().expect("temporary directory");
        let cgi = root.path().join("cgi-bin");
        std::fs::create_dir(&cgi).expect("cgi-bin");
        Site { root, cgi }
    }

    /// Writes an executable script into the CGI directory (or below it).
    fn script(&self, name: &str, text: &str) -> PathBuf {
        write_file(&self.cgi.join(name), text, 0o755)
    }

    fn gateway(&self, options: CgiOptions) -> CgiGateway {
        CgiGateway::new(&self.cgi, options).expect("gateway")
    }

    /// A file the scripts wrote, once it is there.
    async fn wait_for_file(&self, name: &str) -> String {
        let path = self.cgi.join(name);
        eventually(&format!("{name} is written"), BUDGET, async || {
            std::fs::read_to_string(&path)
                .ok()
                .filter(|s| s.ends_with('\n'))
        })
        .await
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("script directory");
    }
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

fn options() -> CgiOptions {
    CgiOptions {
        timeout: Duration::from_secs(20),
        max_concurrent: 4,
        max_queue: 4,
    }
}

fn context(route_prefix: &str) -> CgiContext {
    CgiContext {
        remote_addr: "192.0.2.7:54321".parse().expect("address"),
        local_addr: "127.0.0.1:8080".parse().expect("address"),
        https: true,
        route_prefix: route_prefix.to_owned(),
        remote_user: None,
        resign: None,
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("host", "example.org:8080")
        .body(Full::default())
        .expect("request")
}

/// What the client got.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn call<B>(
    gateway: &CgiGateway,
    request: Request<B>,
    prefix: &str,
) -> Result<Answer, CgiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = gateway.serve(request, &context(prefix)).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `env` output as a map.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether `pid` has ended. A zombie counts: a grandchild orphaned by the
/// kill is reaped by init, not by us.
fn has_ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Whether `pid` is gone altogether: killed and reaped.
fn is_reaped(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn pid_in(text: &str) -> i32 {
    text.trim().parse().expect("pid")
}

/// A request body fed from a channel, to send it piece by piece.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx))
}

/// Prints the environment, the working directory, the process group, stdin.
const ENV_SCRIPT: &str = r#"#!/bin/sh
printf 'Content-Type: text/plain\n\n'
env
echo "CWD=$(pwd)"
echo "PID=$$"
echo "PGID=$(cut -d' ' -f5 /proc/$$/stat)"
echo "STDIN=$(cat)"
"#;

#[tokio::test]
async fn environment_follows_cgi_1_1() {
    let site = Site::new();
    let script = site.script("env.cgi", ENV_SCRIPT);
    let gateway = site.gateway(options());
    let request = Request::post("/cgi-bin/env.cgi/extra/path%20x?a=1&b=%2F")
        .header("host", "example.org:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "7")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("accept", "text/html")
        .header("accept", "text/plain")
        .header("authorization", "Basic c2VjcmV0")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("proxy", "http://evil.example:3128")
        .header("x-session-user", "alice")
        .header("x-session-data", "count=3")
        .header("x_session_user", "mallory")
        .body(Full::new(Bytes::from_static(b"q=hello")))
        .expect("request");

    let answer = call(&gateway, request, "/cgi-bin/").await.expect("answer");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("text/plain"));
    let env = parse_env(&answer.body);
    let dir = std::fs::canonicalize(&site.cgi).expect("canonical dir");
    let dir = dir.to_str().expect("utf-8 path");
    let filename = std::fs::canonicalize(&script).expect("canonical script");
    let expected = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        (
            "SERVER_SOFTWARE",
            concat!("sessiongate/", env!("CARGO_PKG_VERSION")),
        ),
        ("SERVER_NAME", "example.org"),
        ("SERVER_PORT", "8080"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "54321"),
        ("HTTPS", "on"),
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/cgi-bin/env.cgi/extra/path%20x?a=1&b=%2F"),
        ("QUERY_STRING", "a=1&b=%2F"),
        ("SCRIPT_NAME", "/cgi-bin/env.cgi"),
        ("PATH_INFO", "/extra/path x"),
        ("PATH_TRANSLATED", &format!("{dir}/extra/path x")),
        ("SCRIPT_FILENAME", filename.to_str().expect("utf-8 path")),
        ("DOCUMENT_ROOT", dir),
        ("CONTENT_LENGTH", "7"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("HTTP_HOST", "example.org:8080"),
        ("HTTP_COOKIE", "a=1; b=2"),
        ("HTTP_ACCEPT", "text/html, text/plain"),
        ("HTTP_X_SESSION_USER", "alice"),
        ("HTTP_X_SESSION_DATA", "count=3"),
        ("CWD", dir),
        ("STDIN", "q=hello"),
    ];
    for (name, value) in expected {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    for name in [
        "HTTP_PROXY",
        "HTTP_AUTHORIZATION",
        "HTTP_PROXY_AUTHORIZATION",
        "HTTP_CONTENT_LENGTH",
        "HTTP_CONTENT_TYPE",
    ] {
        assert!(!env.contains_key(name), "{name} must not be set");
    }
    assert!(
        !answer.body.contains("mallory"),
        "a header spelt with _ must not reach the script"
    );
    assert!(
        !answer.body.contains("c2VjcmV0"),
        "credentials must not reach the script"
    );
    assert_eq!(
        env["PID"], env["PGID"],
        "the script leads its own process group"
    );
}

#[tokio::test]
async fn plain_get_sets_an_empty_query_and_no_body_variables() {
    let site = Site::new();
    site.script("env.cgi", ENV_SCRIPT);
    let gateway = site.gateway(options());
    let mut context = context("/");
    context.https = false;
    let response = gateway
        .serve(
            Request::get("/env.cgi")
                .body(Full::default())
                .expect("request"),
            &context,
        )
        .await
        .expect("answer");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let env = parse_env(&String::from_utf8_lossy(&body));
    assert_eq!(env.get("QUERY_STRING").map(String::as_str), Some(""));
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some(""));
    assert_eq!(
        env.get("SERVER_NAME").map(String::as_str),
        Some("127.0.0.1"),
        "no Host: the listener's address"
    );
    for name in ["PATH_TRANSLATED", "HTTPS", "CONTENT_LENGTH", "CONTENT_TYPE"] {
        assert!(!env.contains_key(name), "{name} must not be set");
    }
    assert_eq!(env.get("STDIN").map(String::as_str), Some(""));
}

/// Run as a child of the test binary with `SESSIONGATE_KEY` set, since this
/// crate's tests may not change their own environment.
#[tokio::test]
async fn proxy_environment_does_not_reach_scripts() {
    if std::env::var_os("SESSIONGATE_KEY").is_none() {
        let exe = std::env::current_exe().expect("test binary");
        // The test's name in the binary: its path without the crate's name.
        let (_, module) = module_path!().split_once("::").expect("a module");
        let name = format!("{module}::proxy_environment_does_not_reach_scripts");
        let output = std::process::Command::new(exe)
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env("SESSIONGATE_KEY", "do-not-leak-this-secret-0123456789")
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test:\n{stdout}"
        );
        return;
    }
    let site = Site::new();
    site.script("env.cgi", ENV_SCRIPT);
    let answer = call(&site.gateway(options()), get("/env.cgi"), "/")
        .await
        .expect("answer");
    assert!(
        !answer.body.contains("do-not-leak-this-secret"),
        "secret visible to the script"
    );
    let env = parse_env(&answer.body);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name != "PATH" && name != "PWD" {
            assert!(
                !env.contains_key(name.as_ref()),
                "{name} leaked into the script's environment"
            );
        }
    }
}

#[tokio::test]
async fn request_and_response_bodies_stream() {
    const TOTAL: usize = 5 * 1024 * 1024;
    const PIECE: usize = 256 * 1024;
    let site = Site::new();
    site.script(
        "count.py",
        "#!/usr/bin/env python3\n\
         import sys\n\
         sys.stdout.write('Content-Type: text/plain\\r\\n\\r\\nstarted\\n')\n\
         sys.stdout.flush()\n\
         total = 0\n\
         while True:\n\
         \x20   chunk = sys.stdin.buffer.read(65536)\n\
         \x20   if not chunk:\n\
         \x20       break\n\
         \x20   total += len(chunk)\n\
         print(total)\n",
    );
    let gateway = site.gateway(options());
    let (tx, body) = channel_body();
    let request = Request::post("/count.py")
        .header("content-length", TOTAL.to_string())
        .body(body)
        .expect("request");
    tx.send(Bytes::from(vec![b'x'; PIECE]))
        .await
        .expect("first piece");

    // The answer and its first bytes arrive while most of the upload has not
    // even been sent: neither side is buffered whole.
    let response = tokio::time::timeout(BUDGET, gateway.serve(request, &context("/")))
        .await
        .expect("headers before the upload ends")
        .expect("answer");
    assert_eq!(response.headers()["content-type"], "text/plain");
    let mut body = response.into_body();
    let first = tokio::time::timeout(BUDGET, body.frame())
        .await
        .expect("first frame in time");
    let first = first
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("data frame");
    assert_eq!(&first[..], b"started\n");

    for _ in 1..TOTAL / PIECE {
        tx.send(Bytes::from(vec![b'x'; PIECE]))
            .await
            .expect("piece");
    }
    drop(tx);
    let rest = body.collect().await.expect("rest of the body").to_bytes();
    assert_eq!(String::from_utf8_lossy(&rest).trim(), TOTAL.to_string());
}

#[tokio::test]
async fn status_field_sets_the_status() {
    let site = Site::new();
    site.script(
        "missing.cgi",
        "#!/bin/sh\nprintf 'Status: 404 Not Found\\nContent-Type: text/plain\\n\\nno such page'\n",
    );
    let answer = call(&site.gateway(options()), get("/missing.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, "no such page");
}

#[tokio::test]
async fn crlf_header_lines_are_read_too() {
    let site = Site::new();
    site.script(
        "crlf.py",
        "#!/usr/bin/env python3\nimport sys\nsys.stdout.write('Status: 201 Created\\r\\nX-Thing: yes\\r\\n\\r\\nmade')\n",
    );
    let answer = call(&site.gateway(options()), get("/crlf.py"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.header("x-thing"), Some("yes"));
    assert_eq!(answer.body, "made");
}

#[tokio::test]
async fn header_block_may_arrive_byte_by_byte() {
    let site = Site::new();
    site.script(
        "drip.py",
        "#!/usr/bin/env python3\nimport sys\n\
         for c in 'Status: 202 Accepted\\r\\nX-Drip: 1\\r\\n\\r\\nslow':\n\
         \x20   sys.stdout.write(c)\n\
         \x20   sys.stdout.flush()\n",
    );
    let answer = call(&site.gateway(options()), get("/drip.py"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.header("x-drip"), Some("1"));
    assert_eq!(answer.body, "slow");
}

#[tokio::test]
async fn absolute_location_is_a_client_redirect() {
    let site = Site::new();
    site.script(
        "away.cgi",
        "#!/bin/sh\nprintf 'Location: https://example.net/elsewhere\\n\\n'\n",
    );
    site.script(
        "moved.cgi",
        "#!/bin/sh\nprintf 'Status: 301 Moved Permanently\\nLocation: /new.cgi\\n\\n'\n",
    );
    let gateway = site.gateway(options());

    let answer = call(&gateway, get("/away.cgi"), "/").await.expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(
        answer.header("location"),
        Some("https://example.net/elsewhere")
    );

    let answer = call(&gateway, get("/moved.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(
        answer.status,
        StatusCode::MOVED_PERMANENTLY,
        "a Status makes it a client redirect"
    );
    assert_eq!(answer.header("location"), Some("/new.cgi"));
}

#[tokio::test]
async fn local_redirect_runs_the_new_path_as_a_get() {
    let site = Site::new();
    site.script(
        "old.cgi",
        "#!/bin/sh\ncat >/dev/null\nprintf 'Location: /cgi-bin/new.cgi/more?from=old\\n\\n'\n",
    );
    site.script(
        "new.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         echo \"$REQUEST_METHOD $SCRIPT_NAME $PATH_INFO $QUERY_STRING $REQUEST_URI [${CONTENT_LENGTH-none}]\"\n",
    );
    let request = Request::post("/cgi-bin/old.cgi")
        .header("content-type", "text/plain")
        .header("content-length", "4")
        .body(Full::new(Bytes::from_static(b"data")))
        .expect("request");
    let answer = call(&site.gateway(options()), request, "/cgi-bin/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body.trim(),
        "GET /cgi-bin/new.cgi /more from=old /cgi-bin/new.cgi/more?from=old [none]"
    );
}

#[tokio::test]
async fn local_redirect_outside_the_route_goes_to_the_client() {
    let site = Site::new();
    site.script(
        "out.cgi",
        "#!/bin/sh\nprintf 'Location: /static/page.html\\n\\n'\n",
    );
    let answer = call(
        &site.gateway(options()),
        get("/cgi-bin/out.cgi"),
        "/cgi-bin/",
    )
    .await
    .expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.header("location"), Some("/static/page.html"));
    assert_eq!(answer.body, "");
}

#[tokio::test]
async fn location_with_other_fields_is_a_client_redirect() {
    // Control headers must reach the proxy, so this cannot be followed
    // inside the gateway.
    let site = Site::new();
    site.script(
        "login.cgi",
        "#!/bin/sh\nprintf 'X-Session-Login: alice\\nLocation: /home.cgi\\n\\n'\n",
    );
    site.script(
        "home.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhome'\n",
    );
    let answer = call(&site.gateway(options()), get("/login.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.header("location"), Some("/home.cgi"));
    assert_eq!(answer.header("x-session-login"), Some("alice"));
}

#[tokio::test]
async fn a_route_for_one_script_runs_that_script() {
    // [[route]] path = "/" and path = "/members.cgi" (stricter access) may
    // share one directory.
    let site = Site::new();
    let show =
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n";
    site.script("index.cgi", show);
    site.script("members.cgi", show);
    site.script(
        "go-home.cgi",
        "#!/bin/sh\nprintf 'Location: /index.cgi\\n\\n'\n",
    );
    let gateway = site.gateway(options());
    let answer = call(&gateway, get("/members.cgi"), "/members.cgi")
        .await
        .expect("answer");
    assert_eq!(answer.body, "/members.cgi|");
    let answer = call(&gateway, get("/members.cgi/x"), "/members.cgi")
        .await
        .expect("answer");
    assert_eq!(answer.body, "/members.cgi|/x");
    // A local redirect that leaves the route goes back through the proxy.
    let answer = call(&gateway, get("/go-home.cgi"), "/go-home.cgi")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.header("location"), Some("/index.cgi"));
}

#[tokio::test]
async fn local_redirect_check_can_send_redirects_back_through_the_proxy() {
    let site = Site::new();
    site.script(
        "members.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nsecret'\n",
    );
    site.script(
        "open.cgi",
        "#!/bin/sh\nprintf 'Location: %s\\n\\n' \"$QUERY_STRING\"\n",
    );
    let gateway = site.gateway(options());
    let answer = call(&gateway, get("/open.cgi?/members.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(
        answer.body, "secret",
        "without a check, any path in the route is followed"
    );

    let gateway = gateway.with_local_redirect_check(|path, ctx| {
        assert_eq!(ctx.route_prefix, "/");
        path != "/members.cgi"
    });
    let answer = call(&gateway, get("/open.cgi?/members.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.header("location"), Some("/members.cgi"));
    assert_eq!(answer.body, "");
}

#[tokio::test]
async fn local_redirect_with_a_body_is_a_client_redirect() {
    let site = Site::new();
    site.script(
        "r.cgi",
        "#!/bin/sh\nprintf 'Location: /other.cgi\\n\\nsee other.cgi'\n",
    );
    let answer = call(&site.gateway(options()), get("/r.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.body, "see other.cgi");
}

#[tokio::test]
async fn local_redirect_loop_is_a_bad_gateway() {
    let site = Site::new();
    site.script(
        "loop.cgi",
        "#!/bin/sh\nprintf 'Location: /loop.cgi\\n\\n'\n",
    );
    let error = call(&site.gateway(options()), get("/loop.cgi"), "/")
        .await
        .err()
        .expect("an error");
    assert!(matches!(error, CgiError::BadGateway(_)), "{error:?}");
}

#[tokio::test]
async fn path_info_script_name_and_directory_index() {
    let site = Site::new();
    let show =
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n";
    site.script("index.cgi", show);
    site.script("sub/tool.cgi", show);
    site.script("sub/deeper/index.cgi", show);
    std::os::unix::fs::symlink("sub/tool.cgi", site.cgi.join("alias.cgi")).expect("symlink");
    let gateway = site.gateway(options());
    let cases = [
        ("/cgi-bin/sub/tool.cgi/a/b", "/cgi-bin/sub/tool.cgi|/a/b"),
        ("/cgi-bin/sub/tool.cgi", "/cgi-bin/sub/tool.cgi|"),
        ("/cgi-bin/sub/tool.cgi/", "/cgi-bin/sub/tool.cgi|/"),
        ("/cgi-bin/sub/tool%2Ecgi/x", "/cgi-bin/sub/tool.cgi|/x"),
        ("/cgi-bin/", "/cgi-bin/index.cgi|"),
        ("/cgi-bin", "/cgi-bin/index.cgi|"),
        ("/cgi-bin/sub/deeper/", "/cgi-bin/sub/deeper/index.cgi|"),
        ("/cgi-bin/alias.cgi/p", "/cgi-bin/alias.cgi|/p"),
    ];
    for (uri, expected) in cases {
        let answer = call(&gateway, get(uri), "/cgi-bin/")
            .await
            .unwrap_or_else(|e| panic!("{uri}: {e:?}"));
        assert_eq!(answer.body, expected, "{uri}");
    }
    let error = call(&gateway, get("/cgi-bin/sub/"), "/cgi-bin/")
        .await
        .err()
        .expect("no index.cgi in sub/");
    assert!(matches!(error, CgiError::NotFound), "{error:?}");
    let error = call(&gateway, get("/cgi-bin/nothing.cgi"), "/cgi-bin/")
        .await
        .err()
        .expect("no such script");
    assert!(matches!(error, CgiError::NotFound), "{error:?}");
    let error = call(&gateway, get("/elsewhere/tool.cgi"), "/cgi-bin/")
        .await
        .err()
        .expect("outside the route");
    assert!(matches!(error, CgiError::NotFound), "{error:?}");
}

#[tokio::test]
async fn traversal_never_runs_anything() {
    let site = Site::new();
    let ran = site.root.path().join("ran");
    let outside = format!(
        "#!/bin/sh\ntouch '{}'\nprintf 'Content-Type: text/plain\\n\\nran'\n",
        ran.display()
    );
    write_file(&site.root.path().join("outside.cgi"), &outside, 0o755);
    site.script(
        "sub/inside.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\ninside'\n",
    );
    std::os::unix::fs::symlink("../outside.cgi", site.cgi.join("link.cgi")).expect("symlink");
    std::os::unix::fs::symlink(
        site.root.path().join("outside.cgi"),
        site.cgi.join("absolute.cgi"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("..", site.cgi.join("up")).expect("symlink");
    let gateway = site.gateway(options());

    let attempts = [
        "/cgi-bin/../outside.cgi",
        "/cgi-bin/sub/../../outside.cgi",
        "/cgi-bin/./sub/inside.cgi",
        "/cgi-bin/%2e%2e/outside.cgi",
        "/cgi-bin/%2E%2E/outside.cgi",
        "/cgi-bin/.%2e/outside.cgi",
        "/cgi-bin/..%2foutside.cgi",
        "/cgi-bin/sub%2f..%2f..%2foutside.cgi",
        "/cgi-bin/%2e%2e%2Foutside.cgi",
        "/cgi-bin/..%5coutside.cgi",
        "/cgi-bin/sub%5cinside.cgi",
        "/cgi-bin/sub%2finside.cgi",
        "/cgi-bin/sub/inside.cgi%00",
        "/cgi-bin/link.cgi",
        "/cgi-bin/absolute.cgi",
        "/cgi-bin/up/outside.cgi",
        "/cgi-bin/up/cgi-bin/sub/inside.cgi",
    ];
    for uri in attempts {
        match call(&gateway, get(uri), "/cgi-bin/").await {
            Err(CgiError::NotFound | CgiError::Forbidden) => {}
            Err(other) => panic!("{uri}: unexpected {other:?}"),
            Ok(answer) => panic!("{uri}: answered {} {:?}", answer.status, answer.body),
        }
    }
    assert!(!ran.exists(), "a script outside the CGI directory ran");
    let answer = call(&gateway, get("/cgi-bin/sub/inside.cgi"), "/cgi-bin/")
        .await
        .expect("the real path works");
    assert_eq!(answer.body, "inside");
}

#[tokio::test]
async fn only_executable_regular_files_run() {
    let site = Site::new();
    let ran = site.root.path().join("ran");
    let text = format!(
        "#!/bin/sh\ntouch '{}'\nprintf 'Content-Type: text/plain\\n\\nran'\n",
        ran.display()
    );
    write_file(&site.cgi.join("plain.cgi"), &text, 0o644);
    write_file(&site.cgi.join("notes.txt"), "just text\n", 0o644);
    let gateway = site.gateway(options());
    for uri in ["/plain.cgi", "/plain.cgi/x", "/notes.txt"] {
        let error = call(&gateway, get(uri), "/").await.err().expect("refused");
        assert!(matches!(error, CgiError::Forbidden), "{uri}: {error:?}");
    }
    assert!(!ran.exists(), "a non-executable file ran");
}

/// Starts a `sleep` in the background, notes both pids, then waits on it.
const SLEEPER: &str = "sleep 300 &\necho $! > child.pid\necho $$ > leader.pid\nwait\n";

#[tokio::test]
async fn timeout_before_the_headers_kills_the_process_group() {
    let site = Site::new();
    site.script("slow.cgi", &format!("#!/bin/sh\n{SLEEPER}"));
    let gateway = site.gateway(CgiOptions {
        timeout: Duration::from_millis(1500),
        ..options()
    });
    let started = std::time::Instant::now();
    let error = call(&gateway, get("/slow.cgi"), "/")
        .await
        .err()
        .expect("timeout");
    assert!(matches!(error, CgiError::Timeout), "{error:?}");
    assert_eq!(
        Reject::from(error.clone()).status(),
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let leader = pid_in(&site.wait_for_file("leader.pid").await);
    let child = pid_in(&site.wait_for_file("child.pid").await);
    eventually("the script is reaped", BUDGET, async || is_reaped(leader)).await;
    eventually("its background child has ended", BUDGET, async || {
        has_ended(child)
    })
    .await;
}

#[tokio::test]
async fn timeout_while_streaming_ends_the_body_with_an_error() {
    let site = Site::new();
    site.script(
        "half.cgi",
        &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\npartial'\n{SLEEPER}"),
    );
    let gateway = site.gateway(CgiOptions {
        timeout: Duration::from_millis(1500),
        ..options()
    });
    let response = gateway
        .serve(get("/half.cgi"), &context("/"))
        .await
        .expect("headers in time");
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("data frame");
    assert_eq!(&first[..], b"partial");
    let error = tokio::time::timeout(BUDGET, body.frame())
        .await
        .expect("the body ends in time")
        .expect("an error frame")
        .expect_err("an error, not data");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    let leader = pid_in(&site.wait_for_file("leader.pid").await);
    let child = pid_in(&site.wait_for_file("child.pid").await);
    eventually("the script is reaped", BUDGET, async || is_reaped(leader)).await;
    eventually("its background child has ended", BUDGET, async || {
        has_ended(child)
    })
    .await;
}

#[tokio::test]
async fn dropping_the_body_kills_the_script() {
    let site = Site::new();
    site.script(
        "long.cgi",
        &format!("#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n{SLEEPER}"),
    );
    let gateway = site.gateway(options());
    let response = gateway
        .serve(get("/long.cgi"), &context("/"))
        .await
        .expect("answer");
    let leader = pid_in(&site.wait_for_file("leader.pid").await);
    let child = pid_in(&site.wait_for_file("child.pid").await);
    assert!(
        !has_ended(leader) && !has_ended(child),
        "the script runs while its body is read"
    );
    drop(response);
    eventually("the script is reaped", BUDGET, async || is_reaped(leader)).await;
    eventually("its background child has ended", BUDGET, async || {
        has_ended(child)
    })
    .await;
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_script() {
    let site = Site::new();
    site.script(
        "fork.cgi",
        "#!/bin/sh\nsleep 300 >/dev/null 2>&1 &\necho $! > child.pid\nprintf 'Content-Type: text/plain\\n\\ndone'\n",
    );
    let answer = call(&site.gateway(options()), get("/fork.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.body, "done");
    let child = pid_in(&site.wait_for_file("child.pid").await);
    eventually("its background child has ended", BUDGET, async || {
        has_ended(child)
    })
    .await;
}

#[tokio::test]
async fn failing_scripts_are_a_bad_gateway() {
    let site = Site::new();
    site.script(
        "crash.cgi",
        "#!/bin/sh\necho 'something broke' >&2\nexit 3\n",
    );
    site.script(
        "raise.py",
        "#!/usr/bin/env python3\nraise SystemExit('no database')\n",
    );
    site.script(
        "garbage.cgi",
        "#!/bin/sh\nprintf 'this is not a header\\n\\nbody'\n",
    );
    site.script(
        "unfinished.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n",
    );
    site.script("huge.py", "#!/usr/bin/env python3\nimport sys\nsys.stdout.write('X-Big: ' + 'a' * 70000 + '\\n\\n')\n");
    site.script("noshebang.cgi", "echo hi\n");
    site.script("nointerpreter.cgi", "#!/no/such/interpreter\n");
    let gateway = site.gateway(options());
    for uri in [
        "/crash.cgi",
        "/raise.py",
        "/garbage.cgi",
        "/unfinished.cgi",
        "/huge.py",
        "/noshebang.cgi",
        "/nointerpreter.cgi",
    ] {
        let error = call(&gateway, get(uri), "/")
            .await
            .err()
            .unwrap_or_else(|| panic!("{uri} should fail"));
        assert!(matches!(error, CgiError::BadGateway(_)), "{uri}: {error:?}");
        assert_eq!(
            Reject::from(error.clone()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}

#[tokio::test]
async fn hop_by_hop_headers_from_scripts_are_dropped() {
    let site = Site::new();
    site.script(
        "hop.cgi",
        "#!/bin/sh\nprintf 'Connection: close\\nTransfer-Encoding: chunked\\nContent-Length: 999\\nKeep-Alive: 5\\nX-Ok: 1\\nSet-Cookie: a=1\\nSet-Cookie: b=2\\n\\nbody'\n",
    );
    let answer = call(&site.gateway(options()), get("/hop.cgi"), "/")
        .await
        .expect("answer");
    for name in [
        "connection",
        "transfer-encoding",
        "content-length",
        "keep-alive",
    ] {
        assert!(answer.headers.get(name).is_none(), "{name} passed through");
    }
    assert_eq!(answer.header("x-ok"), Some("1"));
    assert_eq!(answer.headers.get_all("set-cookie").iter().count(), 2);
    assert_eq!(answer.body, "body");
}

#[tokio::test]
async fn concurrency_limit_answers_busy() {
    let site = Site::new();
    site.script(
        "hold.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat\n",
    );
    let gateway = site.gateway(CgiOptions {
        max_concurrent: 1,
        max_queue: 0,
        ..options()
    });

    let (tx, body) = channel_body();
    let holding = gateway
        .serve(
            Request::post("/hold.cgi").body(body).expect("request"),
            &context("/"),
        )
        .await;
    let holding = holding.expect("the first request runs");
    let error = call(&gateway, get("/hold.cgi"), "/")
        .await
        .err()
        .expect("no slot");
    assert!(matches!(error, CgiError::Busy), "{error:?}");
    assert_eq!(
        Reject::from(error.clone()).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    tx.send(Bytes::from_static(b"bye")).await.expect("send");
    drop(tx);
    let held = holding
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&held[..], b"bye");
    // The slot comes back once the first script has been reaped.
    let answer = eventually("the slot comes back", BUDGET, async || {
        match call(&gateway, get("/hold.cgi"), "/").await {
            Ok(answer) => Some(answer),
            Err(CgiError::Busy) => None,
            Err(other) => panic!("{other:?}"),
        }
    })
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn queued_request_waits_for_a_slot() {
    let site = Site::new();
    site.script(
        "hold.cgi",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat\n",
    );
    let gateway = site.gateway(CgiOptions {
        max_concurrent: 1,
        max_queue: 1,
        ..options()
    });

    let (tx, body) = channel_body();
    let holding = gateway
        .serve(
            Request::post("/hold.cgi").body(body).expect("request"),
            &context("/"),
        )
        .await;
    let holding = holding.expect("the first request runs");
    let queued = tokio::spawn({
        let gateway = gateway.clone();
        async move { call(&gateway, get("/hold.cgi"), "/").await }
    });
    eventually("the second request is queued", BUDGET, async || {
        gateway.queued() == 1
    })
    .await;
    assert_eq!(gateway.running(), 1);
    assert!(!queued.is_finished(), "the second request waits");
    let error = call(&gateway, get("/hold.cgi"), "/")
        .await
        .err()
        .expect("queue full");
    assert!(matches!(error, CgiError::Busy), "{error:?}");

    drop(tx);
    drop(holding);
    let answer = tokio::time::timeout(BUDGET, queued)
        .await
        .expect("in time")
        .expect("task")
        .expect("answer");
    assert_eq!(answer.status, StatusCode::OK);
}

/// Collects everything logged while it is installed.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn stderr_goes_to_the_log_not_to_the_client() {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer({
        let capture = capture.clone();
        move || capture.clone()
    });
    let _log = tracing::subscriber::set_default(subscriber.finish());
    let site = Site::new();
    site.script(
        "noisy.cgi",
        "#!/bin/sh\necho 'database password is hunter2' >&2\nprintf 'Content-Type: text/plain\\n\\nhello'\n",
    );
    let answer = call(&site.gateway(options()), get("/noisy.cgi"), "/")
        .await
        .expect("answer");
    assert_eq!(answer.body, "hello");
    eventually("the script's stderr is logged", BUDGET, async || {
        capture.text().contains("database password is hunter2")
    })
    .await;
    let log = capture.text();
    assert!(
        log.contains("WARN") && log.contains("cgi") && log.contains("/noisy.cgi"),
        "{log}"
    );
}

#[test]
fn new_refuses_what_is_not_a_directory() {
    let site = Site::new();
    let file = write_file(&site.root.path().join("file"), "x", 0o644);
    for dir in [site.root.path().join("missing"), file] {
        let error = CgiGateway::new(&dir, options()).expect_err("refused");
        assert!(matches!(error, CgiError::Config(_)), "{error:?}");
        assert_eq!(
            Reject::from(error.clone()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let error = CgiGateway::new(
        &site.cgi,
        CgiOptions {
            max_concurrent: 0,
            ..options()
        },
    )
    .expect_err("refused");
    assert!(matches!(error, CgiError::Config(_)), "{error:?}");
}

#[test]
fn cgi_body_can_be_boxed_and_sent() {
    fn assert_traits<T: Send + Sync + Unpin + 'static>() {}
    assert_traits::<CgiBody>();
    assert_traits::<CgiGateway>();
    let _boxed = http_body_util::combinators::BoxBody::new(CgiBody::empty());
}

// The demo site in examples/legacy-site, run as sessiongate would run it:
// session headers injected on the way in, control headers read on the way out.

fn demo() -> CgiGateway {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/legacy-site/cgi-bin");
    CgiGateway::new(&dir, options()).expect("demo site")
}

/// A request as sessiongate forwards it, with the session headers given.
fn demo_request(
    method: &str,
    uri: &str,
    session: &[(&str, &str)],
    form: &str,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "legacy.example");
    for (name, value) in session {
        request = request.header(*name, *value);
    }
    if !form.is_empty() {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", form.len());
    }
    request
        .body(Full::new(Bytes::from(form.to_owned())))
        .expect("request")
}

#[tokio::test]
async fn demo_counter_counts_in_the_session() {
    let gateway = demo();
    let answer = call(
        &gateway,
        demo_request("GET", "/counter.cgi", &[("x-session-data", "count=3")], ""),
        "/",
    )
    .await
    .expect("counter");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-session-incr"), Some("count=1"));
    assert!(
        answer.body.contains(r#"<p class="big">4</p>"#),
        "{}",
        answer.body
    );

    for data in ["", "lang=en", "count=abc", "count=99999999999999999999"] {
        let request = demo_request("GET", "/counter.cgi", &[("x-session-data", data)], "");
        let answer = call(&gateway, request, "/").await.expect("counter");
        assert_eq!(
            answer.header("x-session-incr"),
            Some("count=1"),
            "data {data:?}"
        );
        assert!(
            answer.body.contains(r#"<p class="big">1</p>"#),
            "data {data:?}: {}",
            answer.body
        );
    }

    let answer = call(&gateway, demo_request("POST", "/counter.cgi", &[], ""), "/")
        .await
        .expect("reset");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header("x-session-delete"), Some("count"));
    assert_eq!(answer.header("location"), Some("/counter.cgi"));
}

#[tokio::test]
async fn demo_login_checks_its_own_accounts() {
    let gateway = demo();
    let form = "username=alice&password=wonderland&next=%2Fmembers.cgi%3Ftab%3D1";
    let answer = call(&gateway, demo_request("POST", "/login.cgi", &[], form), "/")
        .await
        .expect("login");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header("x-session-login"), Some("alice"));
    assert_eq!(answer.header("location"), Some("/members.cgi?tab=1"));

    for unsafe_next in [
        "%2F%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example%2F",
        "%2F%5Cevil.example",
        "%2Fa%0D%0Ab",
        "",
    ] {
        let form = format!("username=bob&password=builder&next={unsafe_next}");
        let answer = call(
            &gateway,
            demo_request("POST", "/login.cgi", &[], &form),
            "/",
        )
        .await
        .expect("login");
        assert_eq!(answer.header("x-session-login"), Some("bob"));
        assert_eq!(answer.header("location"), Some("/"), "next={unsafe_next}");
    }

    for form in [
        "username=alice&password=builder",
        "username=mallory&password=wonderland",
        "username=alice",
    ] {
        let answer = call(&gateway, demo_request("POST", "/login.cgi", &[], form), "/")
            .await
            .expect("login");
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{form}");
        assert_eq!(answer.header("x-session-login"), None, "{form}");
        assert!(answer.body.contains("Wrong user name or password."));
    }

    let request = demo_request(
        "GET",
        "/login.cgi?next=%2Fmembers.cgi%3Fq%3D%22%3E%3Cb%3E",
        &[],
        "",
    );
    let answer = call(&gateway, request, "/").await.expect("form");
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .body
            .contains(r#"name="next" value="/members.cgi?q=&quot;&gt;&lt;b&gt;""#),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn demo_survey_keeps_its_answers_in_the_session() {
    let gateway = demo();
    let answer = call(&gateway, demo_request("GET", "/survey.cgi", &[], ""), "/")
        .await
        .expect("survey");
    assert!(answer.body.contains("Question 1 of 3"));

    let session = [("x-session-data", "count=2&survey_browser=Lynx")];
    let answer = call(
        &gateway,
        demo_request("GET", "/survey.cgi", &session, ""),
        "/",
    )
    .await
    .expect("survey");
    assert!(
        answer.body.contains("Question 2 of 3"),
        "the session says where the visitor is"
    );

    let answer = call(
        &gateway,
        demo_request("POST", "/survey.cgi", &[], "step=1&answer=NCSA+Mosaic"),
        "/",
    )
    .await
    .expect("answer");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.header("x-session-set"),
        Some("survey_browser=NCSA+Mosaic")
    );
    assert_eq!(answer.header("location"), Some("/survey.cgi"));

    let form = "step=3&answer=More+%3Cblink%3E+tags+%26+guestbooks";
    let answer = call(
        &gateway,
        demo_request("POST", "/survey.cgi", &[], form),
        "/",
    )
    .await
    .expect("answer");
    assert_eq!(
        answer.header("x-session-set"),
        Some("survey_wish=More+%3Cblink%3E+tags+%26+guestbooks")
    );

    let answer = call(
        &gateway,
        demo_request("POST", "/survey.cgi", &[], "step=2&answer=9600+baud"),
        "/",
    )
    .await
    .expect("answer");
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "not one of the choices"
    );
    assert_eq!(answer.header("x-session-set"), None);

    let data = "survey_browser=Lynx&survey_modem=14.4k&survey_wish=More+%3Cblink%3E+tags";
    let answer = call(
        &gateway,
        demo_request("GET", "/survey.cgi", &[("x-session-data", data)], ""),
        "/",
    )
    .await
    .expect("results");
    assert!(
        answer.body.contains("<td>Lynx</td>") && answer.body.contains("<td>14.4k</td>"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("<td>More &lt;blink&gt; tags</td>"),
        "{}",
        answer.body
    );

    let answer = call(
        &gateway,
        demo_request("POST", "/survey.cgi", &[], "action=reset"),
        "/",
    )
    .await
    .expect("reset");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.header("x-session-delete"),
        Some("survey_browser, survey_modem, survey_wish")
    );
}

#[tokio::test]
async fn demo_members_logout_and_home() {
    let gateway = demo();
    let answer = call(&gateway, demo_request("GET", "/members.cgi", &[], ""), "/")
        .await
        .expect("members");
    assert!(answer.body.contains("You are not signed in."));

    let session = [
        ("x-session-user", "<b>alice</b>"),
        ("x-session-data", "count=2"),
        ("x-session-created", "0"),
    ];
    let answer = call(
        &gateway,
        demo_request("GET", "/members.cgi", &session, ""),
        "/",
    )
    .await
    .expect("members");
    assert!(
        answer
            .body
            .contains("Welcome to the lounge, <b>&lt;b&gt;alice&lt;/b&gt;</b>"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("1970-01-01 00:00:00 UTC"));
    assert!(!answer.body.contains("not signed in"));

    let answer = call(
        &gateway,
        demo_request("GET", "/logout.cgi", &[("x-session-user", "alice")], ""),
        "/",
    )
    .await
    .expect("logout");
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header("x-session-logout"), Some("1"));
    assert_eq!(answer.header("location"), Some("/"));

    let answer = call(
        &gateway,
        demo_request("GET", "/", &[("x-session-new", "1")], ""),
        "/",
    )
    .await
    .expect("home");
    assert!(answer.body.contains("not signed in") && answer.body.contains("/counter.cgi"));
    let answer = call(
        &gateway,
        demo_request("GET", "/", &[("x-session-user", "bob")], ""),
        "/",
    )
    .await
    .expect("home");
    assert!(answer.body.contains("Hello, <b>bob</b>"));
}

#[tokio::test]
async fn demo_site_works_under_another_prefix() {
    let gateway = demo();
    let answer = call(
        &gateway,
        demo_request("GET", "/old/counter.cgi", &[], ""),
        "/old/",
    )
    .await
    .expect("counter");
    assert!(
        answer.body.contains(r#"action="/old/counter.cgi""#),
        "links follow SCRIPT_NAME"
    );
    let answer = call(
        &gateway,
        demo_request("GET", "/old/logout.cgi", &[], ""),
        "/old/",
    )
    .await
    .expect("logout");
    assert_eq!(answer.header("location"), Some("/old/"));
    let error = call(
        &gateway,
        demo_request("GET", "/old/../lib/layout.sh", &[], ""),
        "/old/",
    )
    .await
    .err();
    assert!(matches!(error, Some(CgiError::NotFound)), "{error:?}");
}
