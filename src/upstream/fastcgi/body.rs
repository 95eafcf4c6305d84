//! The response body: the bytes after the header block, then whatever the
//! exchange task sends, until the server ends the request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

use super::exchange::Event;

/// A FastCGI response's body, streamed. Dropping it before its end closes
/// the connection (the exchange task sees its reader gone).
pub struct FastCgiBody {
    /// Bytes read with the header block, sent first.
    pending: Option<Bytes>,
    /// `None` once the end (or a failure) has been seen.
    rx: Option<mpsc::Receiver<Event>>,
}

impl FastCgiBody {
    pub(super) fn new(pending: Bytes, rx: mpsc::Receiver<Event>) -> Self {
        FastCgiBody {
            pending: (!pending.is_empty()).then_some(pending),
            rx: Some(rx),
        }
    }
}

impl std::fmt::Debug for FastCgiBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastCgiBody")
            .field("ended", &self.rx.is_none())
            .finish()
    }
}

impl Body for FastCgiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(bytes) = self.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        let event = std::task::ready!(rx.poll_recv(cx));
        match event {
            Some(Event::Stdout(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Some(Event::End) => {
                self.rx = None;
                Poll::Ready(None)
            }
            Some(Event::Failed(failure)) => {
                self.rx = None;
                tracing::warn!(target: "fastcgi", error = %failure, "FastCGI response cut short");
                Poll::Ready(Some(Err(io::Error::other(failure.to_string()))))
            }
            // The task went away without saying how it ended.
            None => {
                self.rx = None;
                Poll::Ready(Some(Err(io::Error::other(
                    "FastCGI exchange ended abruptly",
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.rx.is_none()
    }
}
