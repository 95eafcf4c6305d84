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
//! A request with no body at all (most GETs) is passed through unwrapped in
//! all but type: no allocation, no per-frame work.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::request_headers::strip_trailers;

/// A request body as forwarded: trailers cleaned, client failures recorded.
pub struct RequestBody {
    inner: Incoming,
    /// `None` for a body that had ended before it was wrapped.
    watch: Option<Watch>,
}

struct Watch {
    /// The session header prefix, normalised (see `HeadersConfig::match_prefix`).
    prefix: Arc<str>,
    failed: ClientBodyFailure,
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

impl RequestBody {
    /// Wraps a client's body; `prefix` is the normalised session header prefix.
    /// Returns the body and the handle that later says whether it failed.
    pub fn new(inner: Incoming, prefix: &Arc<str>) -> (Self, ClientBodyFailure) {
        if inner.is_end_stream() {
            return (RequestBody { inner, watch: None }, ClientBodyFailure(None));
        }
        let failed = ClientBodyFailure(Some(Arc::new(AtomicBool::new(false))));
        let watch = Watch {
            prefix: prefix.clone(),
            failed: failed.clone(),
        };
        (
            RequestBody {
                inner,
                watch: Some(watch),
            },
            failed,
        )
    }
}

/// The client's body could not be read: its framing was broken, or the
/// client went away halfway.
#[derive(Debug)]
pub struct ClientBodyError(hyper::Error);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let Some(watch) = &self.watch else {
            return polled.map_err(ClientBodyError);
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
                if let Some(flag) = &watch.failed.0 {
                    flag.store(true, Ordering::Relaxed);
                }
                tracing::info!(error = %e, "client request body broken; answering 400");
                Poll::Ready(Some(Err(ClientBodyError(e))))
            }
            other => other.map_err(ClientBodyError),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
