//! `[[route]]`: path prefixes, hosts, upstreams and access.

use std::collections::HashSet;
use std::path::PathBuf;

use toml::Spanned;

use super::script_env::script_env;
use super::{Section, is_plain_path};
use crate::config::raw::RawRoute;
use crate::config::report::Reporter;
use crate::config::secrets::SecretSource;
use crate::config::{RouteConfig, Upstream};

/// Checks every `[[route]]`: no two for the same host and path; `env`
/// secrets are read from `secrets`.
pub(super) fn validate_routes(
    raw: Vec<Spanned<RawRoute>>,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<Vec<RouteConfig>> {
    let mut s = Section::new(r);
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for route in raw {
        let start = route.span().start;
        let route = route.into_inner();
        let path = route_path(&route.path, &mut s);
        let host = route.host.map(|host| route_host(host, &mut s));
        let upstream = s.parsed(&route.upstream, parse_upstream(route.upstream.get_ref()));
        if !seen.insert((host.clone(), path.clone())) {
            s.error_at(
                start,
                format!("route path {path:?} is configured twice for the same host"),
            );
        }
        let runs_scripts = upstream.as_ref().is_none_or(Upstream::runs_scripts);
        let env = script_env(route.env, runs_scripts, secrets, &mut s);
        if let Some(upstream) = upstream {
            routes.push(RouteConfig {
                path,
                host,
                upstream,
                access: route.access,
                env,
            });
        }
    }
    s.finish(|| routes)
}

/// A route's path, normalised the way request paths are.
fn route_path(raw: &Spanned<String>, s: &mut Section<'_, '_>) -> String {
    if !raw.get_ref().starts_with('/') || !is_plain_path(raw.get_ref()) {
        s.error(
            raw,
            "route path must start with / and hold no spaces, '?', '#' or control characters",
        );
    }
    // Requests are routed on their normalised path, so a route is too:
    // `/%7Euser/` is the route of `/~user/`.
    match crate::canonical::normalize_path(raw.get_ref()) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            s.error(raw, format!("route path cannot be normalised: {e}"));
            raw.get_ref().clone()
        }
    }
}

/// A route's host, lowercased: a name or `[IPv6]`, no scheme, port or path.
fn route_host(raw: Spanned<String>, s: &mut Section<'_, '_>) -> String {
    let lower = raw.get_ref().to_ascii_lowercase();
    if lower.is_empty() || lower.contains('/') || lower.contains(':') && !lower.starts_with('[') {
        s.error(
            &raw,
            "route host must be a host name without scheme, port or path",
        );
    }
    lower
}

/// Parses a route's `upstream`: `http://host:port`, `https://host:port`, or `cgi:DIR`.
pub fn parse_upstream(s: &str) -> Result<Upstream, String> {
    if let Some(dir) = s.strip_prefix("cgi:") {
        if dir.is_empty() {
            return Err("cgi: needs a directory, e.g. \"cgi:examples/legacy-site/cgi-bin\"".into());
        }
        return Ok(Upstream::Cgi(PathBuf::from(dir)));
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("upstream {s:?} is not a URL: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        _ => {
            return Err(format!(
                "upstream {s:?} must start with http://, https:// or cgi:"
            ));
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("upstream {s:?} has no host"))?;
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(format!(
            "upstream {s:?} must not have a path: requests keep their own path (write \"{}://{}\")",
            scheme, authority
        ));
    }
    if authority.as_str().contains('@') {
        return Err(format!("upstream {s:?} must not hold credentials"));
    }
    Ok(Upstream::Http { scheme, authority })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse() {
        assert!(matches!(
            parse_upstream("cgi:site/cgi-bin"),
            Ok(Upstream::Cgi(_))
        ));
        assert!(matches!(
            parse_upstream("http://127.0.0.1:8000"),
            Ok(Upstream::Http { .. })
        ));
        assert!(matches!(
            parse_upstream("https://example.org/"),
            Ok(Upstream::Http { .. })
        ));
        assert!(parse_upstream("http://127.0.0.1:8000/app").is_err());
        assert!(parse_upstream("ftp://x").is_err());
        assert!(parse_upstream("cgi:").is_err());
    }
}
