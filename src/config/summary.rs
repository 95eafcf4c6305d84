//! The one-screen summary `sessiongate check` prints.

use std::fmt::{self, Write as _};

use super::{Access, AuditTarget, Config, LoginSource, RouteConfig, StoreKind};

impl RouteConfig {
    /// Who may enter this route, in words (`sessiongate check` prints it).
    pub fn who_may_enter(&self) -> String {
        match (self.access, &self.allow) {
            (Access::Public, _) => "anyone".into(),
            (Access::Session, _) => "anyone, with a session (made on the first visit)".into(),
            (Access::Login, None) => "any signed-in user".into(),
            (Access::Login, Some(allow)) => {
                let names: Vec<String> = allow.iter().map(ToString::to_string).collect();
                format!("signed-in users allowed by {}", names.join(", "))
            }
        }
    }
}

impl RouteConfig {
    /// What the cross-site shield does here, in words.
    pub fn cross_site_shield(&self) -> &'static str {
        match (self.csrf, self.basic_auth) {
            (super::CsrfMode::Off, _) => "off",
            (super::CsrfMode::Origin, false) => {
                "on (state-changing requests from other origins refused)"
            }
            (super::CsrfMode::Origin, true) => {
                "on (state-changing requests from other origins refused; scripts' Basic credentials exempt)"
            }
        }
    }
}

