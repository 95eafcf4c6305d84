//! `[headers]`: the names of injected and control headers.

use http::HeaderName;

use crate::config::raw::RawHeaders;
use crate::config::report::Reporter;
use crate::config::{DEFAULT_HEADER_PREFIX, HeaderNames, HeadersConfig};

pub(super) fn validate_headers(raw: RawHeaders, r: &mut Reporter<'_>) -> Option<HeadersConfig> {
    let prefix = match raw.prefix {
        None => DEFAULT_HEADER_PREFIX.to_string(),
        Some(p) => {
            if p.get_ref().is_empty()
                || HeaderName::from_bytes(format!("{}User", p.get_ref()).as_bytes()).is_err()
            {
                r.span(
                    &p,
                    "headers.prefix must be a header name start like \"X-Session-\"",
                );
                return None;
            }
            p.into_inner()
        }
    };
    let name = |suffix: &str| HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes());
    let names = HeaderNames {
        user: name("User").ok()?,
        data: name("Data").ok()?,
        created: name("Created").ok()?,
        expires: name("Expires").ok()?,
        new: name("New").ok()?,
        id: name("Id").ok()?,
        set: name("Set").ok()?,
        delete: name("Delete").ok()?,
        login: name("Login").ok()?,
        logout: name("Logout").ok()?,
    };
    Some(HeadersConfig {
        match_prefix: normalize_header_name(&prefix),
        prefix,
        send_id: raw.send_id.unwrap_or(false),
        names,
    })
}

/// Lowercases a header name and treats `_` and `.` as `-`, the way a CGI
/// gateway or a framework may fold them into one variable.
pub fn normalize_header_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' | b'.' => '-',
            other => other.to_ascii_lowercase() as char,
        })
        .collect()
}
