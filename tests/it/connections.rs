//! Connections that never speak, or stop speaking: the deadline for the
//! first request head (plain, HTTP/2 and TLS), the idle keep-alive timeout,
//! `max_connections`, `upstream_max_connections`, HTTP/2 only after ALPN
//! `h2`, and `Strict-Transport-Security` on TLS only.
//!
//! Every wait is on something observable (a socket reaching its end, a
//! response arriving) within a named budget; timeouts in the configs are a
//! second or two, and each test checks that a connection was closed no
//! sooner than its timeout as well as no later than the budget.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::tls::{
    CertFiles, TestCa, client_config, h2_over_tls, https_client, https_url, tls_connect,
    websocket_echo,
};
use crate::harness::{Backend, Proxy, Reply, client, config, eventually};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::Request;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The longest any connection here may take to be closed, or a request to
/// be answered.
const BUDGET: Duration = Duration::from_secs(10);
/// Below a configured timeout by this much, a close counts as too early
/// (the timers are not exact to the millisecond).
const SLACK: Duration = Duration::from_millis(150);
/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A proxy to `backend` with the given `[server]` keys.
async fn proxy_with(backend: &str, server: &str) -> Proxy {
    Proxy::start(&config(
        &[("/", backend, "public")],
        &format!("[server]\n{server}\n"),
    ))
    .await
}

/// How a connection ended, from the client's side.
#[derive(Debug)]
struct Ended {
    /// Everything the server sent before closing.
    received: Vec<u8>,
    /// When the close was seen.
    at: Instant,
}