impl Config {
    /// A one-screen summary for `sessiongate check`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_summary(&mut out);
        out
    }

    /// Every line of [`Config::summary`], in order.
    fn write_summary(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "config: {} (valid)", self.source.display())?;
        self.write_listeners(out)?;
        self.write_connections(out)?;
        self.write_routes(out)?;
        self.write_session_and_store(out)?;
        self.write_signature(out)?;
        self.write_login_and_admin(out)
    }

    /// The signed assertion: its header and key ids, never the keys.
    fn write_signature(&self, out: &mut String) -> fmt::Result {
        let Some((first, others)) = self.headers.sign_keys.split_first() else {
            return Ok(());
        };
        write!(
            out,
            "signed assertion: {}Signature, signed with key id {}",
            self.headers.prefix, first.kid
        )?;
        if !others.is_empty() {
            let kids: Vec<&str> = others.iter().map(|k| k.kid.as_str()).collect();
            write!(out, "; also listed (for verifiers): {}", kids.join(", "))?;
        }
        writeln!(out)
    }

    /// Listen addresses, TLS files, redirects, upstream trust.
    fn write_listeners(&self, out: &mut String) -> fmt::Result {
        let server = &self.server;
        let scheme = if server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        for addr in &server.listen {
            writeln!(out, "listen: {scheme}://{addr}")?;
        }
        if let Some(tls) = &server.tls {
            writeln!(
                out,
                "tls: cert {} key {}",
                tls.cert.display(),
                tls.key.display()
            )?;
        }
        for addr in &server.redirect_http {
            writeln!(out, "redirect: http://{addr} -> https")?;
        }
        if let Some(ca) = &server.upstream_ca {
            writeln!(out, "upstream ca: {}", ca.display())?;
        }
        if !server.trusted_origins.is_empty() {
            let origins: Vec<String> = server
                .trusted_origins
                .iter()
                .map(ToString::to_string)
                .collect();
            writeln!(out, "trusted origins: {}", origins.join(", "))?;
        }
        Ok(())
    }

    /// Connection limits and deadlines, and HSTS.
    fn write_connections(&self, out: &mut String) -> fmt::Result {
        let server = &self.server;
        let max_connections = match server.max_connections {
            Some(n) => n.to_string(),
            None => {
                let (n, fds) = crate::accept::default_max_connections();
                format!("{n} (from the open files limit, {fds})")
            }
        };
        writeln!(
            out,
            "connections: at most {max_connections}, request head within {}, idle {}; at most {} per upstream",
            humantime::format_duration(server.request_header_timeout),
            humantime::format_duration(server.keepalive_timeout),
            server.upstream_max_connections
        )?;
        if let Some(hsts) = &server.hsts {
            writeln!(out, "hsts: {}", String::from_utf8_lossy(hsts.as_bytes()))?;
        }
        Ok(())
    }

    /// The route table: host, path, upstream and access.
    fn write_routes(&self, out: &mut String) -> fmt::Result {
        writeln!(out, "routes:")?;
        for route in &self.routes {
            let host = route.host.as_deref().unwrap_or("*");
            writeln!(
                out,
                "  {host} {:<24} -> {:<40} access={}{}",
                route.path,
                route.upstream.to_string(),
                route.access.as_str(),
                if route.basic_auth { " +basic" } else { "" }
            )?;
            writeln!(out, "      who may enter: {}", route.who_may_enter())?;
            writeln!(
                out,
                "      cross-site shield: {}",
                route.cross_site_shield()
            )?;
            if let super::Upstream::FastCgi(fastcgi) = &route.upstream {
                writeln!(out, "    root {}, index {}", fastcgi.root, fastcgi.index)?;
            }
            if route.inject_expiry_warning {
                writeln!(
                    out,
                    "    expiry warning: script tag added to HTML pages (unless their CSP forbids it)"
                )?;
            }
            if !route.env.is_empty() {
                // Names only: values may be secrets.
                let names: Vec<&str> = route.env.names().collect();
                writeln!(out, "    env: {}", names.join(", "))?;
            }
        }
        Ok(())
    }

    /// The cookie, its keys and lifetimes; where sessions are kept.
    fn write_session_and_store(&self, out: &mut String) -> fmt::Result {
        let s = &self.session;
        writeln!(
            out,
            "session: cookie {} ({} key{}), idle {}, lifetime {}",
            s.cookie_name,
            s.secret_keys.len(),
            if s.secret_keys.len() == 1 { "" } else { "s" },
            humantime::format_duration(s.idle_timeout),
            humantime::format_duration(s.max_lifetime)
        )?;
        if let Some(var) = &s.generated_key {
            // Said here too: a production config must not come to this.
            match &s.kept_key {
                Some(kept) => writeln!(
                    out,
                    "  signing key: {var} is unset; the key kept in {} (made at the first start; for trying sessiongate only)",
                    kept.path.display()
                )?,
                None => writeln!(
                    out,
                    "  signing key: {var} is unset; a random key made at every start (for trying sessiongate only)"
                )?,
            }
        }
        match self.store.kind {
            StoreKind::Memory => writeln!(
                out,
                "store: memory, max {} sessions, snapshot {}",
                self.store.max_sessions,
                self.store
                    .snapshot
                    .as_ref()
                    .map_or("off".to_string(), |p| p.display().to_string())
            ),
            StoreKind::Redis => writeln!(
                out,
                "store: redis {}",
                crate::redact::redact_url(self.store.url.as_deref().unwrap_or(""))
            ),
        }
    }

    /// Where visitors sign in; the admin listener.
    fn write_login_and_admin(&self, out: &mut String) -> fmt::Result {
        match self.login.source {
            LoginSource::UsersFile => {
                writeln!(
                    out,
                    "login: users file {}, pages under {}",
                    self.login.users_file.display(),
                    self.login.prefix
                )?;
                if self.routes.iter().any(|r| r.basic_auth) {
                    writeln!(
                        out,
                        "basic auth: realm \"{}\" on the routes marked +basic",
                        self.login.basic_realm
                    )?;
                }
            }
            LoginSource::Backend => {
                writeln!(out, "login: by the backend at {}", self.login.login_page())?;
            }
        }
        match self.login.replay_max_bytes {
            0 => writeln!(out, "forms interrupted by a sign-in: not kept (replay off)")?,
            max => writeln!(
                out,
                "forms interrupted by a sign-in: kept up to {max} bytes for {}, sent on once after it",
                humantime::format_duration(self.login.replay_ttl)
            )?,
        }
        writeln!(
            out,
            "users' own sessions: {}/sessions (list, sign out others)",
            self.login.prefix
        )?;
        if let Some(admin) = self.admin.listen {
            writeln!(out, "admin: http://{admin}")?;
        }
        match &self.log.audit {
            Some(AuditTarget::Stdout) => writeln!(out, "audit log: stdout")?,
            Some(AuditTarget::File(path)) => writeln!(out, "audit log: {}", path.display())?,
            None => {}
        }
        Ok(())
    }
}
