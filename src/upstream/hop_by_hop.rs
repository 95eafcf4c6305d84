//! Hop-by-hop header fields: they describe one connection and never travel
//! past a proxy, in either direction (RFC 9110 section 7.6.1).
//!
//! This is the one table of them; the CGI gateway's lists of what a script
//! may not see or send start from it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Removes hop-by-hop headers, including those named in `Connection`.
/// `TE: trailers` survives as just that: it tells the upstream that the
/// client takes trailers (gRPC needs it), and no other `TE` value does.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = HopByHop::default();
    for (name, value) in headers.iter() {
        found.note(name.as_str(), value);
    }
    found.remove_from(headers);
}

/// What a pass over a header section found of the hop-by-hop fields:
/// which are present, whether `Connection` names any other field, and
/// whether `TE` asks for trailers. Fed one field at a time by
/// [`HopByHop::note`], so that a caller with other names to look for
/// makes one pass for all of them.
///
/// Most requests carry none of these fields, and most responses only
/// `Connection: keep-alive`: then nothing is looked up, and at most that
/// one field is removed.
#[derive(Default)]
pub struct HopByHop {
    present: [bool; HOP_BY_HOP.len()],
    any: bool,
    /// A `Connection` header names a field besides `close` and the
    /// hop-by-hop ones.
    names_others: bool,
    /// A `TE` header lists `trailers`.
    takes_trailers: bool,
}

impl HopByHop {
    /// Notes one field, its name as [`HeaderName::as_str`] gives it.
    pub fn note(&mut self, name: &str, value: &HeaderValue) {
        let Some(i) = lower_case_index(name) else {
            return;
        };
        self.present[i] = true;
        self.any = true;
        match i {
            CONNECTION_INDEX => self.names_others |= !lists_nothing_more(value),
            TE_INDEX => self.takes_trailers |= lists_trailers(value),
            _ => {}
        }
    }

    /// Whether the removal takes fields that `Connection` names: then any
    /// other header may be gone after it.
    pub fn names_others(&self) -> bool {
        self.names_others
    }

    /// Removes the fields noted, and those `Connection` names; puts back
    /// `TE: trailers` when `TE` asked for trailers.
    pub fn remove_from(self, headers: &mut HeaderMap) {
        if !self.any {
            return;
        }
        // The names `Connection` lists besides `close` and hop-by-hop ones.
        let listed: Vec<HeaderName> = if self.names_others {
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|n| !n.eq_ignore_ascii_case("close") && hop_by_hop_index(n).is_none())
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect()
        } else {
            Vec::new()
        };
        for ((_, name), _) in HOP_BY_HOP.iter().zip(self.present).filter(|(_, p)| *p) {
            headers.remove(name);
        }
        for name in listed {
            headers.remove(name);
        }
        if self.takes_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// Whether a `TE` value lists `trailers` (with or without parameters).
fn lists_trailers(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',').any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    })
}

/// Whether a `Connection` value lists only `close` or hop-by-hop names
/// (`keep-alive`, in practice): then it names nothing else to remove. A
/// plain scan of the bytes, for the usual values; anything unusual is
/// left to the full parse.
fn lists_nothing_more(value: &HeaderValue) -> bool {
    value.as_bytes().split(|&b| b == b',').all(|token| {
        let token = token.trim_ascii();
        token.is_empty()
            || token.eq_ignore_ascii_case(b"close")
            || token.eq_ignore_ascii_case(b"keep-alive")
            || std::str::from_utf8(token).is_ok_and(|t| hop_by_hop_index(t).is_some())
    })
}

/// Header names that describe one connection and never travel past a proxy,
/// as text and as names. (`Trailer` is not one of them: it announces
/// end-to-end trailer fields, and hyper sends HTTP/1.1 trailers only for
/// the names it lists.) The text is what the check compares, lengths first:
/// that is what makes it cheap for the many names that are none of these.
static HOP_BY_HOP: [(&str, HeaderName); 9] = [
    ("connection", header::CONNECTION),
    ("keep-alive", HeaderName::from_static("keep-alive")),
    (
        "proxy-connection",
        HeaderName::from_static("proxy-connection"),
    ),
    ("proxy-authenticate", header::PROXY_AUTHENTICATE),
    ("proxy-authorization", header::PROXY_AUTHORIZATION),
    ("te", header::TE),
    ("transfer-encoding", header::TRANSFER_ENCODING),
    ("upgrade", header::UPGRADE),
    ("http2-settings", HeaderName::from_static("http2-settings")),
];
const CONNECTION_INDEX: usize = 0;
const TE_INDEX: usize = 5;

