//! Kept-alive connections to HTTP upstreams: reused while they are sound,
//! never reused when they are not, and no request lost or sent twice when an
//! upstream closes them.
//!
//! The upstreams here are raw TCP servers, so that each can misbehave in
//! one precise way and count the connections it accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{Proxy, client, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How a raw upstream treats each connection.
#[derive(Clone, Copy)]
enum Manner {
    /// Answers every request and keeps the connection open.
    KeepAlive,
    /// Answers as if keeping the connection, then closes it at once.
    CloseSilently,
    /// Answers as if keeping the connection, then closes it when told to
    /// ([`RawUpstream::close_idle`]).
    CloseWhenTold,
    /// Answers with `Connection: close`, then closes.
    ConnectionClose,
    /// Reads the request and closes without answering.
    Swallow,
    /// Sends a long body slowly.
    SlowBody,
}

/// Size of the body [`Manner::SlowBody`] announces.
const SLOW_BODY: usize = 1 << 20;

struct RawUpstream {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

impl RawUpstream {
    async fn start(manner: Manner) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        let (conns, reqs, closer) = (connections.clone(), requests.clone(), close.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let n = conns.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(stream, manner, n, reqs.clone(), closer.clone()));
            }
        });
        RawUpstream {
            addr,
            connections,
            requests,
            close,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Lets a [`Manner::CloseWhenTold`] connection close.
    fn close_idle(&self) {
        self.close.notify_one();
    }
}

