//! Hop-by-hop header fields: they describe one connection and never travel
//! past a proxy, in either direction (RFC 9110 section 7.6.1).
//!
//! This is the one table of them; the CGI gateway's lists of what a script
//! may not see or send start from it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Removes hop-by-hop headers, including those named in `Connection`.
/// `TE: trailers` survives as just that: it tells the upstream that the
/// client takes trailers (gRPC needs it), and no other `TE` value does.
///
/// One pass over the names finds the hop-by-hop ones present; most requests
/// carry none, and most responses only `Connection`, so nothing else is
/// looked up or removed.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = lower_case_index(name.as_str()) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    let takes_trailers = present[TE_INDEX]
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    // Other names the `Connection` header lists. Its usual values, `close`
    // and `keep-alive`, add nothing to remove (a `Keep-Alive` header was
    // found above), so they cost neither a parse nor an allocation.
    let listed: Vec<HeaderName> = if present[CONNECTION_INDEX] && !lists_nothing_more(headers) {
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
    for ((_, name), _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    for name in listed {
        headers.remove(name);
    }
    if takes_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether every `Connection` header lists only `close` or hop-by-hop
/// names (`keep-alive`, in practice): then it names nothing else to
/// remove. A plain scan of the bytes, for the usual values; anything
/// unusual is left to the full parse.
fn lists_nothing_more(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().all(|v| {
        v.as_bytes().split(|&b| b == b',').all(|token| {
            let token = token.trim_ascii();
            token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
                || std::str::from_utf8(token).is_ok_and(|t| hop_by_hop_index(t).is_some())
        })
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
            let mut h = HeaderMap::new();
            h.insert("connection", value.parse().unwrap());
            assert_eq!(lists_nothing_more(&h), nothing_more, "{value}");
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
