//! FastCGI records (FastCGI 1.0 specification, section 3.3): what we write,
//! and a decoder for what a server sends back.
//!
//! Every record is an 8-byte header (version, type, request id, content
//! length, padding length, a reserved byte), its content, then padding.
//! We speak to a server as a responder with one request per connection at
//! a time, always with request id 1, as nginx does; the server may answer
//! with `FCGI_STDOUT`, `FCGI_STDERR` and, last, `FCGI_END_REQUEST`. Anything
//! else (another version, another request id, a management record we never
//! asked for, a malformed end) is a broken server, and the connection is
//! not used again.
//!
//! Public only so that the fuzz target (`fuzz/`) can reach the decoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version, `FCGI_VERSION_1`.
const VERSION: u8 = 1;
/// Size of a record header.
pub const HEADER_LEN: usize = 8;
/// The most content one record holds.
pub const MAX_CONTENT: usize = u16::MAX as usize;
/// The request id of every request we send.
pub const REQUEST_ID: u16 = 1;

/// `FCGI_BEGIN_REQUEST`
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_END_REQUEST`
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`
pub const STDERR: u8 = 7;

/// `FCGI_RESPONDER`
const RESPONDER: u16 = 1;
/// `FCGI_KEEP_CONN`: the server keeps the connection open after the request.
const KEEP_CONN: u8 = 1;
/// `FCGI_REQUEST_COMPLETE`, the one protocol status of a request that ran.
pub const REQUEST_COMPLETE: u8 = 0;

/// Appends one record header for `content_len` bytes of content, no padding.
pub fn put_header(out: &mut BytesMut, kind: u8, content_len: usize) {
    debug_assert!(content_len <= MAX_CONTENT);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u16(REQUEST_ID);
    // Callers split content at MAX_CONTENT.
    out.put_u16(u16::try_from(content_len).unwrap_or(u16::MAX));
    out.put_u8(0);
    out.put_u8(0);
}

/// Appends `FCGI_BEGIN_REQUEST` for a responder that keeps the connection.
pub fn put_begin_request(out: &mut BytesMut) {
    put_header(out, BEGIN_REQUEST, 8);
    out.put_u16(RESPONDER);
    out.put_u8(KEEP_CONN);
    out.put_bytes(0, 5);
}

/// Appends `content` as records of `kind` (a stream: `PARAMS` or `STDIN`),
/// split at [`MAX_CONTENT`]. Empty content appends nothing: the empty
/// record ends a stream, and is written on purpose only.
pub fn put_stream(out: &mut BytesMut, kind: u8, content: &[u8]) {
    for chunk in content.chunks(MAX_CONTENT) {
        put_header(out, kind, chunk.len());
        out.put_slice(chunk);
    }
}

/// A record from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Response bytes (the CGI header block, then the body). Empty: the
    /// stream has ended.
    Stdout(Bytes),
    /// Error output, for the log.
    Stderr(Bytes),
    /// The request is over.
    End {
        /// The script's exit status.
        app_status: u32,
        /// [`REQUEST_COMPLETE`], or why the server did not run it
        /// (`FCGI_CANT_MPX_CONN`, `FCGI_OVERLOADED`, `FCGI_UNKNOWN_ROLE`).
        protocol_status: u8,
    },
}

/// Why the server's bytes are not FastCGI records of our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A version other than 1.
    #[error("FastCGI record of version {0}")]
    Version(u8),
    /// A record of another request, or a management record.
    #[error("FastCGI record for request id {0}")]
    RequestId(u16),
    /// A record type a responder's server does not send us.
    #[error("unexpected FastCGI record type {0}")]
    Type(u8),
    /// `FCGI_END_REQUEST` whose body is not 8 bytes.
    #[error("FastCGI end-request record of {0} bytes")]
    EndLength(usize),
}

