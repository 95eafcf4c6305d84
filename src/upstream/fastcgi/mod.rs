//! The FastCGI gateway: answers a request by having a FastCGI server
//! (php-fpm) run a script, for routes with `upstream = "fastcgi://HOST:PORT"`
//! or `"fastcgi:unix:PATH"`, `root` and `index`.
//!
//! One request, as [`FastCgiUpstream::serve`] reads:
//!
//! ```text
//! request path -> SCRIPT_NAME, PATH_INFO, SCRIPT_FILENAME   script       404
//! the CGI gateway's environment, + REDIRECT_STATUS, env     cgi::environment
//! a kept-alive connection (bounded pool)                    pool         503 / 502
//! BEGIN_REQUEST, PARAMS; then a task streams STDIN while    record, params,
//!   it reads STDOUT / STDERR / END_REQUEST                  exchange     502 / 504
//! the header block (Status:, Location:) from STDOUT         cgi::output  502
//! answer; the rest of STDOUT streams as the body            body
//! ```
//!
//! # Why not a crate
//!
//! `fastcgi-client` (jmjoy; 0.12, maintained, async) was the one serious
//! candidate. It does not fit: parameters are `str` pairs, while a request's
//! headers and decoded paths are bytes; the request body is an `AsyncRead`
//! written whole before the first response byte is read, so a server that
//! answers early, or a client body that breaks halfway, cannot be handled
//! as they arrive; and a kept-alive client's response stream borrows the
//! client, so it cannot be handed to a response body and the connection
//! given back to a pool when the body ends. The other crates (`fastcgi`,
//! `gfcgi`, `tokio-fastcgi`) are servers, or unmaintained. The protocol a
//! responder's client needs is small (five record types and the
//! name-value pair encoding), so it is written here, in `record.rs` and
//! `params.rs`, with a fuzz target over the record decoder.
//!
//! # Facts a script sees
//!
//! The same environment as a CGI script (RFC 3875, `REMOTE_USER` and
//! `AUTH_TYPE` for a signed-in visitor, the route's `env`), with
//! `DOCUMENT_ROOT` = `root`, `SCRIPT_FILENAME` = `root` + the script's path,
//! `REDIRECT_STATUS=200` (which php-cgi's `cgi.force_redirect` wants), and
//! no `PATH` (the server's own environment is its business).
//! Request bodies of known length stream to the server as they arrive. PHP
//! reads no more of a body than `CONTENT_LENGTH` says, so a chunked body of
//! unknown length is read whole first (as nginx's `fastcgi_request_buffering`
//! does), up to [`MAX_UNSIZED_BODY`] in memory; a larger one gets 413.

mod body;
mod exchange;
mod params;
mod pool;
// Public for the fuzz target in fuzz/ (a separate crate).
pub mod record;
mod script;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::LOCATION;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use tokio::sync::mpsc;

pub use body::FastCgiBody;

use crate::config::{FastCgiRoute, FastCgiServer, ScriptEnv};
use crate::upstream::cgi::CgiContext;
use crate::upstream::cgi::environment::{self, RequestFacts, ScriptPaths};
use crate::upstream::cgi::output::{self, MAX_HEADER_BLOCK};
use exchange::{Event, Failure};
use pool::{CheckoutError, Conn, Pool};

/// The most of a request body of unknown length that is read before it
/// goes to the server (PHP's default `post_max_size`).
pub const MAX_UNSIZED_BODY: usize = 8 * 1024 * 1024;

/// Why the gateway could not answer with the script's response.
#[derive(Debug, thiserror::Error)]
pub enum FastCgiError {
    /// The path cannot name a script under the root.
    #[error("no script at this path")]
    NotFound,
    /// Every connection to the server stayed busy.
    #[error("every FastCGI connection busy")]
    Busy,
    /// The server did not send its header block within the timeout.
    #[error("the FastCGI server did not answer in time")]
    Timeout,
    /// The client's own request body broke.
    #[error("the client's request body broke")]
    ClientBody,
    /// A body of unknown length (chunked) larger than
    /// [`MAX_UNSIZED_BODY`].
    #[error("a request body of unknown length is too large")]
    BodyTooLarge,
    /// The server could not be reached, broke the exchange, or sent what is
    /// not a response. The text is for the log only.
    #[error("FastCGI server failed: {0}")]
    BadGateway(String),
}

