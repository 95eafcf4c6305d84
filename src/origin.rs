//! Web origins (`scheme://host[:port]`), compared the way browsers compare
//! them: scheme and host without case, the scheme's default port filled in.
//!
//! A leaf: the config (`server.trusted_origins`) and the cross-site shield
//! ([`crate::csrf`]) both parse with it.

use std::fmt;

/// One origin, normalised: `https://App.Example.org:443` and
/// `https://app.example.org` are the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    https: bool,
    /// Lowercase; an IPv6 address keeps its brackets.
    host: String,
    port: u16,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Not `http://` or `https://`.
    #[error("an origin starts with http:// or https://")]
    Scheme,
    /// A path, query, fragment or user name after the host.
    #[error("an origin is scheme://host[:port], with no path, query or user name")]
    Extra,
    /// The host or port does not parse.
    #[error("an origin needs a host name or address, and a port from 1 to 65535 if any")]
    Authority,
}

impl Origin {
    /// Parses `scheme://host[:port]` exactly (what `Origin` headers and
    /// `server.trusted_origins` hold).
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        let (https, rest) = split_scheme(text)?;
        if rest.contains(['/', '?', '#', '@', '\\']) {
            return Err(OriginError::Extra);
        }
        Origin::from_authority(https, rest).ok_or(OriginError::Authority)
    }

    /// The origin of a full URL (a `Referer`): its scheme and authority,
    /// whatever follows them.
    pub fn of_url(url: &str) -> Result<Origin, OriginError> {
        let (https, rest) = split_scheme(url)?;
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(OriginError::Extra);
        }
        Origin::from_authority(https, authority).ok_or(OriginError::Authority)
    }

    /// The origin a request was sent to: its scheme (`https`) and its
    /// `Host` (or `:authority`).
    pub fn of_request(https: bool, host: &str) -> Option<Origin> {
        if host.contains(['/', '?', '#', '@', '\\']) {
            return None;
        }
        Origin::from_authority(https, host)
    }

    /// `host[:port]` under the scheme; `None` when it does not parse.
    fn from_authority(https: bool, authority: &str) -> Option<Origin> {
        let parsed: http::uri::Authority = authority.parse().ok()?;
        let host = parsed.host();
        if host.is_empty() {
            return None;
        }
        // `Authority` keeps a port it cannot read as a u16 to itself.
        let after_host = authority.rfind(']').map_or(authority, |i| &authority[i..]);
        let port = match after_host.rsplit_once(':') {
            Some((_, text)) => text.parse::<u16>().ok().filter(|p| *p != 0)?,
            None if https => 443,
            None => 80,
        };
        Some(Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// `http://` or `https://` (any case), and what follows.
fn split_scheme(text: &str) -> Result<(bool, &str), OriginError> {
    let (scheme, rest) = text.split_once("://").ok_or(OriginError::Scheme)?;
    if scheme.eq_ignore_ascii_case("https") {
        Ok((true, rest))
    } else if scheme.eq_ignore_ascii_case("http") {
        Ok((false, rest))
    } else {
        Err(OriginError::Scheme)
    }
}

impl fmt::Display for Origin {
    /// The origin as a browser serialises it: the default port left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            write!(f, "{scheme}://{}", self.host)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_default_ports_fold() {
        let a = Origin::parse("HTTPS://App.Example.ORG:443").unwrap();
        let b = Origin::parse("https://app.example.org").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "https://app.example.org");
        let c = Origin::parse("http://app.example.org:80").unwrap();
        assert_ne!(b, c, "the scheme counts");
        let d = Origin::parse("https://app.example.org:8443").unwrap();
        assert_ne!(b, d, "the port counts");
        assert_eq!(d.to_string(), "https://app.example.org:8443");
        let v6 = Origin::parse("http://[::1]:8080").unwrap();
        assert_eq!(v6.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn only_scheme_host_and_port_make_an_origin() {
        for bad in [
            "app.example.org",
            "ftp://app.example.org",
            "null",
            "",
            "https://",
            "https://:443",
            "https://app.example.org:",
            "https://app.example.org:0",
            "https://app.example.org:70000",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
        for extra in [
            "https://app.example.org/",
            "https://app.example.org/x",
            "https://app.example.org?x",
            "https://user@app.example.org",
        ] {
            assert_eq!(Origin::parse(extra), Err(OriginError::Extra), "{extra:?}");
        }
    }

    #[test]
    fn a_url_gives_its_origin() {
        let o = Origin::of_url("https://App.example.org/form?a=1#x").unwrap();
        assert_eq!(o, Origin::parse("https://app.example.org").unwrap());
        let bare = Origin::of_url("http://127.0.0.1:9000").unwrap();
        assert_eq!(bare.to_string(), "http://127.0.0.1:9000");
        assert!(Origin::of_url("https://evil@app.example.org/").is_err());
        assert!(Origin::of_url("/relative").is_err());
    }

    #[test]
    fn a_request_origin_takes_the_scheme_it_came_with() {
        let o = Origin::of_request(true, "App.example.org").unwrap();
        assert_eq!(o, Origin::parse("https://app.example.org:443").unwrap());
        let p = Origin::of_request(false, "app.example.org:8080").unwrap();
        assert_eq!(p.to_string(), "http://app.example.org:8080");
        assert!(Origin::of_request(false, "a/b").is_none());
    }
}
