//! The response body type, and the access log line written when it ends.
//!
//! Every response, upstream or synthetic, is a [`ResponseBody`]. It streams
//! frames through untouched, counts the bytes sent, and writes the access
//! log line once the body has ended or was dropped (the client went away),
//! so the line carries the real byte count and duration.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::upstream::http::UpstreamBody;

/// Errors a body may end with.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A response body: from an upstream, a CGI script, or made here.
pub struct ResponseBody {
    kind: Kind,
    log: Option<Box<AccessRecord>>,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> Self {
        Self::from_kind(Kind::Empty)
    }

    /// A body held in memory.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Self::empty();
        }
        Self::from_kind(Kind::Full(Some(bytes)))
    }

    /// An upstream's body, streamed through.
    pub fn upstream(body: UpstreamBody) -> Self {
        Self::from_kind(Kind::Upstream(body))
    }

    /// Any other streaming body (CGI output).
    pub fn stream<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt as _;
        Self::from_kind(Kind::Stream(body.map_err(Into::into).boxed_unsync()))
    }

    fn from_kind(kind: Kind) -> Self {
        ResponseBody { kind, log: None }
    }

    /// Attaches the access record, written when the body ends.
    pub fn with_log(mut self, record: AccessRecord) -> Self {
        self.log = Some(Box::new(record));
        self
    }

    fn count(&mut self, n: usize) {
        if let Some(log) = self.log.as_mut() {
            log.bytes += n as u64;
        }
    }

    fn finish(&mut self) {
        if let Some(log) = self.log.take() {
            log.write();
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled: Poll<Option<Result<Frame<Bytes>, BoxError>>> = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    this.count(n);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(log) = this.log.as_mut() {
                    log.aborted = true;
                }
                this.finish();
            }
            Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Upstream(b) => b.is_end_stream(),
            Kind::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(b) => b.size_hint(),
            Kind::Stream(b) => b.size_hint(),
        }
    }
}

/// One access log line: client, method, path, status, bytes, duration,
/// route, user, and a short hash of the session id (never the id).
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub started: Instant,
    /// Client IP.
    pub client: IpAddr,
    /// Method.
    pub method: http::Method,
    /// Path, without the query (queries may carry secrets).
    pub path: String,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The route's path, or `-`.
    pub route: Arc<str>,
    /// Logged-in user.
    pub user: Option<Arc<str>>,
    /// Short hash of the session id.
    pub session: Option<String>,
    /// The body ended with an error or the client went away.
    pub aborted: bool,
}

thread_local! {
    /// The line being formatted, reused from request to request.
    static TEXT_LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The timestamp's `YYYY-MM-DDTHH:MM:SS` for the current second.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Whether access lines carry their facts as separate fields (JSON logs)
/// rather than as one preformatted message (text logs, where formatting a
/// dozen fields costs several times more than the line itself).
static STRUCTURED: AtomicBool = AtomicBool::new(false);

/// Chooses separate fields (for `log.format = "json"`) or one message.
pub fn structured_access_log(on: bool) {
    STRUCTURED.store(on, Ordering::Relaxed);
}

impl AccessRecord {
    fn write(&self) {
        if let Some(output) = crate::logging::direct_access() {
            TEXT_LINE.with_borrow_mut(|line| {
                line.clear();
                self.format_text(line);
                output.append(line.as_bytes());
            });
            return;
        }
        // Integer arithmetic: formatting a float costs more than the rest of the line.
        let micros = self.started.elapsed().as_micros();
        let duration = format_args!("{}.{:03}", micros / 1000, micros % 1000);
        let user = self.user.as_deref().unwrap_or("-");
        let session = self.session.as_deref().unwrap_or("-");
        if !STRUCTURED.load(Ordering::Relaxed) {
            tracing::info!(
                target: "access",
                "{} \"{} {}\" {} {} {}ms route={} user={:?} session={}{}",
                self.client,
                self.method,
                self.path,
                self.status,
                self.bytes,
                duration,
                self.route,
                user,
                session,
                if self.aborted { " aborted" } else { "" },
            );
            return;
        }
        tracing::info!(
            target: "access",
            client = %self.client,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            duration_ms = %duration,
            route = %self.route,
            user,
            session,
            aborted = self.aborted,
        );
    }
}

impl AccessRecord {
    /// The text line, exactly as `tracing`'s text format writes the same event:
    /// `2026-01-02T03:04:05.123456Z  INFO access: <message>`.
    fn format_text(&self, line: &mut String) {
        use std::fmt::Write as _;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.as_secs() {
                *second = now.as_secs();
                let stamp = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(*second),
                )
                .to_string();
                text.clear();
                text.push_str(stamp.trim_end_matches('Z'));
            }
            line.push_str(text);
        });
        let micros = self.started.elapsed().as_micros();
        let user = self.user.as_deref().unwrap_or("-");
        let session = self.session.as_deref().unwrap_or("-");
        // Writing to a String cannot fail.
        let _ = writeln!(
            line,
            ".{:06}Z  INFO access: {} \"{} {}\" {} {} {}.{:03}ms route={} user={:?} session={}{}",
            now.subsec_micros(),
            self.client,
            self.method,
            self.path,
            self.status,
            self.bytes,
            micros / 1000,
            micros % 1000,
            self.route,
            user,
            session,
            if self.aborted { " aborted" } else { "" },
        );
    }
}