/// A `fastcgi` route's target. Cheap to clone; routes that name the same
/// server share its connections.
#[derive(Clone)]
pub struct FastCgiUpstream {
    pool: Arc<Pool>,
    root: Arc<str>,
    index: Arc<str>,
    settings: Arc<ScriptEnv>,
}

impl std::fmt::Debug for FastCgiUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastCgiUpstream")
            .field("server", self.pool.server())
            .field("root", &self.root)
            .field("index", &self.index)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The connections to one FastCGI server, to be shared by every route that
/// names it.
#[derive(Clone)]
pub struct FastCgiServerPool(Arc<Pool>);

impl FastCgiServerPool {
    /// At most `max_connections` connections to `server` (see the `pool`
    /// module: no more than php-fpm's `pm.max_children`).
    pub fn new(server: FastCgiServer, max_connections: usize) -> Self {
        FastCgiServerPool(Arc::new(Pool::new(server, max_connections)))
    }
}

impl FastCgiUpstream {
    /// The target of a route: its server's connections, its root and index,
    /// its `env` settings.
    pub fn new(pool: &FastCgiServerPool, route: &FastCgiRoute, settings: ScriptEnv) -> Self {
        FastCgiUpstream {
            pool: pool.0.clone(),
            root: route.root.as_str().into(),
            index: route.index.as_str().into(),
            settings: Arc::new(settings),
        }
    }

    /// Answers `req` by having the server run the script its path names.
    /// `timeout` bounds the wait for the header block once a connection is
    /// in hand, and any silence of the server afterwards.
    pub async fn serve<B>(
        &self,
        req: Request<B>,
        ctx: &CgiContext,
        timeout: Duration,
    ) -> Result<Response<FastCgiBody>, FastCgiError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let script = script::split(parts.uri.path(), &self.index).ok_or(FastCgiError::NotFound)?;
        let body = with_length(&parts.headers, body).await?;
        let filename = [self.root.as_bytes(), &script.script_name].concat();
        let paths = ScriptPaths {
            script_name: &script.script_name,
            filename: &filename,
            path_info: &script.path_info,
            document_root: self.root.as_bytes(),
        };
        let facts = RequestFacts::of(&parts, body.size_hint().exact());
        let mut env = environment::build(&facts, &paths, ctx);
        env.remove("PATH");
        env.insert("REDIRECT_STATUS".to_owned(), b"200".to_vec());
        environment::add_settings(&mut env, &self.settings);

        let mut head = BytesMut::new();
        record::put_begin_request(&mut head);
        params::put_params(
            &mut head,
            env.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
        );
        // A request without a body goes out in one write, its (empty)
        // stdin included, as nginx sends it.
        let stdin_in_head = body.is_end_stream();
        if stdin_in_head {
            record::put_header(&mut head, record::STDIN, 0);
        }
        let conn = self.send_head(&head, timeout).await?;

