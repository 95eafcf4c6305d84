//! The client's request body on its way to the backend.
//!
//! Two things happen to it there that cannot happen to the head:
//!
//! - **Trailers** (HTTP/1.1 chunked, HTTP/2) arrive after the body, long
//!   after the head was cleaned, and would otherwise reach the backend
//!   uncleaned: a trailer named `X-Session-User` is one more way to forge a
//!   session header for a backend that merges trailers into its headers.
//!   They get the same stripping as headers ([`strip_trailers`]).
//! - **Broken framing** (`0x5` as a chunk size, bare LF line ends, garbage)
//!   surfaces as an error while the body is read, which the HTTP client or
//!   the CGI gateway would report as the upstream failing. The body records
//!   that the failure was the client's, so the answer is a `400` counted as a
//!   client error, never a `502` counted against the backend.
//!
//! A request with no body at all (most GETs) is passed through unwatched:
//! no allocation, no per-frame work. A body from elsewhere than hyper (a
//! test's) is boxed, so that the whole request path can be driven without a
//! socket.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;

use super::request_headers::strip_trailers;

/// A client's request body: hyper's, or any other (a test's, say), and,
/// once [`RequestBody::watch`]ed, with trailers cleaned and failures
/// recorded on the way to the backend.
pub struct RequestBody {
    inner: Inner,
    /// `None` until watched, and for a body that had ended by then.
    watch: Option<Watch>,
}

enum Inner {
    Incoming(Incoming),
    Other(BoxBody<Bytes, BoxError>),
}

/// Errors a non-hyper body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Watch {
    /// The session header prefix, normalised (see `HeadersConfig::match_prefix`).
    prefix: Arc<str>,
    failed: Arc<AtomicBool>,
}

/// Says, after the fact, whether the client's body broke while being read.
/// Cheap to clone; shared with the [`RequestBody`] it came from.
#[derive(Clone, Default)]
pub struct ClientBodyFailure(Option<Arc<AtomicBool>>);

impl ClientBodyFailure {
    /// Whether reading the client's body failed (bad framing, a connection
    /// cut halfway).
    pub fn happened(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody {
            inner: Inner::Incoming(body),
            watch: None,
        }
    }
}

impl RequestBody {
    /// Any other body (for handling requests that did not come from a
    /// socket, as tests do).
    pub fn other<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt as _;
        RequestBody {
            inner: Inner::Other(body.map_err(Into::into).boxed()),
            watch: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::other(http_body_util::Empty::<Bytes>::new())
    }

    /// Makes the body clean its trailers (`prefix` is the normalised session
    /// header prefix) and record a failure of the client's. Returns it and
    /// the handle that later says whether it failed.
    pub fn watch(mut self, prefix: &Arc<str>) -> (Self, ClientBodyFailure) {
        if self.is_end_stream() {
            return (self, ClientBodyFailure(None));
        }
        let failed = Arc::new(AtomicBool::new(false));
        self.watch = Some(Watch {
            prefix: prefix.clone(),
            failed: failed.clone(),
        });
        (self, ClientBodyFailure(Some(failed)))
    }
}

/// The client's body could not be read: its framing was broken, or the
/// client went away halfway.
#[derive(Debug)]
pub struct ClientBodyError(BoxError);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let polled = match &mut self.inner {
            Inner::Incoming(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| ClientBodyError(e.into())),
            Inner::Other(body) => Pin::new(body).poll_frame(cx).map_err(ClientBodyError),
        };
        let Some(watch) = &self.watch else {
            return polled;
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    strip_trailers(&mut trailers, &watch.prefix);
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => {
                watch.failed.store(true, Ordering::Relaxed);
                tracing::info!(error = %e, "client request body broken; answering 400");
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Incoming(body) => body.is_end_stream(),
            Inner::Other(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Incoming(body) => body.size_hint(),
            Inner::Other(body) => body.size_hint(),
        }
    }
}
