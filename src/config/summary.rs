//! The one-screen summary `sessiongate check` prints.

use super::{Config, LoginSource, StoreKind};

impl Config {
    /// A one-screen summary for `sessiongate check`.
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "config: {} (valid)", self.source.display());
        let scheme = if self.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        for addr in &self.server.listen {
            let _ = writeln!(out, "listen: {scheme}://{addr}");
        }
        if let Some(tls) = &self.server.tls {
            let _ = writeln!(
                out,
                "tls: cert {} key {}",
                tls.cert.display(),
                tls.key.display()
            );
        }
        for addr in &self.server.redirect_http {
            let _ = writeln!(out, "redirect: http://{addr} -> https");
        }
        if let Some(ca) = &self.server.upstream_ca {
            let _ = writeln!(out, "upstream ca: {}", ca.display());
        }
        let server = &self.server;
        let max_connections = match server.max_connections {
            Some(n) => n.to_string(),
            None => {
                let (n, fds) = crate::accept::default_max_connections();
                format!("{n} (from the open files limit, {fds})")
            }
        };
        let _ = writeln!(
            out,
            "connections: at most {max_connections}, request head within {}, idle {}; at most {} per upstream",
            humantime::format_duration(server.request_header_timeout),
            humantime::format_duration(server.keepalive_timeout),
            server.upstream_max_connections
        );
        if let Some(hsts) = &server.hsts {
            let _ = writeln!(out, "hsts: {}", String::from_utf8_lossy(hsts.as_bytes()));
        }
        let _ = writeln!(out, "routes:");
        for route in &self.routes {
            let host = route.host.as_deref().unwrap_or("*");
            let _ = writeln!(
                out,
                "  {host} {:<24} -> {:<40} access={}",
                route.path,
                route.upstream.to_string(),
                route.access.as_str()
            );
        }
        let s = &self.session;
        let _ = writeln!(
            out,
            "session: cookie {} ({} key{}), idle {}, lifetime {}",
            s.cookie_name,
            s.secret_keys.len(),
            if s.secret_keys.len() == 1 { "" } else { "s" },
            humantime::format_duration(s.idle_timeout),
            humantime::format_duration(s.max_lifetime)
        );
        match self.store.kind {
            StoreKind::Memory => {
                let _ = writeln!(
                    out,
                    "store: memory, max {} sessions, snapshot {}",
                    self.store.max_sessions,
                    self.store
                        .snapshot
                        .as_ref()
                        .map_or("off".to_string(), |p| p.display().to_string())
                );
            }
            StoreKind::Redis => {
                let _ = writeln!(
                    out,
                    "store: redis {}",
                    redact_url(self.store.url.as_deref().unwrap_or(""))
                );
            }
        }
        match self.login.source {
            LoginSource::UsersFile => {
                let _ = writeln!(
                    out,
                    "login: users file {}, pages under {}",
                    self.login.users_file.display(),
                    self.login.prefix
                );
            }
            LoginSource::Backend => {
                let _ = writeln!(out, "login: by the backend at {}", self.login.login_page());
            }
        }
        if let Some(admin) = self.admin.listen {
            let _ = writeln!(out, "admin: http://{admin}");
        }
        out
    }
}

/// Hides a password in a URL like `redis://:secret@host`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}