        let (tx, rx) = mpsc::channel(exchange::CHANNEL_DEPTH);
        let body = (!stdin_in_head).then_some(body);
        tokio::spawn(exchange::run(conn, body, tx, timeout, self.pool.clone()));
        let deadline = tokio::time::Instant::now() + timeout;
        let (head, rest, rx) = read_head(rx, deadline).await?;
        let status = head.status();
        let mut response = Response::new(FastCgiBody::new(rest, rx));
        *response.status_mut() = status;
        *response.headers_mut() = head.headers;
        if let Some(location) = head.location {
            response.headers_mut().insert(LOCATION, location);
        }
        Ok(response)
    }

    /// A connection with the request's head written on it. A kept-alive
    /// connection the server closed while idle fails at once, before any of
    /// the body was read: the head is then sent on another one.
    async fn send_head(&self, head: &[u8], timeout: Duration) -> Result<Conn, FastCgiError> {
        use tokio::io::AsyncWriteExt as _;
        loop {
            let mut conn = match self.pool.checkout(pool::QUEUE_WAIT.min(timeout)).await {
                Ok(conn) => conn,
                Err(CheckoutError::Busy) => {
                    tracing::warn!(target: "fastcgi", server = %self.pool.server(), "every FastCGI connection stayed busy; answered 503 (see upstream_max_connections)");
                    return Err(FastCgiError::Busy);
                }
                Err(CheckoutError::Connect(e)) => {
                    return Err(FastCgiError::BadGateway(format!(
                        "connect to {}: {e}",
                        self.pool.server()
                    )));
                }
            };
            match conn.writer.write_all(head).await {
                Ok(()) => return Ok(conn),
                Err(e) if conn.reused => {
                    tracing::debug!(target: "fastcgi", error = %e, "kept-alive FastCGI connection gone; trying another");
                }
                Err(e) => {
                    return Err(FastCgiError::BadGateway(format!(
                        "write to {}: {e}",
                        self.pool.server()
                    )));
                }
            }
        }
    }
}

/// Streams a body whose length is known; reads one of unknown length
/// (chunked) whole first, up to [`MAX_UNSIZED_BODY`], since PHP reads no
/// more of a body than `CONTENT_LENGTH` says.
async fn with_length<B>(
    headers: &http::HeaderMap,
    body: B,
) -> Result<Either<B, Full<Bytes>>, FastCgiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let known = body.is_end_stream()
        || body.size_hint().exact().is_some()
        || headers.contains_key(http::header::CONTENT_LENGTH);
    if known {
        return Ok(Either::Left(body));
    }
    match Limited::new(body, MAX_UNSIZED_BODY).collect().await {
        Ok(collected) => Ok(Either::Right(Full::new(collected.to_bytes()))),
        Err(e) if e.is::<LengthLimitError>() => Err(FastCgiError::BodyTooLarge),
        Err(_) => Err(FastCgiError::ClientBody),
    }
}

/// Reads `FCGI_STDOUT` until the header block is whole, by `deadline`.
/// Returns it parsed, the bytes after it, and the channel for the rest.
async fn read_head(
    mut rx: mpsc::Receiver<Event>,
    deadline: tokio::time::Instant,
) -> Result<(output::ScriptHead, Bytes, mpsc::Receiver<Event>), FastCgiError> {
    let mut buf = BytesMut::new();
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| FastCgiError::Timeout)?;
        match event {
            Some(Event::Stdout(bytes)) => {
                let seen = buf.len();
                buf.extend_from_slice(&bytes);
                if let Some(end) = output::header_block_end(&buf, seen) {
                    let head = output::parse(&buf[..end])
                        .map_err(|e| FastCgiError::BadGateway(format!("bad header block: {e}")))?;
                    let rest = buf.split_off(end).freeze();
                    return Ok((head, rest, rx));
                }
                if buf.len() > MAX_HEADER_BLOCK {
                    return Err(FastCgiError::BadGateway(
                        "header block larger than 64 KiB".to_owned(),
                    ));
                }
            }
            Some(Event::Failed(Failure::ClientBody)) => return Err(FastCgiError::ClientBody),
            Some(Event::Failed(Failure::Stalled(_))) => return Err(FastCgiError::Timeout),
            Some(Event::Failed(failure)) => {
                return Err(FastCgiError::BadGateway(failure.to_string()));
            }
            Some(Event::End) | None => {
                return Err(FastCgiError::BadGateway(
                    "the response ended before its header block".to_owned(),
                ));
            }
        }
    }
}