/// Reads until the server closes the connection (an end of stream or a
/// reset), failing the test after [`BUDGET`].
async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Ended {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let result = tokio::time::timeout(BUDGET, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if is_closed(&e) => return,
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "the connection was still open after {BUDGET:?}; received {:?}",
        String::from_utf8_lossy(&received)
    );
    Ended {
        received,
        at: Instant::now(),
    }
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Checks that something ended between `timeout` after `since` and the budget.
fn assert_closed_after(since: Instant, ended: &Ended, timeout: Duration) {
    let took = ended.at - since;
    assert!(
        took + SLACK >= timeout,
        "closed after {took:?}, before the {timeout:?} timeout"
    );
    assert!(took < BUDGET, "closed only after {took:?}");
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns its
/// head and body as text.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(BUDGET, async {
        while !got.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("reading a response");
            assert_eq!(
                n,
                1,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        got.extend_from_slice(&body);
    })
    .await
    .expect("no response within the budget");
    String::from_utf8(got).unwrap()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

// ---------------------------------------------------------------------------
// The first request head
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_silent_connection_is_closed_after_request_header_timeout() {
    let backend = Backend::start().await;
    let proxy = proxy_with(&backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let ended = until_closed(&mut silent).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    assert!(ended.received.is_empty(), "{:?}", ended.received);
    // The listener itself goes on.
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(GET).await.unwrap();
    assert!(read_response(&mut client).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn half_a_request_head_is_closed() {
    let backend = Backend::start().await;
    let proxy = proxy_with(&backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();
    let ended = until_closed(&mut client).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    assert!(backend.seen().is_empty());
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_is_cut_at_the_deadline_from_accept() {
    let backend = Backend::start().await;
    let proxy = proxy_with(&backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let client = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    // One byte every 100 ms: always something new, never a whole head.
    let trickle = tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ".iter().cycle() {
            if writer.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let ended = until_closed(&mut reader).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    assert!(
        ended.at - opened < Duration::from_secs(3),
        "the deadline moved with each byte: closed after {:?}",
        ended.at - opened
    );
    trickle.abort();
}

#[tokio::test]
async fn an_h2_preface_then_silence_is_closed() {
    let backend = Backend::start().await;
    let proxy = proxy_with(&backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(H2_PREFACE).await.unwrap();
    client.write_all(H2_SETTINGS).await.unwrap();
    let ended = until_closed(&mut client).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    // The server spoke HTTP/2 (its SETTINGS frame), never HTTP/1.1.
    assert!(!ended.received.starts_with(b"HTTP/1.1"));
}

#[tokio::test]
async fn half_an_h2_preface_is_closed() {
    let backend = Backend::start().await;
    let proxy = proxy_with(&backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client.write_all(&H2_PREFACE[..10]).await.unwrap();
    let ended = until_closed(&mut client).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    assert!(ended.received.is_empty());
}

/// A TLS proxy to `backend` with extra `[server]` keys.
async fn tls_proxy(files: &CertFiles, backend: &str, server: &str) -> Proxy {
    Proxy::start(&config(
        &[("/", backend, "public")],
        &format!("{}{server}\n", files.server_toml()),
    ))
    .await
}

#[tokio::test]
async fn over_tls_a_client_that_never_says_hello_is_closed() {
    let ca = TestCa::new("silent CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "request_header_timeout = \"1s\"").await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let ended = until_closed(&mut silent).await;
    assert_closed_after(opened, &ended, Duration::from_secs(1));
    assert!(ended.received.is_empty());
}

#[tokio::test]
async fn over_tls_a_handshake_then_silence_is_closed_within_the_same_deadline() {
    let ca = TestCa::new("handshake CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "request_header_timeout = \"1s\"").await;
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let opened = Instant::now();
        let mut tls = tls_connect(
            proxy.addr,
            client_config(&ca.pem, &[&rustls::version::TLS13], &[alpn]),
        )
        .await
        .unwrap();
        let ended = until_closed(&mut tls).await;
        assert_closed_after(opened, &ended, Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------
// Idle connections
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_http11_connection_is_closed_while_an_active_one_keeps_working() {
    let backend = Backend::start().await;
    let proxy = proxy_with(
        &backend.url(),
        "request_header_timeout = \"1s\"\nkeepalive_timeout = \"1s\"",
    )
    .await;
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    let mut active = TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(GET).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    let watch_idle = tokio::spawn(async move { until_closed(&mut idle).await });
    // The active connection sends a request every 300 ms for three times
    // the timeout, all on the same socket.
    let mut served = 0;
    let mut last_answer = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        active.write_all(GET).await.unwrap();
        let resp = read_response(&mut active).await;
        last_answer = Instant::now();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        served += 1;
    }
    assert!(served >= 5, "{served}");
    let ended = watch_idle.await.unwrap();
    assert_closed_after(idle_since, &ended, Duration::from_secs(1));
    assert!(
        ended.at - idle_since < Duration::from_secs(3),
        "the idle connection lasted {:?}",
        ended.at - idle_since
    );
    assert!(ended.received.is_empty(), "{:?}", ended.received);
    // Once the active one stops, it is idle too.
    let ended = until_closed(&mut active).await;
    assert_closed_after(last_answer, &ended, Duration::from_secs(1));
}

/// An HTTP/2 connection (h2c prior knowledge) ready for requests, and a
/// handle that finishes when the connection does.
async fn h2c(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let running = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, running)
}

fn h2_get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .uri(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_and_a_busy_one_is_not() {
    let backend = Backend::with(|seen| {
        let reply = Reply::ok("done");
        if seen.uri.starts_with("/slow") {
            Reply {
                delay: Some(Duration::from_millis(2500)),
                ..reply
            }
        } else {
            reply
        }
    })
    .await;
    let proxy = proxy_with(
        &backend.url(),
        "request_header_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\nupstream_timeout = \"10s\"",
    )
    .await;
    // Busy: one request takes longer than the idle timeout.
    let (mut busy, busy_conn) = h2c(proxy.addr).await;
    let resp = busy
        .send_request(h2_get(proxy.addr, "/slow"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"done");
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(BUDGET, busy_conn).await;
    assert!(closed.is_ok(), "the h2 connection stayed open when idle");
    let ended = Ended {
        received: Vec::new(),
        at: Instant::now(),
    };
    assert_closed_after(idle_since, &ended, Duration::from_secs(1));

    // Idle from the first request on.
    let (mut idle, idle_conn) = h2c(proxy.addr).await;
    let resp = idle.send_request(h2_get(proxy.addr, "/")).await.unwrap();
    resp.into_body().collect().await.unwrap();
    let idle_since = Instant::now();
    assert!(tokio::time::timeout(BUDGET, idle_conn).await.is_ok());
    let ended = Ended {
        received: Vec::new(),
        at: Instant::now(),
    };
    assert_closed_after(idle_since, &ended, Duration::from_secs(1));
}

// ---------------------------------------------------------------------------
// max_connections
// ---------------------------------------------------------------------------

/// Log lines written while a test runs on the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// One thread, so that the proxy's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn at_max_connections_new_connections_wait_for_a_free_slot() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let backend = Backend::start().await;
    let proxy = proxy_with(
        &backend.url(),
        "max_connections = 2\nrequest_header_timeout = \"30s\"",
    )
    .await;
    // Two clients that have been answered once, so surely hold both slots
    // (with thread-per-core workers, each with its own listen queue, the
    // first connections made need not be the first taken), then say
    // nothing more.
    let mut silent_a = TcpStream::connect(proxy.addr).await.unwrap();
    let mut silent_b = TcpStream::connect(proxy.addr).await.unwrap();
    for silent in [&mut silent_a, &mut silent_b] {
        silent.write_all(GET).await.unwrap();
        let resp = read_response(silent).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    }
    // The third is complete in the kernel's queue, and its request sent...
    let mut third = TcpStream::connect(proxy.addr).await.unwrap();
    third.write_all(GET).await.unwrap();
    // ...but it is not taken, hence not answered, while both slots are held.
    let mut first_byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut first_byte)).await;
    assert!(early.is_err(), "served beyond max_connections: {early:?}");
    assert_eq!(backend.seen().len(), 2);
    // One silent client leaves: the third is served.
    drop(silent_a);
    let resp = read_response(&mut third).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(backend.seen().len(), 3);

    let logs = logs.text();
    assert!(!logs.contains("accept failed"), "{logs}");
    assert_eq!(
        logs.matches("every connection slot is in use").count(),
        1,
        "{logs}"
    );
}

// ---------------------------------------------------------------------------
// upstream_max_connections
// ---------------------------------------------------------------------------

/// A backend that answers every request after `delay`, counting the
/// connections it accepted and the most requests it had in hand at once.
struct CountingBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

impl CountingBackend {
    async fn start(delay: Duration) -> CountingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let in_hand = Arc::new(AtomicUsize::new(0));
        let (conns, reqs, most) = (connections.clone(), requests.clone(), most_at_once.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (reqs, most, in_hand) = (reqs.clone(), most.clone(), in_hand.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let (reqs, most, in_hand) = (reqs.clone(), most.clone(), in_hand.clone());
                        async move {
                            reqs.fetch_add(1, Ordering::SeqCst);
                            let now = in_hand.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(delay).await;
                            in_hand.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                                "slow answer",
                            ))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        CountingBackend {
            addr,
            connections,
            requests,
            most_at_once,
        }
    }
}

#[tokio::test]
async fn beyond_upstream_max_connections_requests_queue_then_get_503() {
    let backend = CountingBackend::start(Duration::from_secs(2)).await;
    // upstream_timeout 3 s: a request waits at most 3 s for a connection.
    let proxy = proxy_with(
        &format!("http://{}", backend.addr),
        "upstream_max_connections = 1\nupstream_timeout = \"3s\"",
    )
    .await;
    let client = client();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = proxy.url(path);
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };
    let first = get("/a");
    eventually(
        "the first request reached the backend",
        BUDGET,
        async || backend.requests.load(Ordering::SeqCst) == 1,
    )
    .await;
    // Both wait for the one connection: the first of them to get it is
    // served after the first request, the other runs out of waiting.
    let (second, third) = (get("/b"), get("/c"));
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    let mut statuses = Vec::new();
    for resp in [second.await.unwrap(), third.await.unwrap()] {
        let status = resp.status().as_u16();
        if status == 503 {
            assert!(resp.headers().contains_key("retry-after"));
        } else {
            assert_eq!(resp.text().await.unwrap(), "slow answer");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 503]);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
    assert_eq!(backend.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(backend.requests.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------
// ALPN and HSTS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn after_alpn_h2_an_http11_request_is_a_connection_error() {
    let ca = TestCa::new("alpn CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "").await;
    let mut tls = tls_connect(
        proxy.addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // hyper answers with its SETTINGS and closes: an HTTP/1.1 request
    // line is not the HTTP/2 preface.
    let ended = until_closed(&mut tls).await;
    let text = String::from_utf8_lossy(&ended.received);
    assert!(!text.contains("HTTP/1.1"), "{text}");
    assert!(backend.seen().is_empty());
    // The same request after ALPN http/1.1 is served.
    let mut tls = tls_connect(
        proxy.addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut tls).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn hsts_is_on_every_tls_response_and_never_on_plain_http() {
    let ca = TestCa::new("hsts CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend =
        Backend::with(|_| Reply::ok("ok").header("strict-transport-security", "max-age=1")).await;
    let proxy = Proxy::start(&config(
        &[("/app/", &backend.url(), "public")],
        &format!(
            "{}hsts = \"max-age=31536000; includeSubDomains\"\nredirect_http = \"127.0.0.1:0\"\n",
            files.server_toml()
        ),
    ))
    .await;
    let expected = "max-age=31536000; includeSubDomains";
    for http1_only in [false, true] {
        let mut builder = https_client(&ca, proxy.addr);
        if http1_only {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        // From the backend (its own value replaced), and made by the proxy.
        for (path, status) in [("/app/x", 200), ("/elsewhere", 404)] {
            let resp = client
                .get(https_url(proxy.addr, path))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{path}");
            let values: Vec<_> = resp
                .headers()
                .get_all("strict-transport-security")
                .iter()
                .collect();
            assert_eq!(values, [expected], "{path} over {:?}", resp.version());
        }
    }
    // The plain redirect listener of the same proxy never sends it.
    let redirect = proxy.running.as_ref().unwrap().redirect_addrs[0];
    let mut plain = TcpStream::connect(redirect).await.unwrap();
    plain
        .write_all(b"GET /app/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut plain).await;
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    assert!(
        !resp
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{resp}"
    );
}

// ---------------------------------------------------------------------------
// WebSocket tunnels over TLS
// ---------------------------------------------------------------------------

/// Sends `text` and expects it back.
async fn echoes<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(BUDGET, ws.next())
        .await
        .expect("no echo within the budget")
        .unwrap()
        .unwrap();
    assert_eq!(back.into_text().unwrap(), text);
}

#[tokio::test]
async fn a_websocket_over_tls_http11_outlives_keepalive_and_keeps_its_slot() {
    let ca = TestCa::new("ws h1 CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let (echo, _) = websocket_echo().await;
    let proxy = Proxy::start(&config(
        &[("/ws", &format!("http://{echo}"), "public")],
        &format!(
            "{}max_connections = 1\nkeepalive_timeout = \"1s\"\nrequest_header_timeout = \"1s\"\n",
            files.server_toml()
        ),
    ))
    .await;
    let tls = tls_connect(
        proxy.addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://localhost/ws/chat", tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    echoes(&mut ws, "hello").await;
    // The tunnel holds the only slot: another connection waits.
    let mut other = TcpStream::connect(proxy.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let waiting = tokio::time::timeout(Duration::from_millis(1500), other.read(&mut byte)).await;
    assert!(
        waiting.is_err(),
        "a second connection was taken: {waiting:?}"
    );
    // Quiet for longer than keepalive_timeout, and still open.
    echoes(&mut ws, "still here").await;
    ws.close(None).await.unwrap();
    drop(ws);
    // Now the waiting connection is taken; it says nothing, so it is
    // closed after request_header_timeout.
    let taken = Instant::now();
    let ended = until_closed(&mut other).await;
    assert!(ended.at - taken < BUDGET);
}

#[tokio::test]
async fn a_websocket_over_tls_h2_outlives_keepalive() {
    let ca = TestCa::new("ws h2 CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let (echo, _) = websocket_echo().await;
    let proxy = Proxy::start(&config(
        &[("/", &format!("http://{echo}"), "public")],
        &format!("{}keepalive_timeout = \"1s\"\n", files.server_toml()),
    ))
    .await;
    let (mut sender, _connection) = h2_over_tls(proxy.addr, &ca).await;
    // One ordinary request first: the server's SETTINGS (which enable
    // extended CONNECT) have arrived once it is answered, whatever the answer.
    let warmup = Request::get("https://localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.send_request(warmup).await.unwrap();
    let mut req = Request::connect("https://localhost/chat")
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    echoes(&mut ws, "over h2").await;
    // Quiet for longer than keepalive_timeout: the connection may be told
    // to go away, but the open tunnel is finished, not cut. The proxy's
    // own timer says when that time has passed: a connection that falls
    // idle after the last echo is closed for it.
    let (mut witness, witness_connection) = h2_over_tls(proxy.addr, &ca).await;
    let warmup = Request::get("https://localhost/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = witness.send_request(warmup).await.unwrap();
    resp.into_body().collect().await.unwrap();
    let closed = tokio::time::timeout(BUDGET, witness_connection).await;
    assert!(closed.is_ok(), "an idle h2 connection stayed open");
    echoes(&mut ws, "still here").await;
}
