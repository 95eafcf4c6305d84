//! The entity tag of a file, and the preconditions that need it.
//!
//! `response` answers `If-Modified-Since` and `If-Unmodified-Since` on
//! `Last-Modified`, as tower-http's `ServeFile` did; `If-Match`,
//! `If-None-Match` and `If-Range` are evaluated here, before it, with the
//! comparisons of the `headers` crate, in the order of RFC 9110 section
//! 13.2.2; a date precondition that an entity-tag one overrides is removed
//! from the request before it reaches `response`.
//!
//! The tag is weak, `W/"<size>-<mtime>"` in hex, taken from the file's
//! metadata (no read of its content), as nginx and Apache do. Weak, because
//! one tag covers the plain file and its precompressed siblings, which are
//! equivalent but not byte-identical; so `If-Range` (strong comparison) only
//! ever matches on the date, and a stale tag in `If-Range` gets the whole file.

use std::fs::Metadata;
use std::time::UNIX_EPOCH;

use headers::{ETag, HeaderMapExt, IfMatch, IfNoneMatch, IfRange, LastModified};
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// A file's validators, as sent in `ETag` and `Last-Modified`.
#[derive(Debug, Clone)]
pub(super) struct Validators {
    /// The entity tag, parsed for comparisons (always there: the text is
    /// made to parse).
    tag: Option<ETag>,
    /// The same, ready to send.
    pub tag_value: HeaderValue,
    /// The modification time, when the file system has one.
    modified: Option<LastModified>,
}

impl Validators {
    /// The validators of a file with this metadata.
    pub fn of(metadata: &Metadata) -> Validators {
        let modified = metadata.modified().ok();
        let since_epoch = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let text = format!(
            "W/\"{:x}-{:x}.{:x}\"",
            metadata.len(),
            since_epoch.as_secs(),
            since_epoch.subsec_nanos()
        );
        // Hex digits, a dash and a dot: always a valid tag and header value.
        let tag_value = HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("W/\"0\""));
        let tag = text.parse().ok();
        Validators {
            tag,
            tag_value,
            modified: modified.map(LastModified::from),
        }
    }
}

/// What the entity-tag preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Go on and serve the file (with what is left of the request's
    /// preconditions).
    Serve,
    /// `If-None-Match` matched: `304 Not Modified`.
    NotModified,
    /// `If-Match` failed: `412 Precondition Failed`.
    PreconditionFailed,
}

/// Evaluates `If-Match`, `If-None-Match` and `If-Range` of a GET or HEAD
/// against `validators`, and removes from `headers` what `response` must
/// no longer act on: `If-Unmodified-Since` when `If-Match` is there,
/// `If-Modified-Since` when `If-None-Match` is there, and `Range` when
/// `If-Range` names another version.
pub(super) fn evaluate(headers: &mut HeaderMap, validators: &Validators) -> Verdict {
    if headers.contains_key(header::IF_MATCH) {
        headers.remove(header::IF_UNMODIFIED_SINCE);
        let passes = match (headers.typed_get::<IfMatch>(), &validators.tag) {
            (Some(if_match), Some(tag)) => if_match.precondition_passes(tag),
            (Some(if_match), None) => if_match.is_any(),
            (None, _) => true,
        };
        if !passes {
            return Verdict::PreconditionFailed;
        }
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        headers.remove(header::IF_MODIFIED_SINCE);
        if let (Some(if_none_match), Some(tag)) =
            (headers.typed_get::<IfNoneMatch>(), &validators.tag)
        {
            if !if_none_match.precondition_passes(tag) {
                return Verdict::NotModified;
            }
        }
    }
    if let Some(if_range) = headers.typed_get::<IfRange>() {
        if if_range.is_modified(validators.tag.as_ref(), validators.modified.as_ref()) {
            headers.remove(header::RANGE);
        }
    }
    headers.remove(header::IF_RANGE);
    Verdict::Serve
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> (tempfile::NamedTempFile, Validators) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), "hello").expect("write");
        let metadata = std::fs::metadata(file.path()).expect("metadata");
        let v = Validators::of(&metadata);
        (file, v)
    }

    fn request(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from_str(value).expect("header value"));
        }
        headers
    }

    #[test]
    fn the_tag_is_weak_and_names_size_and_time() {
        let (_file, v) = validators();
        let text = v.tag_value.to_str().expect("ascii");
        assert!(text.starts_with("W/\"5-"), "{text}");
        assert!(v.tag.as_ref().is_some_and(ETag::is_weak));
    }

    #[test]
    fn a_matching_if_none_match_is_not_modified_and_overrides_the_date() {
        let (_file, v) = validators();
        let tag = v.tag_value.to_str().expect("ascii").to_owned();
        for sent in [tag.as_str(), "*", &format!("\"x\", {tag}"), &tag[2..]] {
            let mut h = request(&[
                (header::IF_NONE_MATCH, sent),
                (header::IF_MODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:00 GMT"),
            ]);
            assert_eq!(evaluate(&mut h, &v), Verdict::NotModified, "{sent}");
        }
        let mut h = request(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, "Fri, 01 Jan 2100 00:00:00 GMT"),
        ]);
        assert_eq!(evaluate(&mut h, &v), Verdict::Serve);
        assert!(!h.contains_key(header::IF_MODIFIED_SINCE));
    }

    #[test]
    fn if_match_compares_strongly() {
        let (_file, v) = validators();
        let tag = v.tag_value.to_str().expect("ascii").to_owned();
        let mut h = request(&[(header::IF_MATCH, "*")]);
        assert_eq!(evaluate(&mut h, &v), Verdict::Serve);
        let mut h = request(&[(header::IF_MATCH, &tag)]);
        assert_eq!(evaluate(&mut h, &v), Verdict::PreconditionFailed);
        let mut h = request(&[
            (header::IF_MATCH, "\"other\""),
            (header::IF_UNMODIFIED_SINCE, "Fri, 01 Jan 2100 00:00:00 GMT"),
        ]);
        assert_eq!(evaluate(&mut h, &v), Verdict::PreconditionFailed);
    }

    #[test]
    fn a_stale_if_range_drops_the_range() {
        let (_file, v) = validators();
        let tag = v.tag_value.to_str().expect("ascii").to_owned();
        let mut h = request(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, &tag)]);
        evaluate(&mut h, &v);
        assert!(!h.contains_key(header::RANGE), "a weak tag never matches");
        let mut h = request(&[
            (header::RANGE, "bytes=0-1"),
            (header::IF_RANGE, "Thu, 01 Jan 1970 00:00:00 GMT"),
        ]);
        evaluate(&mut h, &v);
        assert!(!h.contains_key(header::RANGE), "an old date");
        let mut h = request(&[
            (header::RANGE, "bytes=0-1"),
            (header::IF_RANGE, "Fri, 01 Jan 2100 00:00:00 GMT"),
        ]);
        evaluate(&mut h, &v);
        assert!(
            h.contains_key(header::RANGE),
            "the date of this version or later"
        );
        let mut h = request(&[(header::RANGE, "bytes=0-1")]);
        evaluate(&mut h, &v);
        assert!(h.contains_key(header::RANGE), "no If-Range");
    }
}
