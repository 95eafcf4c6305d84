//! Reads the header block a script prints before its body (RFC 3875 section 6).
//!
//! Lines may end in LF or CRLF; the block ends at the first empty line.
//! `Status` and `Location` are CGI fields, not HTTP headers; every other
//! field is passed on as a response header, except the hop-by-hop ones and
//! `Content-Length` (the body is streamed, and a script that miscounts must
//! not break the connection).
//!
//! Public only so that the fuzz targets (`fuzz/`) can reach it; the gateway
//! is its one user.

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::upstream::hop_by_hop::is_hop_by_hop;

/// The most a header block may hold, blank line included.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Response headers a script may not set, besides the hop-by-hop ones
/// ([`crate::upstream::hop_by_hop`]): the body is streamed (a miscounted
/// length must not break the connection) and never has trailers.
const DROPPED: [HeaderName; 2] = [header::TRAILER, header::CONTENT_LENGTH];

/// The parsed header block.
#[derive(Debug, Default)]
pub struct ScriptHead {
    /// From a `Status:` field.
    pub status: Option<StatusCode>,
    /// From a `Location:` field.
    pub location: Option<HeaderValue>,
    /// Every other field that may go to the client.
    pub headers: HeaderMap,
}

impl ScriptHead {
    /// A local redirect (RFC 3875 section 6.2.2): a `Location` that is a path
    /// on this site and nothing else. The gateway answers it by running the
    /// new path itself. Any other field (a session control header, say)
    /// makes it a client redirect, so that nothing the script said is lost.
    pub fn local_redirect(&self) -> Option<&str> {
        if self.status.is_some() || !self.headers.is_empty() {
            return None;
        }
        let location = self.location.as_ref()?.to_str().ok()?;
        (location.starts_with('/') && !location.starts_with("//")).then_some(location)
    }

    /// The response status: `Status` when given, else 302 for a redirect,
    /// else 200.
    pub fn status(&self) -> StatusCode {
        match (self.status, &self.location) {
            (Some(status), _) => status,
            (None, Some(_)) => StatusCode::FOUND,
            (None, None) => StatusCode::OK,
        }
    }
}

/// Where the header block ends in `buf`: the index just past its blank line.
///
/// `seen` is how much of `buf` an earlier call already searched in vain, so
/// that a block arriving in many small reads is not searched over and over.
pub fn header_block_end(buf: &[u8], seen: usize) -> Option<usize> {
    // A blank first line is an empty block; parse() then refuses it.
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    // The blank line's first `\n` can be at most two bytes before the end of
    // what was searched already (`\n\r` then `\n`).
    let mut from = seen.saturating_sub(2);
    while let Some(offset) = buf[from..].iter().position(|&b| b == b'\n') {
        let after = from + offset + 1;
        let rest = &buf[after..];
        if rest.starts_with(b"\n") {
            return Some(after + 1);
        }
        if rest.starts_with(b"\r\n") {
            return Some(after + 2);
        }
        from = after;
    }
    None
}

/// Parses a complete header block, blank line included. The error says what
/// was wrong, for the log.
pub fn parse(block: &[u8]) -> Result<ScriptHead, String> {
    let mut head = ScriptHead::default();
    let mut connection_tokens = Vec::new();
    let mut fields = 0;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err("folded header line".to_owned());
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!(
                "header line without a colon: {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let name = HeaderName::from_bytes(&line[..colon]).map_err(|_| {
            format!(
                "bad header name: {:?}",
                String::from_utf8_lossy(&line[..colon])
            )
        })?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| format!("bad value for header {name}"))?;
        fields += 1;
        match name.as_str() {
            "status" => {
                if head.status.replace(parse_status(&value)?).is_some() {
                    return Err("more than one Status field".to_owned());
                }
            }
            "location" => {
                if value.is_empty() {
                    return Err("empty Location field".to_owned());
                }
                if head.location.replace(value).is_some() {
                    return Err("more than one Location field".to_owned());
                }
            }
            _ if DROPPED.contains(&name) || is_hop_by_hop(name.as_str()) => {
                if name == header::CONNECTION {
                    connection_tokens.push(value);
                }
                tracing::debug!(target: "cgi", header = %name, "hop-by-hop header from the script dropped");
            }
            _ => {
                head.headers.append(name, value);
            }
        }
    }
    if fields == 0 {
        return Err("empty header block".to_owned());
    }
    // Headers the script named in its Connection field are hop-by-hop too.
    for tokens in &connection_tokens {
        for token in tokens.to_str().unwrap_or("").split(',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim().as_bytes()) {
                head.headers.remove(name);
            }
        }
    }
    Ok(head)
}