/// Serves one connection; every body says which connection answered.
async fn serve(
    mut stream: TcpStream,
    manner: Manner,
    conn: usize,
    requests: Arc<AtomicUsize>,
    close: Arc<Notify>,
) {
    let mut buf = Vec::new();
    loop {
        let Some(head_only) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        requests.fetch_add(1, Ordering::SeqCst);
        let body = if head_only {
            String::new()
        } else {
            format!("conn {conn}")
        };
        let head = |extra: &str, len: usize| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{extra}Content-Length: {len}\r\n\r\n"
            )
        };
        match manner {
            Manner::KeepAlive => {
                let len = if head_only { 6 } else { body.len() };
                let reply = head("", len) + &body;
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Manner::CloseSilently => {
                let reply = head("", body.len()) + &body;
                let _ = stream.write_all(reply.as_bytes()).await;
                return;
            }
            Manner::CloseWhenTold => {
                let reply = head("", body.len()) + &body;
                let _ = stream.write_all(reply.as_bytes()).await;
                close.notified().await;
                return;
            }
            Manner::ConnectionClose => {
                let reply = head("Connection: close\r\n", body.len()) + &body;
                let _ = stream.write_all(reply.as_bytes()).await;
                return;
            }
            Manner::Swallow => return,
            Manner::SlowBody => {
                if stream
                    .write_all(head("", SLOW_BODY).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let chunk = vec![b'x'; 16 * 1024];
                for _ in 0..SLOW_BODY / chunk.len() {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` at EOF, else
/// whether it was a `HEAD` (answered without a body).
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<bool> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body_len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    while buf.len() < head_end + body_len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..head_end + body_len);
    Some(head.starts_with("head "))
}

async fn proxy_to(upstream: &RawUpstream) -> Proxy {
    Proxy::start(&config(&[("/", &upstream.url(), "public")], "")).await
}

#[tokio::test]
async fn one_connection_serves_a_run_of_requests() {
    let upstream = RawUpstream::start(Manner::KeepAlive).await;
    let proxy = proxy_to(&upstream).await;
    let c = client();
    for i in 0..50 {
        let r = c
            .get(proxy.url(&format!("/page/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "conn 1");
    }
    // HEAD and an empty body leave the connection reusable too.
    let r = c.head(proxy.url("/page")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(proxy.url("/page")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "conn 1");
    assert_eq!(upstream.connections(), 1);
    assert_eq!(upstream.requests(), 52);
}

#[tokio::test]
async fn routes_to_one_origin_share_its_connections() {
    let upstream = RawUpstream::start(Manner::KeepAlive).await;
    let proxy = Proxy::start(&config(
        &[
            ("/a/", &upstream.url(), "public"),
            ("/b/", &upstream.url(), "session"),
        ],
        "",
    ))
    .await;
    let c = client();
    for i in 0..10 {
        let path = if i % 2 == 0 { "/a/x" } else { "/b/x" };
        let r = c.get(proxy.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_and_then_reuse_them() {
    let upstream = RawUpstream::start(Manner::KeepAlive).await;
    let proxy = proxy_to(&upstream).await;
    let c = client();
    for _ in 0..5 {
        let batch = (0..8).map(|_| {
            let c = c.clone();
            let url = proxy.url("/x");
            async move { c.get(url).send().await.unwrap().status() }
        });
        for status in futures_util::future::join_all(batch).await {
            assert_eq!(status, 200);
        }
    }
    assert_eq!(upstream.requests(), 40);
    assert!(
        upstream.connections() <= 16,
        "{} connections for 5 batches of 8",
        upstream.connections()
    );
}

#[tokio::test]
async fn an_upstream_closing_idle_connections_loses_no_request() {
    let upstream = RawUpstream::start(Manner::CloseSilently).await;
    let proxy = proxy_to(&upstream).await;
    let c = client();
    for i in 0..30 {
        // Alternate between asking at once (the close may not be seen yet)
        // and after a pause (by then it most likely has been). Not a wait
        // for anything: whichever way each request meets the close, none
        // may be lost, and the count below checks it.
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = c.get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), format!("conn {}", i + 1));
    }
    assert_eq!(upstream.requests(), 30);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let upstream = RawUpstream::start(Manner::ConnectionClose).await;
    let proxy = proxy_to(&upstream).await;
    let c = client();
    for i in 0..10 {
        let r = c.get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), format!("conn {}", i + 1));
    }
    assert_eq!(upstream.connections(), 10);
}

#[tokio::test]
async fn a_request_the_upstream_may_have_seen_is_never_sent_twice() {
    let upstream = RawUpstream::start(Manner::Swallow).await;
    let proxy = proxy_to(&upstream).await;
    let r = client()
        .post(proxy.url("/order"))
        .body("buy one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn a_body_cut_short_does_not_return_its_connection() {
    let slow = RawUpstream::start(Manner::SlowBody).await;
    let proxy = proxy_to(&slow).await;
    let c = client();
    let mut r = c.get(proxy.url("/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    // The next request must not land on the connection still carrying the
    // rest of the first body.
    let r = tokio::time::timeout(Duration::from_secs(10), c.get(proxy.url("/big")).send())
        .await
        .expect("the second request hung")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(slow.connections(), 2);
}

#[tokio::test]
async fn a_connection_closed_as_a_request_arrives_loses_no_request() {
    // The upstream closes its idle connection just as the next request
    // reaches the proxy: the proxy may already have picked that connection.
    // The request was never written to it, so it goes out on another one.
    let upstream = RawUpstream::start(Manner::CloseWhenTold).await;
    // On this test's one thread, the upstream's close is seen before the
    // proxy writes the request: the moment the test is about. On a thread
    // of its own (workers), the proxy may write first, and then rightly
    // answers 502 rather than send again what the upstream may have seen.
    let proxy = Proxy::start(&config(
        &[("/", &upstream.url(), "public")],
        "[server]\nworkers = 1\n",
    ))
    .await;
    let c = client();
    for i in 0..40 {
        if i > 0 {
            upstream.close_idle();
        }
        let r = c.get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), format!("conn {}", i + 1));
    }
    assert_eq!(upstream.requests(), 40);
}

#[tokio::test]
async fn a_long_body_streams_beside_other_requests_and_its_connection_is_reused() {
    // A connection is polled by the response body it carries: the body must
    // keep flowing while other requests go out on other connections, and
    // the connection must be fit for the next request once it is read.
    let slow = RawUpstream::start(Manner::SlowBody).await;
    let proxy = proxy_to(&slow).await;
    let c = client();
    let mut first = c.get(proxy.url("/first")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let mut got = first.chunk().await.unwrap().expect("a first chunk").len();
    let second = tokio::time::timeout(Duration::from_secs(20), async {
        c.get(proxy.url("/second")).send().await?.bytes().await
    })
    .await
    .expect("the second request hung")
    .unwrap();
    assert_eq!(second.len(), SLOW_BODY);
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), first.chunk())
        .await
        .expect("the first body stalled")
        .unwrap()
    {
        got += chunk.len();
    }
    assert_eq!(got, SLOW_BODY);
    assert_eq!(slow.connections(), 2);
    let third = c.get(proxy.url("/third")).send().await.unwrap();
    assert_eq!(third.bytes().await.unwrap().len(), SLOW_BODY);
    assert_eq!(
        slow.connections(),
        2,
        "a finished connection was not reused"
    );
}