/// Reads records out of the bytes a server sent, as they arrive.
///
/// Feed bytes into [`Decoder::buffer`], then take records with
/// [`Decoder::next_record`] until it says it needs more. The buffer never holds
/// more than one record (at most 8 + 65535 + 255 bytes) plus one read.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Decoder {
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Where the next bytes read from the server go.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next whole record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record>, RecordError> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let version = header[0];
        let kind = header[1];
        let request_id = u16::from_be_bytes([header[2], header[3]]);
        let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let padding_len = usize::from(header[6]);
        if version != VERSION {
            return Err(RecordError::Version(version));
        }
        if request_id != REQUEST_ID {
            return Err(RecordError::RequestId(request_id));
        }
        if !matches!(kind, STDOUT | STDERR | END_REQUEST) {
            return Err(RecordError::Type(kind));
        }
        if kind == END_REQUEST && content_len != 8 {
            return Err(RecordError::EndLength(content_len));
        }
        let total = HEADER_LEN + content_len + padding_len;
        if self.buf.len() < total {
            // Room for the rest of the record, so that it comes in few reads.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let content = self.buf.split_to(content_len).freeze();
        self.buf.advance(padding_len);
        Ok(Some(match kind {
            STDOUT => Record::Stdout(content),
            STDERR => Record::Stderr(content),
            _ => Record::End {
                app_status: u32::from_be_bytes([content[0], content[1], content[2], content[3]]),
                protocol_status: content[4],
            },
        }))
    }

    /// Whether bytes of a record not yet complete are held.
    pub fn holds_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
        let mut out = vec![1, kind];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&u16::try_from(content.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&[padding, 0]);
        out.extend_from_slice(content);
        out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
        out
    }

    #[test]
    fn records_come_out_whole_whatever_the_reads() {
        let mut wire = record(STDOUT, 1, b"Status: 200\r\n\r\nhi", 6);
        wire.extend(record(STDERR, 1, b"warning", 0));
        wire.extend(record(STDOUT, 1, b"", 0));
        wire.extend(record(END_REQUEST, 1, &[0, 0, 0, 3, 0, 0, 0, 0], 0));
        for step in [1, 3, 7, 8, 64, wire.len()] {
            let mut decoder = Decoder::new();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                decoder.buffer().extend_from_slice(piece);
                while let Some(r) = decoder.next_record().expect("valid records") {
                    got.push(r);
                }
            }
            assert_eq!(
                got,
                [
                    Record::Stdout(Bytes::from_static(b"Status: 200\r\n\r\nhi")),
                    Record::Stderr(Bytes::from_static(b"warning")),
                    Record::Stdout(Bytes::new()),
                    Record::End {
                        app_status: 3,
                        protocol_status: 0
                    },
                ],
                "step {step}"
            );
            assert!(!decoder.holds_partial());
        }
    }

    #[test]
    fn what_is_not_our_request_is_refused() {
        for (wire, error) in [
            (
                {
                    let mut r = record(STDOUT, 1, b"x", 0);
                    r[0] = 2;
                    r
                },
                RecordError::Version(2),
            ),
            (record(STDOUT, 2, b"x", 0), RecordError::RequestId(2)),
            (record(11, 0, b"", 0), RecordError::RequestId(0)),
            (record(STDIN, 1, b"", 0), RecordError::Type(STDIN)),
            (
                record(END_REQUEST, 1, b"\0\0\0\0", 0),
                RecordError::EndLength(4),
            ),
        ] {
            let mut decoder = Decoder::new();
            decoder.buffer().extend_from_slice(&wire);
            assert_eq!(decoder.next_record(), Err(error));
        }
        // An HTTP answer, from a server that is not FastCGI at all.
        let mut decoder = Decoder::new();
        decoder
            .buffer()
            .extend_from_slice(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(decoder.next_record(), Err(RecordError::Version(b'H')));
    }

    #[test]
    fn streams_are_split_into_records() {
        let mut out = BytesMut::new();
        put_begin_request(&mut out);
        assert_eq!(&out[..], [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        let mut out = BytesMut::new();
        put_stream(&mut out, STDIN, &vec![7u8; MAX_CONTENT + 10]);
        assert_eq!(out.len(), 2 * HEADER_LEN + MAX_CONTENT + 10);
        assert_eq!(&out[4..6], [0xFF, 0xFF]);
        let second = HEADER_LEN + MAX_CONTENT;
        assert_eq!(&out[second..second + 8], [1, STDIN, 0, 1, 0, 10, 0, 0]);
        let mut out = BytesMut::new();
        put_stream(&mut out, STDIN, b"");
        assert!(out.is_empty());
    }
}
