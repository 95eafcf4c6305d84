//! `Strict-Transport-Security` (RFC 6797): the value of `server.hsts`,
//! checked when the config is loaded, and put on every response that leaves
//! over TLS.
//!
//! The header is never sent over plain HTTP: browsers ignore it there
//! (RFC 6797 section 8.1), and a network attacker could strip or forge it.

use http::Response;
use http::header::{self, HeaderValue};

/// Checks `max-age=N[; includeSubDomains][; preload]` and returns it as a
/// header value, built once.
///
/// Directive names are matched without regard to case, as RFC 6797 says;
/// each may appear once, and `max-age` comes first so that the value reads
/// the way every example in the wild does.
pub fn parse(value: &str) -> Result<HeaderValue, String> {
    let form = "server.hsts must read \"max-age=SECONDS\", optionally followed by \"; includeSubDomains\" and \"; preload\"";
    let mut directives = value.split(';').map(str::trim);
    let max_age = directives
        .next()
        .and_then(|d| {
            let (name, seconds) = d.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| seconds.trim())
        })
        .filter(|s| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()));
    let Some(max_age) = max_age else {
        return Err(format!("{form}, not {value:?}"));
    };
    let mut include_subdomains = false;
    let mut preload = false;
    for directive in directives {
        let seen = if directive.eq_ignore_ascii_case("includeSubDomains") {
            &mut include_subdomains
        } else if directive.eq_ignore_ascii_case("preload") {
            &mut preload
        } else {
            return Err(format!("{form}; {directive:?} is not one of them"));
        };
        if std::mem::replace(seen, true) {
            return Err(format!("server.hsts names {directive:?} twice"));
        }
    }
    // Written out again in one spelling, whatever spacing the file used.
    let mut canonical = format!("max-age={max_age}");
    if include_subdomains {
        canonical.push_str("; includeSubDomains");
    }
    if preload {
        canonical.push_str("; preload");
    }
    HeaderValue::from_str(&canonical).map_err(|_| format!("{form}, not {value:?}"))
}

/// Puts the header on a response, replacing one the backend may have sent:
/// the gateway's policy is the site's policy, and a second copy would be
/// ignored by browsers anyway (RFC 6797 section 8.1).
pub fn apply<B>(resp: &mut Response<B>, value: &HeaderValue) {
    resp.headers_mut()
        .insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms_and_writes_them_one_way() {
        for (given, written) in [
            ("max-age=31536000", "max-age=31536000"),
            ("max-age=0", "max-age=0"),
            (
                "max-age=63072000; includeSubDomains; preload",
                "max-age=63072000; includeSubDomains; preload",
            ),
            (
                "Max-Age=600;includesubdomains",
                "max-age=600; includeSubDomains",
            ),
            ("max-age=600 ; preload", "max-age=600; preload"),
        ] {
            assert_eq!(parse(given).unwrap(), written, "{given}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "31536000",
            "max-age=",
            "max-age=-1",
            "max-age=\"600\"",
            "max-age=1y",
            "includeSubDomains; max-age=600",
            "max-age=600; includeSubDomains; includeSubDomains",
            "max-age=600; report-uri=x",
            "max-age=600;",
            "max-age=600\nX: y",
            "max-age=99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn replaces_the_backends_header() {
        let mut resp = Response::new(());
        resp.headers_mut().append(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=1"),
        );
        apply(&mut resp, &HeaderValue::from_static("max-age=600"));
        let all: Vec<_> = resp
            .headers()
            .get_all(header::STRICT_TRANSPORT_SECURITY)
            .iter()
            .collect();
        assert_eq!(all, ["max-age=600"]);
    }
}
