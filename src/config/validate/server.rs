//! `[server]`: listeners, TLS, limits and timeouts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderValue;
use toml::Spanned;

use super::Section;
use crate::config::raw::{Dur, Listen, RawServer, RawTls};
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_CGI_MAX_CONCURRENT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_REQUEST_HEADER_TIMEOUT, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_UPSTREAM_MAX_CONNECTIONS, DEFAULT_UPSTREAM_TIMEOUT, MIN_MAX_HEADER_BYTES, ServerConfig,
    TlsConfig,
};
use crate::origin::Origin;

/// The most `workers` a config may ask for.
const MAX_WORKERS: usize = 1024;

/// Checks `[server]`.
pub(super) fn validate_server(raw: RawServer, r: &mut Reporter<'_>) -> Option<ServerConfig> {
    let mut s = Section::new(r);
    let listen = listen(raw.listen, &mut s);
    let tls = raw.tls.map(|t| tls_files(t, &mut s));
    let redirect_http = redirect_http(raw.redirect_http.as_ref(), tls.is_some(), &listen, &mut s);
    let upstream_ca = raw.upstream_ca.and_then(|v| upstream_ca(v, &mut s));
    let max_header_bytes = s
        .at_least(
            raw.max_header_bytes,
            MIN_MAX_HEADER_BYTES,
            "max_header_bytes",
        )
        .unwrap_or(DEFAULT_MAX_HEADER_BYTES);
    let upstream_timeout = upstream_timeout(raw.upstream_timeout, &mut s);
    let cgi_max_concurrent = s
        .at_least(raw.cgi_max_concurrent, 1, "cgi_max_concurrent")
        .unwrap_or(DEFAULT_CGI_MAX_CONCURRENT);
    let workers = raw.workers.and_then(|v| workers(v, &mut s));
    let request_header_timeout = s.seconds(
        raw.request_header_timeout,
        DEFAULT_REQUEST_HEADER_TIMEOUT,
        "request_header_timeout",
    );
    let keepalive_timeout = s.seconds(
        raw.keepalive_timeout,
        DEFAULT_KEEPALIVE_TIMEOUT,
        "keepalive_timeout",
    );
    let max_connections = raw.max_connections.and_then(|v| max_connections(v, &mut s));
    let upstream_max_connections = s
        .at_least(raw.upstream_max_connections, 1, "upstream_max_connections")
        .unwrap_or(DEFAULT_UPSTREAM_MAX_CONNECTIONS);
    let hsts = raw.hsts.and_then(|v| hsts(v, tls.is_some(), &mut s));
    let trusted_origins = trusted_origins(&raw.trusted_origins, &mut s);
    s.finish(|| ServerConfig {
        listen,
        tls,
        redirect_http,
        upstream_ca,
        trusted_proxies: raw.trusted_proxies.iter().map(|c| c.get_ref().0).collect(),
        trusted_origins,
        max_header_bytes,
        upstream_timeout,
        shutdown_grace: raw.shutdown_grace.map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0),
        cgi_max_concurrent,
        workers,
        thread_per_core: raw.thread_per_core.unwrap_or(true),
        request_header_timeout,
        keepalive_timeout,
        max_connections,
        upstream_max_connections,
        hsts,
    })
}

/// `trusted_origins`: `scheme://host[:port]` each, normalised (case,
/// default ports), without repeats.
fn trusted_origins(raw: &[Spanned<String>], s: &mut Section<'_, '_>) -> Vec<Origin> {
    let mut origins: Vec<Origin> = Vec::new();
    for text in raw {
        match Origin::parse(text.get_ref()) {
            Ok(o) if origins.contains(&o) => {
                s.error(text, format!("trusted origin {o} is listed twice"));
            }
            Ok(o) => origins.push(o),
            Err(e) => s.error(text, format!("trusted_origins: {:?}: {e}", text.get_ref())),
        }
    }
    origins
}

/// `listen`: at least one address; [`DEFAULT_LISTEN`] when absent.
fn listen(raw: Option<Spanned<Listen>>, s: &mut Section<'_, '_>) -> Vec<SocketAddr> {
    let strings =
        raw.unwrap_or_else(|| Spanned::new(0..0, Listen(vec![DEFAULT_LISTEN.to_string()])));
    let mut listen = Vec::new();
    let mut all_parsed = true;
    for text in &strings.get_ref().0 {
        match parse_socket_addr(text) {
            Ok(addr) => listen.push(addr),
            Err(e) => {
                s.error(&strings, e);
                all_parsed = false;
            }
        }
    }
    if listen.is_empty() && all_parsed {
        s.error_at(0, "server.listen must name at least one address");
    }
    listen
}

/// `tls`: the certificate and key files, read when they are loaded (and by
/// `sessiongate check`).
fn tls_files(raw: Spanned<RawTls>, s: &mut Section<'_, '_>) -> TlsConfig {
    s.place("server.tls", &raw);
    let raw = raw.into_inner();
    s.names_file(&raw.cert, "server.tls cert: the certificate file");
    s.names_file(&raw.key, "server.tls key: the private key file");
    TlsConfig {
        cert: PathBuf::from(raw.cert.into_inner()),
        key: PathBuf::from(raw.key.into_inner()),
    }
}

