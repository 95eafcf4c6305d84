//! The answer for a file found and opened: the date preconditions, `Range`
//! and HEAD, as tower-http's `ServeFile` answered them when it served the
//! files itself.
//!
//! `ServeFile` opens its file by path, so it cannot serve the handle opened
//! and checked during the lookup, nor bytes already read; so its answer is
//! rebuilt here from the same parts: the dates are compared by the `headers`
//! crate (`If-Unmodified-Since`, `If-Modified-Since`, to the second), the
//! `Range` header is parsed and checked against the size by
//! `http-range-header` (the parser `ServeFile` uses), and the arms are its
//! own, in its order:
//!
//! ```text
//! If-Unmodified-Since earlier than the file           412
//! If-Modified-Since not earlier than the file         304
//! no Range                                            200, the whole file
//! one satisfiable range                               206, Content-Range
//! a range not satisfiable, or several (no multipart)  416, Content-Range: bytes */SIZE
//! HEAD                                                the same headers, no body
//! ```
//!
//! Every 200 and 206 carries `Content-Type`, `Accept-Ranges: bytes`,
//! `Last-Modified`, `Content-Length`, and `Content-Encoding` for a
//! precompressed sibling.

use std::io;
use std::ops::RangeInclusive;

use headers::{
    AcceptRanges, ContentLength, ContentRange, HeaderMapExt, IfModifiedSince, IfUnmodifiedSince,
    LastModified,
};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

use super::resolve::Served;
use super::status_only;
use crate::body::ResponseBody;

/// The response to a `method` request with `headers` for the file
/// `served`, of type `content_type`. Fails only when a streamed file cannot
/// be positioned at the start of its range.
pub(super) async fn answer(
    method: &Method,
    headers: &HeaderMap,
    content_type: &mime_guess::Mime,
    served: Served,
) -> io::Result<Response<ResponseBody>> {
    let modified = served.metadata.modified().ok();
    if let Some(since) = headers.typed_get::<IfUnmodifiedSince>() {
        // A file without a modification time cannot be shown unmodified.
        if !modified.is_some_and(|m| since.precondition_passes(m)) {
            return Ok(status_only(StatusCode::PRECONDITION_FAILED));
        }
    }
    if let Some(since) = headers.typed_get::<IfModifiedSince>() {
        if modified.is_some_and(|m| !since.is_modified(m)) {
            return Ok(status_only(StatusCode::NOT_MODIFIED));
        }
    }

    let size = served.content.len();
    let mut response = Response::new(ResponseBody::empty());
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    out.typed_insert(AcceptRanges::bytes());
    if let Some(encoding) = served.encoding {
        out.insert(header::CONTENT_ENCODING, encoding.header_value());
    }
    if let Some(modified) = modified {
        out.typed_insert(LastModified::from(modified));
    }

    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(asked) => match one_range(asked, size) {
            Some(range) => Some(range),
            None => {
                out.typed_insert(ContentRange::unsatisfied_bytes(size));
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                return Ok(response);
            }
        },
    };
    let length = match &range {
        Some(range) => {
            // Within 0..size: checked by `validate`.
            if let Ok(content_range) = ContentRange::bytes(range.clone(), size) {
                out.typed_insert(content_range);
            }
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            range.end() - range.start() + 1
        }
        None => size,
    };
    response.headers_mut().typed_insert(ContentLength(length));
    if method == Method::HEAD {
        return Ok(response);
    }
    *response.body_mut() = served.content.body(range).await?;
    Ok(response)
}

/// The one range `asked` names within `size` bytes; `None` when it names
/// none that is satisfiable, or several (no `multipart/byteranges`).
fn one_range(asked: &str, size: u64) -> Option<RangeInclusive<u64>> {
    let ranges = http_range_header::parse_range_header(asked)
        .and_then(|parsed| parsed.validate(size))
        .ok()?;
    match <[_; 1]>::try_from(ranges) {
        // `validate` lets `0-0` through on an empty file, where no range is
        // satisfiable (RFC 9110 section 14.1.1).
        Ok([range]) if *range.end() < size => Some(range),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_satisfiable_range_is_taken_and_anything_else_refused() {
        assert_eq!(one_range("bytes=5-9", 20), Some(5..=9));
        assert_eq!(one_range("bytes=-4", 20), Some(16..=19));
        assert_eq!(one_range("bytes=15-", 20), Some(15..=19));
        assert_eq!(one_range("bytes=100-200", 20), None);
        assert_eq!(one_range("bytes=0-1,5-6", 20), None);
        assert_eq!(one_range("bytes=0-0", 0), None);
        assert_eq!(one_range("lines=1-2", 20), None);
    }
}
