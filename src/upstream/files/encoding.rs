//! Which precompressed sibling a client takes: `Accept-Encoding` read the
//! way tower-http's `ServeDir` reads it for its precompressed files.
//!
//! Only the codings a sibling can have count (`br` for `.br`, `gzip` or
//! `x-gzip` for `.gz`), and `identity`; the others and `*` are ignored. The
//! highest q-value wins, ties going to `br`, then `gzip`, then the plain
//! file; `q=0` refuses a coding. The result is the list to try in turn, as
//! a sibling may be missing: it stops where the plain file is preferred.

use http::HeaderMap;
use http::header::{self, HeaderValue};

/// A content coding a precompressed sibling is stored in. Ordered from the
/// least to the most preferred on equal q-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Encoding {
    /// The plain file (never a sibling; it ends the list).
    Identity,
    /// `FILE.gz`.
    Gzip,
    /// `FILE.br`.
    Brotli,
}

impl Encoding {
    /// The suffix of the sibling's name, without the dot.
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => "gz",
            Encoding::Brotli => "br",
        }
    }

    /// The `Content-Encoding` of a response with the sibling's bytes.
    pub(super) fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        })
    }

    fn parse(name: &str) -> Option<Encoding> {
        if name.eq_ignore_ascii_case("br") {
            Some(Encoding::Brotli)
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            Some(Encoding::Gzip)
        } else if name.eq_ignore_ascii_case("identity") {
            Some(Encoding::Identity)
        } else {
            None
        }
    }
}

/// The siblings to try for a request with `headers`, best first; empty
/// when the client takes none (or prefers the plain file).
pub(super) fn wanted(headers: &HeaderMap) -> Vec<Encoding> {
    let mut accepted: Vec<(u16, Encoding)> = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let encoding = Encoding::parse(parts.next()?.trim())?;
            let q = match parts.next() {
                Some(param) => qvalue(param.trim())?,
                None => 1000,
            };
            Some((q, encoding))
        })
        .filter(|&(q, _)| q > 0)
        .collect();
    accepted.sort_unstable_by(|a, b| b.cmp(a));
    let mut siblings = Vec::new();
    for (_, encoding) in accepted {
        if encoding == Encoding::Identity {
            break;
        }
        if !siblings.contains(&encoding) {
            siblings.push(encoding);
        }
    }
    siblings
}

/// A q-value (RFC 9110 section 12.4.2), `q=0` to `q=1` with at most three
/// decimals, in thousandths; `None` when it is not one.
fn qvalue(param: &str) -> Option<u16> {
    let value = param
        .strip_prefix("q=")
        .or_else(|| param.strip_prefix("Q="))?;
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, digit| n * 10 + u16::from(digit - b'0'));
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted_for(accept: &str) -> Vec<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).expect("header value"),
        );
        wanted(&headers)
    }

    #[test]
    fn brotli_wins_a_tie_and_q_values_decide_otherwise() {
        use Encoding::*;
        assert_eq!(wanted_for("gzip, deflate, br"), vec![Brotli, Gzip]);
        assert_eq!(wanted_for("gzip;q=1.0, br;q=0.5"), vec![Gzip, Brotli]);
        assert_eq!(wanted_for("x-gzip"), vec![Gzip]);
        assert_eq!(wanted_for("BR;Q=0.001"), vec![Brotli]);
        assert_eq!(wanted_for("deflate, *"), vec![]);
    }

    #[test]
    fn a_refused_or_less_wanted_coding_is_not_tried() {
        use Encoding::*;
        assert_eq!(wanted_for("br;q=0, gzip"), vec![Gzip]);
        assert_eq!(wanted_for("identity, gzip;q=0.5"), vec![]);
        assert_eq!(wanted_for("gzip, identity;q=0.5"), vec![Gzip]);
        assert_eq!(wanted_for("gzip;q=2, br;q=0.5x"), vec![]);
        assert!(wanted(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn q_values_are_read_in_thousandths() {
        assert_eq!(qvalue("q=1"), Some(1000));
        assert_eq!(qvalue("q=0.5"), Some(500));
        assert_eq!(qvalue("q=0.125"), Some(125));
        assert_eq!(qvalue("q=1.000"), Some(1000));
        assert_eq!(qvalue("q=1.001"), None);
        assert_eq!(qvalue("q=0.1234"), None);
        assert_eq!(qvalue("q=.5"), None);
        assert_eq!(qvalue("level=1"), None);
    }
}