/// `redirect_http`: plain-HTTP addresses that redirect to HTTPS, so only
/// with TLS, and none of them a `listen` address.
fn redirect_http(
    raw: Option<&Spanned<Listen>>,
    has_tls: bool,
    listen: &[SocketAddr],
    s: &mut Section<'_, '_>,
) -> Vec<SocketAddr> {
    let Some(addrs) = raw else {
        return Vec::new();
    };
    if !has_tls && !s.was_removed("server.tls") {
        s.error(
            addrs,
            "server.redirect_http redirects to HTTPS, so it needs server.tls = { cert = \"...\", key = \"...\" }",
        );
    }
    let mut redirect_http = Vec::new();
    for text in &addrs.get_ref().0 {
        match parse_socket_addr(text) {
            Ok(addr) if listen.contains(&addr) => s.error(
                addrs,
                format!("server.redirect_http {text:?} is also in server.listen"),
            ),
            Ok(addr) => redirect_http.push(addr),
            Err(e) => s.error(addrs, e),
        }
    }
    redirect_http
}

/// `upstream_ca`: a PEM file, when given.
fn upstream_ca(raw: Spanned<String>, s: &mut Section<'_, '_>) -> Option<PathBuf> {
    if raw.get_ref().trim().is_empty() {
        s.error(&raw, "server.upstream_ca must name a PEM file");
        return None;
    }
    s.place("server.upstream_ca", &raw);
    s.names_file(&raw, "server.upstream_ca: the CA file");
    Some(PathBuf::from(raw.into_inner()))
}

/// `upstream_timeout`: any duration above zero.
fn upstream_timeout(raw: Option<Spanned<Dur>>, s: &mut Section<'_, '_>) -> Duration {
    match raw {
        None => DEFAULT_UPSTREAM_TIMEOUT,
        Some(v) if v.get_ref().0.is_zero() => {
            s.error(&v, "upstream_timeout must be greater than zero");
            Duration::ZERO
        }
        Some(v) => v.into_inner().0,
    }
}

/// `workers`: 1 to [`MAX_WORKERS`] runtime threads.
fn workers(raw: Spanned<usize>, s: &mut Section<'_, '_>) -> Option<usize> {
    if !(1..=MAX_WORKERS).contains(raw.get_ref()) {
        s.error(
            &raw,
            format!(
                "workers must be between 1 and {MAX_WORKERS} (leave it out for one per CPU core)"
            ),
        );
        return None;
    }
    Some(raw.into_inner())
}

/// `max_connections`: when absent, the proxy sizes it at start.
fn max_connections(raw: Spanned<usize>, s: &mut Section<'_, '_>) -> Option<usize> {
    if *raw.get_ref() == 0 {
        s.error(
            &raw,
            "max_connections must be at least 1 (leave it out to size it from the file descriptor limit)",
        );
        return None;
    }
    Some(raw.into_inner())
}

/// `hsts`: a valid `Strict-Transport-Security` value, only ever sent over TLS.
fn hsts(raw: Spanned<String>, has_tls: bool, s: &mut Section<'_, '_>) -> Option<HeaderValue> {
    if !has_tls && !s.was_removed("server.tls") {
        s.error(
            &raw,
            "server.hsts is only ever sent over TLS, so it needs server.tls = { cert = \"...\", key = \"...\" }",
        );
        return None;
    }
    s.parsed(&raw, crate::hsts::parse(raw.get_ref()))
}

