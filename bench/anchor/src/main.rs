//! The benchmarks' ceiling: a reverse proxy that forwards every request to
//! one upstream and does nothing else, on the stack sessiongate is built on
//! (hyper 1 http1 on both sides, one current_thread tokio runtime,
//! mimalloc). No sessions, no routes, no logging, no timeouts or limits.
//! What sessiongate costs beyond this is its own work.
//!
//! Usage: `anchor LISTEN UPSTREAM`, both `host:port`, e.g.
//! `anchor 127.0.0.1:8081 127.0.0.1:8080`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::header::HeaderValue;
use http::{HeaderName, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// At most this many idle upstream connections are kept.
const POOL_MAX: usize = 256;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Idle keep-alive connections to the upstream.
#[derive(Clone)]
struct Pool {
    upstream: SocketAddr,
    idle: Arc<Mutex<Vec<SendRequest<Incoming>>>>,
}

impl Pool {
    /// A connection ready for a request: an idle one, or a new one.
    async fn take(&self) -> std::io::Result<SendRequest<Incoming>> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(mut sender) => {
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    async fn connect(&self) -> std::io::Result<SendRequest<Incoming>> {
        let stream = TcpStream::connect(self.upstream).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    fn put(&self, sender: SendRequest<Incoming>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(sender);
        }
    }
}

/// The upstream's response body, streamed to the client; its connection
/// goes back to the pool when the body has been read to the end.
struct Forwarded {
    body: Option<Incoming>,
    back: Option<(SendRequest<Incoming>, Pool)>,
}

impl Forwarded {
    fn empty() -> Self {
        Forwarded {
            body: None,
            back: None,
        }
    }

    fn give_back(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            pool.put(sender);
        }
    }
}

impl Body for Forwarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(body) = self.body.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => self.give_back(),
            // A broken connection is not reused.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        // Read to the end without a last poll (a body of a known length):
        // the connection is idle again.
        if self.body.as_ref().is_some_and(Body::is_end_stream) {
            self.give_back();
        }
    }
}

/// Forwards one request; 502 when the upstream cannot be reached.
async fn forward(
    mut request: Request<Incoming>,
    peer: HeaderValue,
    pool: Pool,
) -> Result<Response<Forwarded>, Infallible> {
    let bad_gateway = || {
        let mut response = Response::new(Forwarded::empty());
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    };
    *request.version_mut() = Version::HTTP_11;
    request.headers_mut().insert(X_FORWARDED_FOR.clone(), peer);
    let Ok(mut sender) = pool.take().await else {
        return Ok(bad_gateway());
    };
    let Ok(response) = sender.send_request(request).await else {
        return Ok(bad_gateway());
    };
    let (parts, body) = response.into_parts();
    let body = Forwarded {
        body: Some(body),
        back: Some((sender, pool)),
    };
    Ok(Response::from_parts(parts, body))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: anchor LISTEN UPSTREAM   (both host:port)");
        std::process::exit(2);
    };
    let (Ok(listen), Ok(upstream)) = (listen.parse::<SocketAddr>(), upstream.parse()) else {
        eprintln!("anchor: LISTEN and UPSTREAM are host:port addresses");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime");
    if let Err(error) = runtime.block_on(serve(listen, upstream)) {
        eprintln!("anchor: {error}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let pool = Pool {
        upstream,
        idle: Arc::default(),
    };
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer =
            HeaderValue::from_str(&peer.ip().to_string()).expect("an IP address is a header value");
        let pool = pool.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| forward(request, peer.clone(), pool.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