/// Where `name` (in any case) is in [`HOP_BY_HOP`].
pub(crate) fn hop_by_hop_index(name: &str) -> Option<usize> {
    candidates(name)
        .iter()
        .copied()
        .find(|&i| HOP_BY_HOP[i].0.eq_ignore_ascii_case(name))
}

/// [`hop_by_hop_index`] for a name already in lower case, as a
/// [`HeaderName`] keeps it: compared byte for byte.
fn lower_case_index(name: &str) -> Option<usize> {
    candidates(name)
        .iter()
        .copied()
        .find(|&i| HOP_BY_HOP[i].0 == name)
}

/// The places in [`HOP_BY_HOP`] of the names as long as `name`.
fn candidates(name: &str) -> &'static [usize] {
    // By length first: most names have none of these lengths, and no two
    // of the names share one but `connection` and `keep-alive`.
    match name.len() {
        10 => &[0, 1],
        16 => &[2],
        18 => &[3],
        19 => &[4],
        2 => &[5],
        17 => &[6],
        7 => &[7],
        14 => &[8],
        _ => &[],
    }
}

/// Whether `name` (in any case) is a hop-by-hop field.
pub fn is_hop_by_hop(name: &str) -> bool {
    hop_by_hop_index(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_the_table_is_found_at_its_place() {
        for (i, (name, header)) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
            assert_eq!(hop_by_hop_index(header.as_str()), Some(i), "{name}");
            assert_eq!(hop_by_hop_index(&name.to_ascii_uppercase()), Some(i));
            assert_eq!(lower_case_index(name), Some(i), "{name}");
        }
    }

    #[test]
    fn the_hop_by_hop_table_knows_every_name_in_any_case() {
        for name in [
            "connection",
            "Keep-Alive",
            "proxy-connection",
            "Proxy-Authenticate",
            "proxy-authorization",
            "tE",
            "transfer-encoding",
            "UPGRADE",
            "http2-settings",
        ] {
            assert!(hop_by_hop_index(name).is_some(), "{name}");
        }
        for name in ["host", "cookie", "trailer", "connection-x", "keep"] {
            assert!(hop_by_hop_index(name).is_none(), "{name}");
        }
        for (text, name) in &HOP_BY_HOP {
            assert_eq!(name.as_str(), *text);
        }
        assert_eq!(HOP_BY_HOP[CONNECTION_INDEX].1, header::CONNECTION);
        assert_eq!(HOP_BY_HOP[TE_INDEX].1, header::TE);
    }

    #[test]
    fn usual_connection_values_and_listed_names_all_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Keep-Alive, close".parse().unwrap());
        h.append("connection", "X-Private, TE".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-fine", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-fine"));
    }

    #[test]
    fn only_a_connection_header_naming_other_fields_needs_the_full_parse() {
        for (value, nothing_more) in [
            ("keep-alive", true),
            ("Keep-Alive", true),
            ("close", true),
            (" close , keep-alive,", true),
            ("TE", true),
            ("keep-alive, x-private", false),
            ("x-private", false),
            ("closed", false),
        ] {
            let value = HeaderValue::from_static(value);
            assert_eq!(lists_nothing_more(&value), nothing_more, "{value:?}");
        }
    }

    #[test]
    fn connection_named_headers_go_first() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-keep-me-not".parse().unwrap());
        h.insert("x-keep-me-not", "1".parse().unwrap());
        h.insert("x-fine", "1".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("http2-settings", "AAA".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-fine"));
    }

    #[test]
    fn te_trailers_and_trailer_pass() {
        let mut h = HeaderMap::new();
        h.insert("connection", "te".parse().unwrap());
        h.insert("te", "gzip, trailers;q=1".parse().unwrap());
        h.insert("trailer", "grpc-status".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
        assert_eq!(h.get("trailer").unwrap(), "grpc-status");
        let mut h = HeaderMap::new();
        h.insert("te", "gzip".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert!(h.get("te").is_none());
    }
}