/// Parses `host:port`, accepting `localhost` and `[::1]:port`.
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    if let Some(port) = s.strip_prefix(':') {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        }
    }
    if let Some((_, port)) = s.rsplit_once(':')
        && port.len() > 1
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "{s:?}: port {port} is out of range; a port is 0 to 65535 (0 lets the system choose)"
        ));
    }
    Err(format!(
        "{s:?} is not a listen address; write it as \"IP:PORT\", e.g. \"0.0.0.0:8080\" or \"[::]:8080\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::testing::minimal;

    #[test]
    fn trusted_origins_are_normalised_and_checked() {
        let text = minimal().replace(
            "[session]",
            "[server]\ntrusted_origins = [\"HTTPS://App.Example.org:443\", \"http://127.0.0.1:8080\"]\n\n[session]",
        );
        let c: Config = text.parse().unwrap();
        let shown: Vec<String> = c
            .server
            .trusted_origins
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(shown, ["https://app.example.org", "http://127.0.0.1:8080"]);
        let summary = c.summary();
        assert!(
            summary.contains("trusted origins: https://app.example.org, http://127.0.0.1:8080\n"),
            "{summary}"
        );
        assert!(summary.contains("cross-site shield: off\n"), "{summary}");
        for (bad, says) in [
            ("\"https://app.example.org/path\"", "no path"),
            ("\"app.example.org\"", "http:// or https://"),
            ("\"https://a.example:99999\"", "port"),
            (
                "\"https://a.example\", \"https://A.example:443\"",
                "listed twice",
            ),
        ] {
            let text = minimal().replace(
                "[session]",
                &format!("[server]\ntrusted_origins = [{bad}]\n\n[session]"),
            );
            let errs = text.parse::<Config>().unwrap_err().0;
            assert!(
                errs.iter().any(|e| e.message.contains(says)),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn redirect_http_needs_tls() {
        let text = minimal().replace(
            "[session]",
            "[server]\nredirect_http = \"127.0.0.1:8081\"\n\n[session]",
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(
            errs.iter().any(|e| e.message.contains("needs server.tls")),
            "{errs:?}"
        );
        let text = minimal().replace(
            "[session]",
            "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\nredirect_http = [\"127.0.0.1:8081\"]\nupstream_ca = \"ca.pem\"\n\n[session]",
        );
        let c: Config = text.parse().unwrap();
        assert_eq!(
            c.server.redirect_http,
            vec!["127.0.0.1:8081".parse().unwrap()]
        );
        assert_eq!(c.server.upstream_ca, Some(PathBuf::from("ca.pem")));
        assert!(c.summary().contains("redirect: http://127.0.0.1:8081"));
    }

    #[test]
    fn connection_keys_have_spec_defaults() {
        let c: Config = minimal().parse().unwrap();
        assert_eq!(c.server.request_header_timeout, Duration::from_secs(30));
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(c.server.max_connections, None);
        assert_eq!(c.server.upstream_max_connections, 256);
        assert!(c.server.hsts.is_none());
        let summary = c.summary();
        assert!(summary.contains("from the open files limit"), "{summary}");
        assert!(summary.contains("at most 256 per upstream"), "{summary}");
        assert!(!summary.contains("hsts"), "{summary}");
    }

    #[test]
    fn connection_keys_are_read() {
        let text = format!(
            "[server]\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\nrequest_header_timeout = \"5s\"\nkeepalive_timeout = \"2m\"\nmax_connections = 500\nupstream_max_connections = 8\nhsts = \"max-age=31536000; includeSubDomains\"\n\n{}",
            minimal()
        );
        let c: Config = text.parse().unwrap();
        assert_eq!(c.server.request_header_timeout, Duration::from_secs(5));
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(120));
        assert_eq!(c.server.max_connections, Some(500));
        assert_eq!(c.server.upstream_max_connections, 8);
        assert_eq!(
            c.server.hsts.as_ref().map(|v| v.as_bytes()),
            Some(&b"max-age=31536000; includeSubDomains"[..])
        );
        let summary = c.summary();
        assert!(summary.contains("connections: at most 500"), "{summary}");
        assert!(
            summary.contains("hsts: max-age=31536000; includeSubDomains"),
            "{summary}"
        );
    }

    #[test]
    fn bad_connection_keys_name_their_position() {
        let text = format!(
            "[server]\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\nrequest_header_timeout = \"0s\"\nkeepalive_timeout = \"500ms\"\nmax_connections = 0\nupstream_max_connections = 0\nhsts = \"max-age=1y\"\n\n{}",
            minimal()
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        let found: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.col)).collect();
        assert_eq!(
            found,
            vec![(3, 26), (4, 21), (5, 19), (6, 28), (7, 8)],
            "{errs:?}"
        );
        assert!(
            errs[0]
                .message
                .contains("request_header_timeout must be at least one second")
        );
        assert!(
            errs[1]
                .message
                .contains("keepalive_timeout must be at least one second")
        );
        assert!(
            errs[2]
                .message
                .contains("max_connections must be at least 1")
        );
        assert!(
            errs[3]
                .message
                .contains("upstream_max_connections must be at least 1")
        );
        assert!(errs[4].message.contains("max-age=SECONDS"), "{}", errs[4]);
        assert_eq!(
            errs[4].to_string().split(':').take(3).collect::<Vec<_>>(),
            ["<config>", "7", "8"]
        );
    }

    #[test]
    fn a_duration_without_unit_or_a_wrong_type_is_reported_where_it_is() {
        let text = format!(
            "[server]\nkeepalive_timeout = \"75\"\nmax_connections = \"many\"\n\n{}",
            minimal()
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3], "{errs:?}");
        assert!(errs[0].message.contains("needs a unit"), "{errs:?}");
    }

    #[test]
    fn hsts_needs_tls() {
        let text = format!("[server]\nhsts = \"max-age=600\"\n\n{}", minimal());
        let errs = text.parse::<Config>().unwrap_err().0;
        assert_eq!((errs[0].line, errs[0].col), (2, 8), "{errs:?}");
        assert!(errs[0].message.contains("needs server.tls"), "{errs:?}");
    }

    #[test]
    fn redirect_http_must_not_reuse_a_listen_address() {
        let text = minimal().replace(
            "[session]",
            "[server]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\nredirect_http = \"127.0.0.1:8443\"\n\n[session]",
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(
            errs.iter()
                .any(|e| e.message.contains("also in server.listen")),
            "{errs:?}"
        );
    }
}
