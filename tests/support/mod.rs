//! Test scaffolding: a recording backend and an in-process proxy, both on
//! 127.0.0.1 ephemeral ports, plus a raw HTTP/1.1 client for requests no
//! well-behaved client library would send.

#![allow(dead_code)]

pub mod form;
pub mod process;
pub mod site;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sessiongate::clock::Clock;
use sessiongate::config::Config;
use sessiongate::server::{self, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A test secret key (32+ characters).
pub const KEY: &str = "test-key-0123456789-abcdefghijklmnop";

/// What the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The request's trailers, when it had any.
    pub trailers: Option<HeaderMap>,
}

impl Seen {
    /// The value of a header, if present once.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// What the backend answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Reply {
            status: 200,
            body: body.into(),
            ..Reply::default()
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// An HTTP backend that records every request and answers through a closure.
pub struct Backend {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    /// A backend that answers `200 ok` to everything.
    pub async fn start() -> Backend {
        Backend::with(|_| Reply::ok("ok")).await
    }

    /// A backend answering through `respond`.
    pub async fn with(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Responder = Arc::new(respond);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        let respond = respond.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let (body, trailers) = match body.collect().await {
                                Ok(collected) => {
                                    let trailers = collected.trailers().cloned();
                                    (collected.to_bytes(), trailers)
                                }
                                Err(_) => (Bytes::new(), None),
                            };
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                trailers,
                            };
                            let reply = respond(&seen);
                            log.lock().unwrap().push(seen);
                            if let Some(d) = reply.delay {
                                tokio::time::sleep(d).await;
                            }
                            let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
                            *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
                            for (k, v) in reply.headers {
                                resp.headers_mut().append(
                                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                    v.parse().unwrap(),
                                );
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, seen }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the backend received no request")
    }
}

/// A proxy running in this process.
pub struct Proxy {
    pub addr: SocketAddr,
    pub running: Option<Running>,
    pub time: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy from config text; `listen` is forced to an ephemeral port.
    /// Time starts at a fixed instant and moves only with [`Proxy::advance`].
    pub async fn start(toml: &str) -> Proxy {
        let mut config: Config = toml
            .parse()
            .unwrap_or_else(|e| panic!("bad test config:\n{e}"));
        config.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
        // In-process proxies run from the repository root; a snapshot file
        // named by a shipped config must not be read or written from there.
        config.store.snapshot = None;
        let time = Arc::new(AtomicU64::new(1_700_000_000));
        let clock = Clock::Manual(time.clone());
        let store = server::build_store(&config, &clock).await.unwrap();
        let running = server::start_with_clock(config, store, clock)
            .await
            .unwrap();
        Proxy {
            addr: running.addrs[0],
            running: Some(running),
            time,
        }
    }

    /// Moves the proxy's clock forward.
    pub fn advance(&self, secs: u64) {
        self.time.fetch_add(secs, Ordering::Relaxed);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn gate(&self) -> &sessiongate::proxy::Gate {
        &self.running.as_ref().unwrap().gate
    }
}

/// A config with one route per `(path, upstream, access)`, plus extra TOML.
pub fn config(routes: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = format!("[session]\nsecret_keys = [\"{KEY}\"]\n{extra}\n");
    for (path, upstream, access) in routes {
        s.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\naccess = \"{access}\"\n"
        ));
    }
    s
}

/// A client that follows no redirects and keeps no cookies: tests handle them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser-like client: keeps cookies, follows no redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every `Set-Cookie` of a response.
pub fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The `name=value` pair of our cookie in a response, if it sets one.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.starts_with("sg_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Sends raw bytes over HTTP/1.1 and returns the whole response text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
