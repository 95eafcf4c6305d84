//! The response body type.
//!
//! Every response, upstream or synthetic, is a [`ResponseBody`]. It streams
//! frames through untouched, counts the bytes sent, and writes the access
//! log line ([`crate::access_log`]) once the body has ended or was dropped
//! (the client went away), so the line carries the real byte count and
//! duration.

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;

use crate::access_log::AccessRecord;
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
