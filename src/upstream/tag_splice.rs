//! Inserting a few bytes before the last `</body>` of a streamed HTML
//! body, without holding the body.
//!
//! The last `</body>` (any case) cannot be known until the body ends, so
//! from each one found the splicer holds the bytes back: normally only the
//! page's last few bytes (`</body></html>`). When another `</body>` comes,
//! what was held goes out; at the end, the tag goes in before what is held.
//! A `</body>` split across chunks is found too: a chunk's last bytes that
//! could begin one wait for the next chunk.
//!
//! What is held is bounded ([`HOLD_LIMIT`]): a page that writes more than
//! that after a `</body>` (one inside a script or a comment, say) has it let
//! go, and the tag then goes before a later `</body>`, or at the very end.
//! Without any `</body>` the tag is added at the end, where browsers still
//! run it.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// What is looked for, compared without regard to ASCII case.
const CLOSE: &[u8] = b"</body>";

/// The most bytes held back after a `</body>` before letting them go.
pub const HOLD_LIMIT: usize = 64 * 1024;

/// Splices `tag` into one body, chunk by chunk.
#[derive(Debug)]
pub struct TagSplicer {
    tag: Bytes,
    /// Bytes not yet sent: from a `</body>` on (`at_close`), or a tail of
    /// fewer than `CLOSE.len()` bytes that may begin one.
    held: BytesMut,
    /// `held` begins with a `</body>`.
    at_close: bool,
    limit: usize,
}

impl TagSplicer {
    /// A splicer that adds `tag`.
    pub fn new(tag: Bytes) -> Self {
        Self::with_limit(tag, HOLD_LIMIT)
    }

    /// A splicer holding at most about `limit` bytes after a `</body>`.
    pub fn with_limit(tag: Bytes, limit: usize) -> Self {
        TagSplicer {
            tag,
            held: BytesMut::new(),
            at_close: false,
            limit,
        }
    }

    /// Takes the next chunk of the body; what may be sent now is pushed
    /// onto `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut VecDeque<Bytes>) {
        if self.held.is_empty() {
            // The common case: nothing waits, and the chunk goes out as it
            // is, but for what is held from it.
            let keep_from = match last_close(&chunk, 0) {
                Some(i) => {
                    self.at_close = true;
                    i
                }
                None => chunk.len() - partial_close(&chunk),
            };
            if keep_from > 0 {
                out.push_back(chunk.slice(..keep_from));
            }
            self.held.extend_from_slice(&chunk[keep_from..]);
        } else {
            // Searching from just before the new bytes finds a `</body>`
            // that straddles the boundary, and none already seen.
            let from = self.held.len().saturating_sub(CLOSE.len() - 1);
            let from = if self.at_close { from.max(1) } else { from };
            self.held.extend_from_slice(&chunk);
            let send = match last_close(&self.held, from) {
                Some(i) => {
                    self.at_close = true;
                    i
                }
                None if self.at_close => 0,
                None => self.held.len() - partial_close(&self.held),
            };
            if send > 0 {
                out.push_back(self.held.split_to(send).freeze());
            }
        }
        if self.at_close && self.held.len() > self.limit {
            self.at_close = false;
            let send = self.held.len() - partial_close(&self.held);
            out.push_back(self.held.split_to(send).freeze());
        }
    }

    /// The body has ended: the rest, with the tag in its place.
    pub fn finish(self) -> Bytes {
        let mut last = BytesMut::with_capacity(self.tag.len() + self.held.len());
        if self.at_close {
            last.extend_from_slice(&self.tag);
            last.extend_from_slice(&self.held);
        } else {
            last.extend_from_slice(&self.held);
            last.extend_from_slice(&self.tag);
        }
        last.freeze()
    }
}

/// Where the last `</body>` starting at or after `from` begins.
fn last_close(hay: &[u8], from: usize) -> Option<usize> {
    let last_start = hay.len().checked_sub(CLOSE.len())?;
    (from..=last_start)
        .rev()
        .find(|&i| hay[i] == b'<' && hay[i..i + CLOSE.len()].eq_ignore_ascii_case(CLOSE))
}

/// How many of `hay`'s last bytes could be the start of a `</body>`.
fn partial_close(hay: &[u8]) -> usize {
    (1..CLOSE.len())
        .rev()
        .find(|&k| hay.len() >= k && hay[hay.len() - k..].eq_ignore_ascii_case(&CLOSE[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "<script src=\"/s.js\" defer></script>";

    /// The body split at every given boundary, spliced.
    fn splice(chunks: &[&[u8]], limit: usize) -> Vec<u8> {
        let mut s = TagSplicer::with_limit(Bytes::from_static(TAG.as_bytes()), limit);
        let mut out = VecDeque::new();
        for c in chunks {
            s.push(Bytes::copy_from_slice(c), &mut out);
        }
        out.push_back(s.finish());
        out.into_iter().flat_map(|b| b.to_vec()).collect()
    }

    /// Every way of cutting `body` in two and in three.
    fn every_split(body: &str, limit: usize) -> Vec<String> {
        let b = body.as_bytes();
        let mut results = vec![splice(&[b], limit)];
        for i in 0..=b.len() {
            results.push(splice(&[&b[..i], &b[i..]], limit));
            for j in i..=b.len() {
                results.push(splice(&[&b[..i], &b[i..j], &b[j..]], limit));
            }
        }
        results
            .into_iter()
            .map(|r| String::from_utf8(r).expect("utf-8"))
            .collect()
    }

    fn all_equal(body: &str, want: &str) {
        for got in every_split(body, HOLD_LIMIT) {
            assert_eq!(got, want, "{body:?}");
        }
    }

    #[test]
    fn goes_before_the_last_close_in_any_case_however_cut() {
        all_equal(
            "<html><body>hi</body></html>\n",
            &format!("<html><body>hi{TAG}</body></html>\n"),
        );
        all_equal(
            "<p>a</BODY> b </Body>c",
            &format!("<p>a</BODY> b {TAG}</Body>c"),
        );
        all_equal(
            "<p>no close</p></bod",
            &format!("<p>no close</p></bod{TAG}"),
        );
        all_equal("", TAG);
        all_equal("</body>", &format!("{TAG}</body>"));
        all_equal("<</body></body", &format!("<{TAG}</body></body"));
    }

    #[test]
    fn what_is_held_is_bounded() {
        // A close followed by more than the limit: let go; the tag ends up
        // before a later close, or at the end.
        let filler = "x".repeat(40);
        let body = format!("a</body>{filler}</body>z");
        for got in every_split(&body, 16) {
            assert_eq!(got, format!("a</body>{filler}{TAG}</body>z"));
        }
        let body = format!("a</body>{filler}");
        for got in every_split(&body, 16) {
            assert_eq!(got, format!("a</body>{filler}{TAG}"));
        }
    }

    #[test]
    fn holds_nothing_but_a_possible_start() {
        let mut s = TagSplicer::new(Bytes::from_static(b"T"));
        let mut out = VecDeque::new();
        s.push(Bytes::from_static(b"<p>one</p><"), &mut out);
        assert_eq!(out.pop_front().as_deref(), Some(&b"<p>one</p>"[..]));
        s.push(Bytes::from_static(b"p>two</p>"), &mut out);
        assert_eq!(out.pop_front().as_deref(), Some(&b"<p>two</p>"[..]));
        assert!(out.is_empty());
        assert_eq!(&s.finish()[..], b"T");
    }
}