/// `Status: 404 Not Found` -> 404. The reason phrase is not kept.
fn parse_status(value: &HeaderValue) -> Result<StatusCode, String> {
    let text = value.to_str().unwrap_or("");
    let code = text.split_once(' ').map_or(text, |(code, _reason)| code);
    match code.parse::<u16>() {
        Ok(n) if code.len() == 3 && (200..=599).contains(&n) => {
            StatusCode::from_u16(n).map_err(|_| format!("bad Status field: {text:?}"))
        }
        _ => Err(format!("bad Status field: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ends_at_the_first_blank_line() {
        assert_eq!(header_block_end(b"A: b\n\nbody", 0), Some(6));
        assert_eq!(header_block_end(b"A: b\r\n\r\nbody", 0), Some(8));
        assert_eq!(header_block_end(b"A: b\r\nC: d\n\nbody", 0), Some(12));
        assert_eq!(header_block_end(b"\r\nbody", 0), Some(2));
        assert_eq!(header_block_end(b"A: b\r\n\r", 0), None);
        assert_eq!(header_block_end(b"A: b\n", 0), None);
        assert_eq!(header_block_end(b"", 0), None);
        // Resuming after earlier reads finds a terminator split across them.
        assert_eq!(header_block_end(b"A: b\n\nbody", 5), Some(6));
        assert_eq!(header_block_end(b"A: b\r\n\r\nbody", 6), Some(8));
        assert_eq!(header_block_end(b"A: b\r\n\r\nbody", 7), Some(8));
    }

    #[test]
    fn status_location_and_other_fields() {
        let head =
            parse(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
                .expect("valid block");
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.headers["content-type"], "text/plain");
    }

    #[test]
    fn location_without_status_is_found() {
        let head = parse(b"Location: http://example.org/\n\n").expect("valid block");
        assert_eq!(head.status(), StatusCode::FOUND);
        assert_eq!(head.local_redirect(), None);
        let head = parse(b"Status: 301 Moved\nLocation: /x\n\n").expect("valid block");
        assert_eq!(head.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(head.local_redirect(), None);
    }

    #[test]
    fn local_redirect_is_a_bare_local_location() {
        let head = parse(b"Location: /other.cgi?a=1\n\n").expect("valid block");
        assert_eq!(head.local_redirect(), Some("/other.cgi?a=1"));
        let head = parse(b"Location: //evil.example/\n\n").expect("valid block");
        assert_eq!(head.local_redirect(), None);
        let head = parse(b"Location: /x\nX-Session-Set: a=1\n\n").expect("valid block");
        assert_eq!(head.local_redirect(), None);
    }

    #[test]
    fn hop_by_hop_fields_are_dropped() {
        let head = parse(b"Connection: close, X-Private\nTransfer-Encoding: chunked\nContent-Length: 9\nX-Private: 1\nX-Ok: 1\n\n")
            .expect("valid block");
        assert_eq!(head.headers.len(), 1);
        assert_eq!(head.headers["x-ok"], "1");
    }

    #[test]
    fn garbage_is_refused() {
        for block in [
            &b"this is not a header\n\n"[..],
            b"\n",
            b"Status: abc\n\n",
            b"Status: 42\n\n",
            b"Status: 101 Switching Protocols\n\n",
            b"Status: 200\nStatus: 404\n\n",
            b"Bad Name: x\n\n",
            b"A: b\n folded\n\n",
            b"Location:\n\n",
        ] {
            assert!(
                parse(block).is_err(),
                "{:?} should be refused",
                String::from_utf8_lossy(block)
            );
        }
    }
}
