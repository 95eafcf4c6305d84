//! `[[route]]`: path prefixes, hosts, upstreams and access.

use std::path::PathBuf;

use toml::Spanned;

use super::is_plain_path;
use crate::config::raw::RawRoute;
use crate::config::report::Reporter;
use crate::config::{RouteConfig, Upstream};

pub(super) fn validate_routes(
    raw: Vec<Spanned<RawRoute>>,
    r: &mut Reporter<'_>,
) -> Option<Vec<RouteConfig>> {
    let mut ok = true;
    let mut routes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for route in raw {
        let span_start = route.span().start;
        let route = route.into_inner();
        if !route.path.get_ref().starts_with('/') || !is_plain_path(route.path.get_ref()) {
            r.span(
                &route.path,
                "route path must start with / and hold no spaces, '?', '#' or control characters",
            );
            ok = false;
        }
        // Requests are routed on their normalised path, so a route is too:
        // `/%7Euser/` is the route of `/~user/`.
        let path = match crate::canonical::normalize_path(route.path.get_ref()) {
            Ok(p) => p.into_owned(),
            Err(e) => {
                r.span(&route.path, format!("route path cannot be normalised: {e}"));
                ok = false;
                route.path.get_ref().clone()
            }
        };
        let host = route.host.map(|h| {
            let lower = h.get_ref().to_ascii_lowercase();
            if lower.is_empty()
                || lower.contains('/')
                || lower.contains(':') && !lower.starts_with('[')
            {
                r.span(
                    &h,
                    "route host must be a host name without scheme, port or path",
                );
                ok = false;
            }
            lower
        });
        let upstream = match parse_upstream(route.upstream.get_ref()) {
            Ok(u) => Some(u),
            Err(e) => {
                r.span(&route.upstream, e);
                ok = false;
                None
            }
        };
        if !seen.insert((host.clone(), path.clone())) {
            r.at(
                span_start,
                format!("route path {path:?} is configured twice for the same host"),
            );
            ok = false;
        }
        if let Some(upstream) = upstream {
            routes.push(RouteConfig {
                path,
                host,
                upstream,
                access: route.access,
            });
        }
    }
    ok.then_some(routes)
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
