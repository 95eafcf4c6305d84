//! `[headers]`: the names of injected and control headers.

use http::HeaderName;

use super::Section;
use crate::config::raw::RawHeaders;
use crate::config::report::Reporter;
use crate::config::{DEFAULT_HEADER_PREFIX, HeaderNames, HeadersConfig};

/// Checks `[headers]` and builds every header name its prefix makes.
pub(super) fn validate_headers(raw: RawHeaders, r: &mut Reporter<'_>) -> Option<HeadersConfig> {
    let mut s = Section::new(r);
    let prefix = raw.prefix.map_or_else(
        || DEFAULT_HEADER_PREFIX.to_string(),
        |prefix| {
            s.checked(
                prefix,
                |prefix| is_header_prefix(prefix),
                "headers.prefix must be a header name start like \"X-Session-\"",
            )
        },
    );
    let names = header_names(&prefix)?;
    s.finish(|| HeadersConfig {
        match_prefix: normalize_header_name(&prefix),
        prefix,
        send_id: raw.send_id.unwrap_or(false),
        names,
    })
}

/// Whether `prefix` starts a header name.
fn is_header_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && HeaderName::from_bytes(format!("{prefix}User").as_bytes()).is_ok()
}

/// Every header name `prefix` makes; `None` when they are not header names.
fn header_names(prefix: &str) -> Option<HeaderNames> {
    let name = |suffix: &str| HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()).ok();
    Some(HeaderNames {
        user: name("User")?,
        data: name("Data")?,
        created: name("Created")?,
        expires: name("Expires")?,
        new: name("New")?,
        id: name("Id")?,
        set: name("Set")?,
        delete: name("Delete")?,
        incr: name("Incr")?,
        login: name("Login")?,
        logout: name("Logout")?,
        groups: name("Groups")?,
        expired: name("Expired")?,
        login_failed: name("Login-Failed")?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_fold_underscores_and_dots() {
        assert_eq!(normalize_header_name("X_Session.User"), "x-session-user");
    }
}
