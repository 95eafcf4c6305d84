//! `[server]`: listeners, TLS, limits and timeouts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::positive;
use crate::config::raw::{Listen, RawServer};
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_CGI_MAX_CONCURRENT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_LISTEN,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_REQUEST_HEADER_TIMEOUT, DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_UPSTREAM_MAX_CONNECTIONS, DEFAULT_UPSTREAM_TIMEOUT, MIN_MAX_HEADER_BYTES, ServerConfig,
    TlsConfig,
};

pub(super) fn validate_server(raw: RawServer, r: &mut Reporter<'_>) -> Option<ServerConfig> {
    let mut ok = true;
    let listen_strings: Spanned<Listen> = raw
        .listen
        .unwrap_or_else(|| Spanned::new(0..0, Listen(vec![DEFAULT_LISTEN.to_string()])));
    let mut listen = Vec::new();
    for s in &listen_strings.get_ref().0 {
        match parse_socket_addr(s) {
            Ok(a) => listen.push(a),
            Err(e) => {
                r.span(&listen_strings, e);
                ok = false;
            }
        }
    }
    if listen.is_empty() && ok {
        r.at(0, "server.listen must name at least one address");
        ok = false;
    }
    let tls = raw.tls.map(|t| {
        let t = t.into_inner();
        TlsConfig {
            cert: PathBuf::from(t.cert.into_inner()),
            key: PathBuf::from(t.key.into_inner()),
        }
    });
    let mut redirect_http = Vec::new();
    if let Some(addrs) = &raw.redirect_http {
        if tls.is_none() {
            r.span(
                addrs,
                "server.redirect_http redirects to HTTPS, so it needs server.tls = { cert = \"...\", key = \"...\" }",
            );
            ok = false;
        }
        for s in &addrs.get_ref().0 {
            match parse_socket_addr(s) {
                Ok(a) if listen.contains(&a) => {
                    r.span(
                        addrs,
                        format!("server.redirect_http {s:?} is also in server.listen"),
                    );
                    ok = false;
                }
                Ok(a) => redirect_http.push(a),
                Err(e) => {
                    r.span(addrs, e);
                    ok = false;
                }
            }
        }
    }
    let upstream_ca = match raw.upstream_ca {
        Some(v) if v.get_ref().trim().is_empty() => {
            r.span(&v, "server.upstream_ca must name a PEM file");
            ok = false;
            None
        }
        Some(v) => Some(PathBuf::from(v.into_inner())),
        None => None,
    };
    let max_header_bytes = match raw.max_header_bytes {
        None => DEFAULT_MAX_HEADER_BYTES,
        Some(v) if *v.get_ref() < MIN_MAX_HEADER_BYTES => {
            r.span(
                &v,
                format!("max_header_bytes must be at least {MIN_MAX_HEADER_BYTES}"),
            );
            ok = false;
            0
        }
        Some(v) => v.into_inner(),
    };
    let upstream_timeout = match raw.upstream_timeout {
        None => DEFAULT_UPSTREAM_TIMEOUT,
        Some(v) if v.get_ref().0.is_zero() => {
            r.span(&v, "upstream_timeout must be greater than zero");
            ok = false;
            Duration::ZERO
        }
        Some(v) => v.into_inner().0,
    };
    let cgi_max_concurrent = match raw.cgi_max_concurrent {
        None => DEFAULT_CGI_MAX_CONCURRENT,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "cgi_max_concurrent must be at least 1");
            ok = false;
            0
        }
        Some(v) => v.into_inner(),
    };
    let workers = match raw.workers {
        None => None,
        Some(v) if *v.get_ref() == 0 || *v.get_ref() > 1024 => {
            r.span(
                &v,
                "workers must be between 1 and 1024 (leave it out for one per CPU core)",
            );
            ok = false;
            None
        }
        Some(v) => Some(v.into_inner()),
    };
    let request_header_timeout = positive(
        raw.request_header_timeout,
        DEFAULT_REQUEST_HEADER_TIMEOUT,
        "request_header_timeout",
        r,
        &mut ok,
    );
    let keepalive_timeout = positive(
        raw.keepalive_timeout,
        DEFAULT_KEEPALIVE_TIMEOUT,
        "keepalive_timeout",
        r,
        &mut ok,
    );
    let max_connections = match raw.max_connections {
        None => None,
        Some(v) if *v.get_ref() == 0 => {
            r.span(
                &v,
                "max_connections must be at least 1 (leave it out to size it from the file descriptor limit)",
            );
            ok = false;
            None
        }
        Some(v) => Some(v.into_inner()),
    };
    let upstream_max_connections = match raw.upstream_max_connections {
        None => DEFAULT_UPSTREAM_MAX_CONNECTIONS,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "upstream_max_connections must be at least 1");
            ok = false;
            0
        }
        Some(v) => v.into_inner(),
    };
    let hsts = match raw.hsts {
        None => None,
        Some(v) if tls.is_none() => {
            r.span(
                &v,
                "server.hsts is only ever sent over TLS, so it needs server.tls = { cert = \"...\", key = \"...\" }",
            );
            ok = false;
            None
        }
        Some(v) => match crate::hsts::parse(v.get_ref()) {
            Ok(value) => Some(value),
            Err(e) => {
                r.span(&v, e);
                ok = false;
                None
            }
        },
    };
    ok.then(|| ServerConfig {
        workers,
        request_header_timeout,
        keepalive_timeout,
        max_connections,
        upstream_max_connections,
        hsts,
        listen,
        tls,
        redirect_http,
        upstream_ca,
        trusted_proxies: raw.trusted_proxies.iter().map(|c| c.get_ref().0).collect(),
        max_header_bytes,
        upstream_timeout,
        shutdown_grace: raw.shutdown_grace.map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0),
        cgi_max_concurrent,
    })
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
    Err(format!(
        "{s:?} is not a listen address; write it as \"IP:PORT\", e.g. \"0.0.0.0:8080\" or \"[::]:8080\""
    ))
}
