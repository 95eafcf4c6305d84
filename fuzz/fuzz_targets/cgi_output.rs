//! The header block a CGI script prints: `upstream::cgi::output::header_block_end`
//! and `parse`, on any bytes.
//!
//! The block found ends at the first blank line, and is found just the same
//! when the bytes arrive in pieces (each search resuming where the last one
//! gave up, as the gateway reads); a parsed block never passes a hop-by-hop
//! field or `Content-Length` on, and a local redirect is a path on this site.

#![no_main]

use http::header;
use libfuzzer_sys::fuzz_target;
use sessiongate::upstream::cgi::output::{header_block_end, parse};

fuzz_target!(|data: &[u8]| {
    let whole = header_block_end(data, 0);
    if let Some(end) = whole {
        assert!(end <= data.len());
        let block = &data[..end];
        assert!(
            block == b"\n"
                || block == b"\r\n"
                || block.ends_with(b"\n\n")
                || block.ends_with(b"\n\r\n"),
            "{block:?}"
        );
        assert_eq!(
            header_block_end(&block[..end - 1], 0),
            None,
            "an earlier blank line was passed over"
        );
        check_parse(block);
    }

    // The same bytes in reads of one size, picked by the first byte.
    let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 16);
    let mut seen = 0;
    let mut len = 0;
    let streamed = loop {
        len = (len + step).min(data.len());
        if let Some(end) = header_block_end(&data[..len], seen) {
            break Some(end);
        }
        if len == data.len() {
            break None;
        }
        seen = len;
    };
    assert_eq!(streamed, whole, "step {step}");

    check_parse(data);
});

fn check_parse(block: &[u8]) {
    let Ok(head) = parse(block) else {
        return;
    };
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::CONTENT_LENGTH,
        header::LOCATION,
    ] {
        assert!(!head.headers.contains_key(&name), "{name} passed on");
    }
    assert!(!head.headers.contains_key("status"));
    assert!(!head.headers.contains_key("keep-alive"));
    assert!(!head.headers.contains_key("proxy-connection"));
    let status = head.status().as_u16();
    assert!((200..=599).contains(&status), "{status}");
    if let Some(path) = head.local_redirect() {
        assert!(path.starts_with('/') && !path.starts_with("//"), "{path:?}");
        assert!(head.status.is_none() && head.headers.is_empty());
    }
}
