//! One request on one connection, run by a task of its own: the request
//! body goes out as `FCGI_STDIN` records while the server's records are
//! read, and the response bytes go to the gateway through a bounded
//! channel, so that both bodies stream and a slow client slows the server
//! down rather than filling memory.
//!
//! The task ends the exchange in one of three ways: the server's
//! `FCGI_END_REQUEST` after the whole request body was sent (the connection
//! goes back to the pool); the response's reader went away (the client
//! left, or the gateway stopped waiting); or a failure, sent down the
//! channel. In the last two cases the connection is closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::pool::{Conn, Pool, Reader, Writer};
use super::record::{self, Decoder, REQUEST_COMPLETE, Record, STDIN};

/// Response chunks in flight between the task and the response body.
pub(super) const CHANNEL_DEPTH: usize = 4;
/// The most stderr records of one request that are logged.
const MAX_STDERR_RECORDS: usize = 16;
/// The longest stderr text logged from one record.
const MAX_STDERR_TEXT: usize = 4096;

/// What the task tells the gateway.
#[derive(Debug)]
pub(super) enum Event {
    /// Bytes of `FCGI_STDOUT`: the header block, then the body.
    Stdout(Bytes),
    /// The request ended cleanly; nothing follows.
    End,
    /// The exchange failed; nothing follows.
    Failed(Failure),
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// The client's request body broke while it was being sent.
    #[error("the client's request body broke")]
    ClientBody,
    /// The server sent nothing for as long as the upstream timeout.
    #[error("the FastCGI server sent nothing for {0:?}")]
    Stalled(Duration),
    /// The connection failed or closed mid-request.
    #[error("FastCGI connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before the end of the request.
    #[error("the FastCGI server closed the connection mid-request")]
    Closed,
    /// The server sent something that is not a record of our request.
    #[error(transparent)]
    Protocol(#[from] record::RecordError),
    /// The server refused the request (overloaded, say).
    #[error("the FastCGI server did not run the request (protocol status {0})")]
    NotRun(u8),
}

/// How the exchange ended, when it did not fail.
enum Ending {
    /// The server ended the request; `reusable` when the connection is in
    /// a known state (the whole body sent, nothing more read).
    Complete {
        /// Whether the connection may carry another request.
        reusable: bool,
    },
    /// The reader of the response went away.
    Abandoned,
}

/// Runs the exchange on `conn`, whose request head (begin and params
/// records) has been written already; `body` is `None` when the empty
/// stdin that ends it was written with them.
pub(super) async fn run<B>(
    mut conn: Conn,
    body: Option<B>,
    tx: mpsc::Sender<Event>,
    idle_timeout: Duration,
    pool: Arc<Pool>,
) where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match exchange(&mut conn, body, &tx, idle_timeout).await {
        Ok(Ending::Complete { reusable }) => {
            if reusable {
                pool.put_back(conn);
            }
            let _ = tx.send(Event::End).await;
        }
        Ok(Ending::Abandoned) => {
            tracing::debug!(target: "fastcgi", server = %pool.server(), "response abandoned; connection closed");
        }
        Err(failure) => {
            drop(conn);
            let _ = tx.send(Event::Failed(failure)).await;
        }
    }
}

/// Sends the body while reading the server's records.
async fn exchange<B>(
    conn: &mut Conn,
    body: Option<B>,
    tx: &mpsc::Sender<Event>,
    idle_timeout: Duration,
) -> Result<Ending, Failure>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Conn {
        reader,
        writer,
        unanswered,
        ..
    } = conn;
    // Done: the body was sent, or could not be (`stdin_sent` tells which).
    // Without a body, it went out with the request's head.
    let mut stdin_done = body.is_none();
    let mut stdin_sent = stdin_done;
    let mut stdin = std::pin::pin!(send_stdin(writer, body));
    let mut decoder = Decoder::new();
    let mut stderr = StderrLog::default();
    loop {
        let record = tokio::select! {
            () = tx.closed() => return Ok(Ending::Abandoned),
            sent = &mut stdin, if !stdin_done => {
                stdin_done = true;
                match sent {
                    Ok(()) => stdin_sent = true,
                    Err(Failure::ClientBody) => return Err(Failure::ClientBody),
                    // The server may have answered without reading the
                    // whole body, and closed: its answer is still to be
                    // read, and if it is not there, reading says so.
                    Err(e) => {
                        tracing::debug!(target: "fastcgi", error = %e, "request body not sent whole");
                    }
                }
                continue;
            }
            read = tokio::time::timeout(idle_timeout, next_record(reader, &mut decoder)) => {
                read.map_err(|_| Failure::Stalled(idle_timeout))??
            }
        };
        // A child of the server has taken this connection.
        drop(unanswered.take());
        match record {
            Record::Stdout(bytes) if bytes.is_empty() => {}
            Record::Stdout(bytes) => {
                if tx.send(Event::Stdout(bytes)).await.is_err() {
                    return Ok(Ending::Abandoned);
                }
            }
            Record::Stderr(text) => stderr.log(&text),
            Record::End {
                app_status,
                protocol_status,
            } => {
                if protocol_status != REQUEST_COMPLETE {
                    return Err(Failure::NotRun(protocol_status));
                }
                tracing::trace!(target: "fastcgi", app_status, "request ended");
                // A server that ended the request before it had the whole
                // body, or sent more, leaves the connection in a state we
                // cannot know.
                return Ok(Ending::Complete {
                    reusable: stdin_sent && !decoder.holds_partial(),
                });
            }
        }
    }
}

/// The next record from the server. Cancel-safe: bytes read stay in the
/// decoder.
async fn next_record(reader: &mut Reader, decoder: &mut Decoder) -> Result<Record, Failure> {
    loop {
        if let Some(record) = decoder.next_record()? {
            return Ok(record);
        }
        if reader.read_buf(decoder.buffer()).await? == 0 {
            return Err(Failure::Closed);
        }
    }
}

/// Streams the request body as `FCGI_STDIN` records, then the empty record
/// that ends it (`None`: sent already).
async fn send_stdin<B>(writer: &mut Writer, body: Option<B>) -> Result<(), Failure>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(mut body) = body else {
        return Ok(());
    };
    let mut out = BytesMut::new();
    if !body.is_end_stream() {
        loop {
            let frame = match body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(_)) => return Err(Failure::ClientBody),
                None => break,
            };
            // Trailers are not part of the body a script reads.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            out.clear();
            record::put_stream(&mut out, STDIN, &data);
            writer.write_all(&out).await?;
        }
    }
    out.clear();
    record::put_header(&mut out, STDIN, 0);
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

/// Logs what a script wrote to stderr, within bounds.
#[derive(Default)]
struct StderrLog {
    records: usize,
}

impl StderrLog {
    fn log(&mut self, text: &[u8]) {
        self.records += 1;
        if self.records > MAX_STDERR_RECORDS {
            if self.records == MAX_STDERR_RECORDS + 1 {
                tracing::warn!(target: "fastcgi", "more stderr from this request not logged");
            }
            return;
        }
        let cut = &text[..text.len().min(MAX_STDERR_TEXT)];
        let text = String::from_utf8_lossy(cut);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::warn!(target: "fastcgi", stderr = %text, "FastCGI stderr");
        }
    }
}
