//! `[[route]]`: path prefixes, hosts, upstreams and access.

use std::collections::HashSet;
use std::path::PathBuf;

use toml::Spanned;

use super::script_env::script_env;
use super::{Section, is_plain_path};
use crate::config::raw::RawRoute;
use crate::config::report::Reporter;
use crate::config::secrets::SecretSource;
use crate::config::{
    Access, Allowed, CsrfMode, DEFAULT_FASTCGI_INDEX, FastCgiRoute, FastCgiServer, LoginSource,
    RouteConfig, Upstream,
};

/// Checks every `[[route]]`: no two for the same host and path, `basic_auth`
/// only where a users file can check it (`login_source` is `[login] source`
/// as written, or its default); `env` secrets are read from `secrets`.
pub(super) fn validate_routes(
    raw: Vec<Spanned<RawRoute>>,
    login_source: LoginSource,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<Vec<RouteConfig>> {
    let mut s = Section::new(r);
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for (i, route) in raw.into_iter().enumerate() {
        let start = route.span().start;
        let route = route.into_inner();
        let path = route_path(&route.path, &mut s);
        let host = route.host.map(|host| route_host(host, &mut s));
        let upstream = s.parsed(&route.upstream, parse_upstream(route.upstream.get_ref()));
        let access = *route.access.get_ref();
        let basic_auth = basic_auth(route.basic_auth, access, login_source, &mut s);
        let inject_expiry_warning = expiry_warning(route.inject_expiry_warning, access, &mut s);
        let csrf = route
            .csrf
            .map_or(CsrfMode::default_for(access), |c| *c.get_ref());
        s.place(format!("route.{i}"), &route.path);
        s.place(format!("route.{i}.upstream"), &route.upstream);
        if route.access.span().end > 0 {
            s.place(format!("route.{i}.access"), &route.access);
        }
        if let Some(allow) = &route.allow {
            s.place(format!("route.{i}.allow"), allow);
        }
        // A directory the route serves from: the proxy would start, then
        // answer every request on the route with an error.
        match &upstream {
            Some(Upstream::Cgi(dir)) => s.names_dir(&route.upstream, dir, "CGI directory"),
            Some(Upstream::Static(dir)) => s.names_dir(&route.upstream, dir, "static directory"),
            _ => {}
        }
        if !seen.insert((host.clone(), path.clone())) {
            s.error_at(
                start,
                format!("route path {path:?} is configured twice for the same host"),
            );
        }
        let allow = route.allow.map(|list| allow_list(list, access, &mut s));
        let runs_scripts = upstream.as_ref().is_none_or(Upstream::runs_scripts);
        let env = script_env(route.env, runs_scripts, secrets, &mut s);
        let upstream = match upstream {
            Some(Upstream::FastCgi(fastcgi)) => {
                script_root(fastcgi, route.root, route.index, start, &mut s)
            }
            other => {
                for key in [&route.root, &route.index].into_iter().flatten() {
                    if other.is_some() {
                        s.error(key, "root and index are for fastcgi routes only");
                    }
                }
                other
            }
        };
        if let Some(upstream) = upstream {
            routes.push(RouteConfig {
                path,
                host,
                upstream,
                access,
                basic_auth,
                csrf,
                allow,
                env,
                inject_expiry_warning,
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

/// A route's `allow`: `user:NAME` and `group:NAME` entries, on a `login`
/// route, admitting somebody.
fn allow_list(
    list: Spanned<Vec<Spanned<String>>>,
    access: Access,
    s: &mut Section<'_, '_>,
) -> Vec<Allowed> {
    if access != Access::Login {
        s.error(
            &list,
            "allow is for access = \"login\" routes: this route admits visitors who are not signed in",
        );
    }
    if list.get_ref().is_empty() {
        s.error(
            &list,
            "allow = [] admits nobody; leave allow out to admit every signed-in user",
        );
    }
    let mut allowed = Vec::new();
    for entry in list.into_inner() {
        match parse_allowed(entry.get_ref()) {
            Ok(a) => allowed.push(a),
            Err(e) => s.error(&entry, e),
        }
    }
    allowed
}

/// One `allow` entry.
fn parse_allowed(entry: &str) -> Result<Allowed, String> {
    if let Some(user) = entry.strip_prefix("user:") {
        if !crate::session::user::valid_user(user) {
            return Err(format!("allow entry {entry:?} names no valid user"));
        }
        return Ok(Allowed::User(user.to_string()));
    }
    if let Some(group) = entry.strip_prefix("group:") {
        crate::login::groups::check_group_name(group)
            .map_err(|e| format!("allow entry {entry:?}: {e}"))?;
        return Ok(Allowed::Group(group.to_string()));
    }
    Err(format!(
        "allow entry {entry:?} must start with \"user:\" or \"group:\""
    ))
}

/// `basic_auth`: only on a `login` route, and only with a users file to
/// check the credentials against.
fn basic_auth(
    raw: Option<Spanned<bool>>,
    access: Access,
    login_source: LoginSource,
    s: &mut Section<'_, '_>,
) -> bool {
    let Some(raw) = raw else {
        return false;
    };
    if !*raw.get_ref() {
        return false;
    }
    if access != Access::Login {
        s.error(
            &raw,
            format!(
                "basic_auth needs access = \"login\" (this route is {:?})",
                access.as_str()
            ),
        );
    } else if login_source == LoginSource::Backend {
        s.error(
            &raw,
            "basic_auth checks the users file, and login.source = \"backend\" has none",
        );
    }
    true
}

/// `inject_expiry_warning`: only where a session can be watched; a public
/// route's pages would poll for a session they do not need.
fn expiry_warning(raw: Option<Spanned<bool>>, access: Access, s: &mut Section<'_, '_>) -> bool {
    let Some(raw) = raw else {
        return false;
    };
    if *raw.get_ref() && access == Access::Public {
        s.error(
            &raw,
            "inject_expiry_warning needs access = \"session\" or \"login\": a public route's visitors have no session to warn about",
        );
    }
    *raw.get_ref()
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

/// A `fastcgi` route's `root` (required: an absolute path) and `index` (a
/// file name); `start` is where the route begins, for a missing `root`.
fn script_root(
    mut fastcgi: FastCgiRoute,
    root: Option<Spanned<String>>,
    index: Option<Spanned<String>>,
    start: usize,
    s: &mut Section<'_, '_>,
) -> Option<Upstream> {
    let Some(root) = root else {
        s.error_at(
            start,
            "a fastcgi route needs root: the document root as the FastCGI server sees it, e.g. root = \"/var/www/site\"",
        );
        return None;
    };
    if !root.get_ref().starts_with('/') || root.get_ref().contains('\0') {
        s.error(&root, "root must be an absolute path");
        return None;
    }
    fastcgi.root = root.get_ref().trim_end_matches('/').to_owned();
    s.names_remote_dir(&root, "FastCGI root");
    if let Some(index) = index {
        let name = index.get_ref();
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            s.error(
                &index,
                "index must be a file name, e.g. index = \"index.php\"",
            );
            return None;
        }
        fastcgi.index = index.into_inner();
    }
    Some(Upstream::FastCgi(fastcgi))
}

/// Parses a route's `upstream`: `http://host:port`, `https://host:port`,
/// `cgi:DIR`, `static:DIR`, `fastcgi://host:port` or `fastcgi:unix:PATH`
/// (whose `root` and `index` come from the route's keys).
pub fn parse_upstream(s: &str) -> Result<Upstream, String> {
    if let Some(dir) = s.strip_prefix("cgi:") {
        if dir.is_empty() {
            return Err("cgi: needs a directory, e.g. \"cgi:examples/legacy-site/cgi-bin\"".into());
        }
        return Ok(Upstream::Cgi(PathBuf::from(dir)));
    }
    if let Some(dir) = s.strip_prefix("static:") {
        if dir.is_empty() {
            return Err(
                "static: needs a directory, e.g. \"static:examples/legacy-site/htdocs\"".into(),
            );
        }
        return Ok(Upstream::Static(PathBuf::from(dir)));
    }
    if s.starts_with("fastcgi:") {
        return parse_fastcgi(s).map(|server| {
            Upstream::FastCgi(FastCgiRoute {
                server,
                root: String::new(),
                index: DEFAULT_FASTCGI_INDEX.to_owned(),
            })
        });
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("upstream {s:?} is not a URL: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        _ => {
            return Err(format!(
                "upstream {s:?} must start with http://, https://, cgi:, static: or fastcgi:"
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
    check_port(s, &authority)?;
    Ok(Upstream::Http { scheme, authority })
}

/// `fastcgi://host:port` or `fastcgi:unix:PATH`.
fn parse_fastcgi(s: &str) -> Result<FastCgiServer, String> {
    if let Some(path) = s.strip_prefix("fastcgi:unix:") {
        if path.is_empty() || path.contains('\0') {
            return Err(
                "fastcgi:unix: needs a socket path, e.g. \"fastcgi:unix:/run/php/php-fpm.sock\""
                    .into(),
            );
        }
        return Ok(FastCgiServer::Unix(PathBuf::from(path)));
    }
    let wrong = || {
        format!(
            "upstream {s:?}: write fastcgi://HOST:PORT (e.g. fastcgi://127.0.0.1:9000) or fastcgi:unix:PATH"
        )
    };
    let authority = s.strip_prefix("fastcgi://").ok_or_else(wrong)?;
    let authority: http::uri::Authority = authority.parse().map_err(|_| wrong())?;
    if authority.as_str().contains('@') {
        return Err(wrong());
    }
    let port = authority.port_u16().filter(|&p| p != 0).ok_or_else(wrong)?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok(FastCgiServer::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// A port written in an upstream must be one a connection can reach:
/// `http://127.0.0.1:99999` parses as a URL, and would make every request
/// on the route a 502.
pub fn check_port(upstream: &str, authority: &http::uri::Authority) -> Result<(), String> {
    let written = authority.as_str();
    let Some((_, port)) = written.rsplit_once(':') else {
        return Ok(());
    };
    if written.ends_with(']') {
        // `[::1]`: an IPv6 address without a port.
        return Ok(());
    }
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ if port.is_empty() => Err(format!(
            "upstream {upstream:?} has no port after ':'; write one (1 to 65535) or leave the ':' out"
        )),
        _ => Err(format!(
            "upstream {upstream:?}: port {port} is out of range; a port is 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_defaults_by_access_and_may_be_set() {
        use crate::config::Config;
        use crate::config::testing::KEY;
        let text = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\
             [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n\
             [[route]]\npath = \"/s/\"\nupstream = \"http://127.0.0.1:9000\"\naccess = \"session\"\n\
             [[route]]\npath = \"/l/\"\nupstream = \"http://127.0.0.1:9000\"\naccess = \"login\"\n\
             [[route]]\npath = \"/p/\"\nupstream = \"http://127.0.0.1:9000\"\ncsrf = \"origin\"\n\
             [[route]]\npath = \"/api/\"\nupstream = \"http://127.0.0.1:9000\"\naccess = \"login\"\ncsrf = \"off\"\n"
        );
        let c: Config = text.parse().unwrap();
        let modes: Vec<CsrfMode> = c.routes.iter().map(|r| r.csrf).collect();
        use CsrfMode::{Off, Origin};
        assert_eq!(modes, [Off, Origin, Origin, Origin, Off]);
        let summary = c.summary();
        let on = "cross-site shield: on (state-changing requests from other origins refused)\n";
        assert_eq!(summary.matches(on).count(), 3, "{summary}");
        let bad = text.replace("csrf = \"off\"", "csrf = \"token\"");
        assert!(bad.parse::<Config>().is_err());
    }

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
        assert_eq!(
            parse_upstream("static:site/htdocs"),
            Ok(Upstream::Static(PathBuf::from("site/htdocs")))
        );
        assert!(parse_upstream("static:").is_err());
    }

    #[test]
    fn upstream_ports_must_be_reachable() {
        for ok in [
            "http://127.0.0.1:1",
            "http://127.0.0.1:65535",
            "http://[::1]:8080",
            "http://[::1]",
            "https://example.org",
        ] {
            assert!(parse_upstream(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("http://127.0.0.1:99999", "port 99999 is out of range"),
            ("http://127.0.0.1:0", "port 0 is out of range"),
            ("https://[::1]:70000", "port 70000 is out of range"),
            ("http://example.org:", "no port after ':'"),
        ] {
            let e = parse_upstream(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn config_with(
        route: &str,
        login: &str,
    ) -> Result<crate::config::Config, Vec<(usize, String)>> {
        let text = format!(
            "[session]\nsecret_keys = [\"{}\"]\n{login}\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n{route}\n",
            crate::config::testing::KEY
        );
        text.parse::<crate::config::Config>()
            .map_err(|e| e.0.into_iter().map(|e| (e.line, e.message)).collect())
    }

    #[test]
    fn basic_auth_only_on_login_routes_with_a_users_file() {
        let ok = config_with("access = \"login\"\nbasic_auth = true", "").unwrap();
        assert!(ok.routes[0].basic_auth);
        assert_eq!(ok.login.basic_realm, "sessiongate");
        let off = config_with("access = \"login\"\nbasic_auth = false", "").unwrap();
        assert!(!off.routes[0].basic_auth);
        let errs = config_with("access = \"public\"\nbasic_auth = true", "").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, 8, "{errs:?}");
        assert!(
            errs[0].1.contains("basic_auth needs access = \"login\""),
            "{errs:?}"
        );
        let errs = config_with("basic_auth = true", "").unwrap_err();
        assert!(errs[0].1.contains("(this route is \"public\")"), "{errs:?}");
        let backend = "[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n";
        let errs = config_with("access = \"login\"\nbasic_auth = true", backend).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].1.contains("login.source = \"backend\""), "{errs:?}");
    }

    #[test]
    fn the_realm_must_go_between_quotes_as_it_stands() {
        let route = "access = \"login\"\nbasic_auth = true";
        let ok = config_with(route, "[login]\nbasic_realm = \"Legacy scripts (ops)\"\n").unwrap();
        assert_eq!(ok.login.basic_realm, "Legacy scripts (ops)");
        for bad in [
            r#""a\"b""#,
            r#""a\\b""#,
            r#""tab\there""#,
            r#""""#,
            r#""café""#,
        ] {
            let errs = config_with(route, &format!("[login]\nbasic_realm = {bad}\n")).unwrap_err();
            assert!(errs[0].1.contains("login.basic_realm"), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn the_kept_form_has_its_defaults_and_bounds() {
        let route = "access = \"login\"";
        let ok = config_with(route, "").unwrap();
        assert_eq!(ok.login.replay_max_bytes, 1 << 20);
        assert_eq!(ok.login.replay_ttl, std::time::Duration::from_secs(600));
        let set = config_with(
            route,
            "[login]\nreplay_max_bytes = 0\nreplay_ttl = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(set.login.replay_max_bytes, 0);
        assert_eq!(set.login.replay_ttl, std::time::Duration::from_secs(120));
        for (bad, key) in [
            ("replay_max_bytes = 67108865", "login.replay_max_bytes"),
            ("replay_max_bytes = -1", "replay_max_bytes"),
            ("replay_ttl = \"0s\"", "replay_ttl"),
        ] {
            let errs = config_with(route, &format!("[login]\n{bad}\n")).unwrap_err();
            assert!(errs[0].1.contains(key), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn fastcgi_upstreams_parse() {
        let server = |s: &str| match parse_upstream(s) {
            Ok(Upstream::FastCgi(route)) => Ok(route.server),
            Ok(other) => panic!("{s}: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            server("fastcgi://127.0.0.1:9000"),
            Ok(FastCgiServer::Tcp {
                host: "127.0.0.1".into(),
                port: 9000
            })
        );
        assert_eq!(
            server("fastcgi://[::1]:9000"),
            Ok(FastCgiServer::Tcp {
                host: "::1".into(),
                port: 9000
            })
        );
        assert_eq!(
            server("fastcgi:unix:/run/php/php-fpm.sock"),
            Ok(FastCgiServer::Unix("/run/php/php-fpm.sock".into()))
        );
        for bad in [
            "fastcgi://127.0.0.1",
            "fastcgi://127.0.0.1:0",
            "fastcgi://127.0.0.1:9000/x",
            "fastcgi://u@h:9000",
            "fastcgi:unix:",
            "fastcgi:127.0.0.1:9000",
        ] {
            assert!(server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fastcgi_routes_need_a_root_and_only_they_take_one() {
        use crate::config::testing::KEY;
        let parse = |route: &str| {
            format!("[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\n{route}\n")
                .parse::<crate::config::Config>()
        };
        let config = parse("upstream = \"fastcgi://127.0.0.1:9000\"\nroot = \"/var/www/site/\"")
            .expect("valid");
        let Upstream::FastCgi(route) = &config.routes[0].upstream else {
            panic!("{:?}", config.routes[0].upstream);
        };
        assert_eq!(
            (route.root.as_str(), route.index.as_str()),
            ("/var/www/site", "index.php")
        );
        for (route, line, says) in [
            ("upstream = \"fastcgi://127.0.0.1:9000\"", 4, "needs root"),
            (
                "upstream = \"fastcgi://127.0.0.1:9000\"\nroot = \"www\"",
                7,
                "absolute",
            ),
            (
                "upstream = \"fastcgi://127.0.0.1:9000\"\nroot = \"/w\"\nindex = \"a/b.php\"",
                8,
                "file name",
            ),
            (
                "upstream = \"cgi:/srv\"\nroot = \"/w\"",
                7,
                "fastcgi routes only",
            ),
            (
                "upstream = \"http://127.0.0.1:1\"\nindex = \"i.php\"",
                7,
                "fastcgi routes only",
            ),
        ] {
            let errors = parse(route).expect_err(route).0;
            assert_eq!(errors.len(), 1, "{route}: {errors:?}");
            assert_eq!(errors[0].line, line, "{route}: {errors:?}");
            assert!(errors[0].message.contains(says), "{route}: {errors:?}");
        }
    }
}
