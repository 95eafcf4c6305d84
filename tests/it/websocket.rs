//! WebSockets through the proxy: the handshake passes the session check,
//! the session headers reach the upstream, bytes flow both ways, and the
//! tunnel closes when its session ends.

use std::time::Duration;

use crate::harness::tls::websocket_echo;
use crate::harness::{BUDGET, Backend, Proxy, Reply, config, eventually, raw, session_cookie};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sessiongate::session::SessionStore as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::Role;

/// How long a tunnel may stay open once its session has ended.
const CLOSE_BUDGET: Duration = Duration::from_secs(10);

/// A proxy with `/ws` (login) to an echo server, `/auth` (public) to a
/// backend that logs `alice` in, and `/page` (public) to a recording backend.
async fn setup(
    extra: &str,
) -> (
    Proxy,
    Backend,
    std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
) {
    let (echo, seen) = websocket_echo().await;
    let backend = Backend::with(|s| {
        if s.uri.starts_with("/auth") {
            Reply::ok("in").header("x-session-login", "alice")
        } else {
            Reply::ok("page")
        }
    })
    .await;
    let proxy = Proxy::start(&config(
        &[
            ("/ws", &format!("http://{echo}"), "login"),
            ("/auth", &backend.url(), "public"),
            ("/page", &backend.url(), "public"),
        ],
        extra,
    ))
    .await;
    (proxy, backend, seen)
}

async fn log_in(proxy: &Proxy) -> String {
    let resp = crate::harness::client()
        .get(proxy.url("/auth"))
        .send()
        .await
        .unwrap();
    session_cookie(&resp).expect("the login sets the cookie")
}

/// When the session of `user` was last refreshed, on the proxy's clock.
async fn last_seen(proxy: &Proxy, user: &str) -> Option<u64> {
    let gate = proxy.gate();
    let sessions = gate
        .store
        .sessions_of(user, proxy.now(), &gate.setup().sessions.policy)
        .await
        .unwrap();
    sessions.first().map(|s| s.last_seen)
}

fn ws_request(proxy: &Proxy, cookie: Option<&str>) -> http::Request<()> {
    let mut req = format!("ws://{}/ws/chat", proxy.addr)
        .into_client_request()
        .unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn a_websocket_echo_passes_with_a_session() {
    let (proxy, backend, seen) = setup("").await;
    let cookie = log_in(&proxy).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(ws_request(&proxy, Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        resp.headers().get("x-session-set").is_none(),
        "control headers are taken off the 101"
    );
    for text in ["hello", "second message"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data(),
        Bytes::from_static(&[0, 1, 2, 255])
    );
    ws.close(None).await.unwrap();

    let handshake = seen.lock().unwrap()[0].clone();
    assert_eq!(handshake.get("x-session-user").unwrap(), "alice");
    assert_eq!(handshake.get("upgrade").unwrap(), "websocket");
    assert!(
        handshake
            .get("cookie")
            .is_none_or(|c| !c.to_str().unwrap().contains("sg_session")),
        "our cookie is not forwarded"
    );

    // The control header of the 101 was applied to the session.
    crate::harness::client()
        .get(proxy.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        backend.last().header("x-session-data").as_deref(),
        Some("socket=open")
    );
}

#[tokio::test]
async fn a_websocket_without_a_session_gets_401_on_a_login_route() {
    let (proxy, _backend, seen) = setup("").await;
    let err = tokio_tungstenite::connect_async(ws_request(&proxy, None))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other}"),
    }
    // A forged cookie is no session either.
    let err = tokio_tungstenite::connect_async(ws_request(&proxy, Some("sg_session=forged")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
        "{err}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn the_tunnel_closes_when_its_session_ends() {
    let (proxy, _backend, _seen) = setup("idle_timeout = \"10m\"\ntouch_interval = \"1s\"\n").await;
    let cookie = log_in(&proxy).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_request(&proxy, Some(&cookie)))
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "before"
    );
    // Still open across two checks while the session lives. Each check
    // looks the session up, which refreshes it at the proxy's time: with
    // the clock moved on, a refresh at the new time is a check done.
    for _ in 0..2 {
        proxy.advance(60);
        let now = proxy.now();
        eventually("the tunnel checked its session", BUDGET, async || {
            last_seen(&proxy, "alice").await == Some(now)
        })
        .await;
    }
    ws.send(Message::text("still")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "still"
    );

    proxy.advance(3600); // past idle_timeout
    let closed = tokio::time::timeout(CLOSE_BUDGET, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the tunnel stayed open after its session ended"
    );
}

#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    let (proxy, _backend, seen) = setup("").await;
    let cookie = log_in(&proxy).await;
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    // One ordinary request first: the server's SETTINGS (which enable
    // extended CONNECT) have arrived once it is answered.
    let warmup = Request::get(format!("http://{}/page", proxy.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(warmup).await.unwrap().status(), 200);

    let mut req = Request::connect(format!("http://{}/ws/chat", proxy.addr))
        .header("sec-websocket-version", "13")
        .header("cookie", &cookie)
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("sec-websocket-accept").is_none());
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    ws.send(Message::text("over h2")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "over h2"
    );
    let handshake = seen.lock().unwrap()[0].clone();
    assert_eq!(handshake.get("x-session-user").unwrap(), "alice");
    assert!(handshake.get("sec-websocket-key").is_some());

    // Without a session: 401, as over HTTP/1.1.
    let mut req = Request::connect(format!("http://{}/ws/chat", proxy.addr))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cgi_routes_refuse_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&config(
        &[("/", &format!("cgi:{}", dir.path().display()), "public")],
        "",
    ))
    .await;
    let answer = raw(
        proxy.addr,
        b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
}

#[tokio::test]
async fn h2c_upgrade_and_plain_connect_are_never_forwarded() {
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "public")], "")).await;
    let answer = raw(
        proxy.addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = backend.last();
    assert_eq!(seen.header("upgrade"), None);
    assert_eq!(seen.header("http2-settings"), None);
    assert_eq!(seen.header("connection"), None);

    let answer = raw(
        proxy.addr,
        b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(backend.seen().len(), 1);
}
