//! The configuration file: raw TOML structs, then a validated [`Config`].
//!
//! Loading happens in two steps, so that every mistake in a file is reported
//! at once and with its position:
//!
//! 1. the document is parsed with spans and each section is deserialized into
//!    `Raw*` structs (`deny_unknown_fields`: a typo must never silently turn a
//!    security setting off). When a key fails, it is reported and taken out,
//!    and the section is tried again, so one pass finds every bad key;
//! 2. the raw structs are checked as a whole (`TryFrom`-like [`validate`]) and
//!    turned into the types the proxy runs on: parsed addresses, resolved
//!    secrets, prebuilt header names.
//!
//! Errors are [`ConfigError`]s, each printed as `file:line:col: message`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::de;
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where the proxy looks for its config when neither `--config` nor
/// `$SESSIONGATE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "config/sessiongate.toml";
/// Environment variable that names the config file.
pub const CONFIG_ENV: &str = "SESSIONGATE_CONFIG";

const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_UPSTREAM_MAX_CONNECTIONS: usize = 256;
const DEFAULT_COOKIE_NAME: &str = "sg_session";
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_TOUCH_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_MAX_DATA_BYTES: usize = 4096;
const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
const DEFAULT_KEY_PREFIX: &str = "sg:";
const DEFAULT_USERS_FILE: &str = "config/users";
const DEFAULT_LOGIN_PREFIX: &str = "/.sessiongate";
const DEFAULT_EXPIRED_MESSAGE: &str = "Your session has expired. Please sign in again.";
const DEFAULT_MAX_ATTEMPTS: u32 = 5;
const DEFAULT_ATTEMPT_WINDOW: Duration = Duration::from_secs(5 * 60);
const DEFAULT_HEADER_PREFIX: &str = "X-Session-";
const DEFAULT_CGI_MAX_CONCURRENT: usize = 32;
/// The shortest secret key accepted, in bytes of its string.
pub const MIN_SECRET_KEY_LEN: usize = 32;
/// Smallest header buffer hyper accepts; `max_header_bytes` below it still
/// applies, checked by the proxy itself.
const MIN_MAX_HEADER_BYTES: usize = 1024;

// ---------------------------------------------------------------------------
// Validated configuration: what the proxy runs on.
// ---------------------------------------------------------------------------

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (for messages and reloads).
    pub source: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[session]`
    pub session: SessionConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[login]`
    pub login: LoginConfig,
    /// `[headers]`
    pub headers: HeadersConfig,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[admin]`
    pub admin: AdminConfig,
    /// `[log]`
    pub log: LogConfig,
}

/// `[server]`: listeners and connection limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// TLS certificate and key; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Plain-HTTP addresses that answer every request with a redirect to
    /// HTTPS (only with `tls`).
    pub redirect_http: Vec<SocketAddr>,
    /// PEM file of the certificate authorities trusted for `https://`
    /// upstreams, in place of the system's roots.
    pub upstream_ca: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` / `-Proto` / `-Host` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The most a request's header block may hold.
    pub max_header_bytes: usize,
    /// Time an upstream (or CGI script) has to start its response.
    pub upstream_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// The most CGI scripts that run at once (further requests queue briefly).
    pub cgi_max_concurrent: usize,
    /// Threads serving requests; `None`: one per CPU core. `1` runs a
    /// single-threaded runtime, like one nginx worker.
    pub workers: Option<usize>,
    /// Time from accept to a complete first request head, the TLS handshake
    /// and protocol detection included.
    pub request_header_timeout: Duration,
    /// Time an idle connection stays open: HTTP/1.1 between requests,
    /// HTTP/2 with no request in progress.
    pub keepalive_timeout: Duration,
    /// Client connections open at once, across every listener; `None`:
    /// sized from the file descriptor limit at start
    /// ([`crate::accept::default_max_connections`]).
    pub max_connections: Option<usize>,
    /// Connections open at once to one upstream origin.
    pub upstream_max_connections: usize,
    /// `Strict-Transport-Security` sent on every response over TLS; off
    /// when `None`.
    pub hsts: Option<http::HeaderValue>,
}

/// Certificate chain and private key files, PEM.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// When the cookie carries the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// Secure when the client connection is TLS, or a trusted proxy says https.
    Auto,
    /// Always Secure.
    #[serde(alias = "true")]
    Always,
    /// Never Secure.
    #[serde(alias = "false")]
    Never,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Lax`
    Lax,
    /// `SameSite=Strict`
    Strict,
    /// `SameSite=None` (requires Secure in browsers)
    None,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// `[session]`: cookie and lifetime settings.
#[derive(Clone)]
pub struct SessionConfig {
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Secret keys, resolved; the first signs, all verify.
    pub secret_keys: Vec<Vec<u8>>,
    /// Whether a key was generated at start because its variable was unset.
    pub generated_key: Option<String>,
    /// Inactivity before a session ends.
    pub idle_timeout: Duration,
    /// Absolute end of a session.
    pub max_lifetime: Duration,
    /// Least time between two refreshes of the idle deadline.
    pub touch_interval: Duration,
    /// When the cookie is Secure.
    pub cookie_secure: CookieSecure,
    /// SameSite attribute.
    pub cookie_same_site: SameSite,
    /// Path attribute.
    pub cookie_path: String,
    /// Domain attribute, if any.
    pub cookie_domain: Option<String>,
    /// Whether the cookie outlives the browser (Max-Age).
    pub persistent_cookie: bool,
    /// Whether a session is valid only from the IP that created it.
    pub bind_ip: bool,
    /// The most a session's data may hold (its urlencoded form, in bytes).
    pub max_data_bytes: usize,
    /// Data each new session starts with, in key order.
    pub initial: Vec<(String, String)>,
}

impl fmt::Debug for SessionConfig {
    // Secret keys never reach a log, not even through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name)
            .field(
                "secret_keys",
                &format_args!("[{} redacted]", self.secret_keys.len()),
            )
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("touch_interval", &self.touch_interval)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("cookie_path", &self.cookie_path)
            .field("cookie_domain", &self.cookie_domain)
            .field("persistent_cookie", &self.persistent_cookie)
            .field("bind_ip", &self.bind_ip)
            .field("max_data_bytes", &self.max_data_bytes)
            .finish_non_exhaustive()
    }
}

/// Which session store backs the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In-process memory (dashmap), with an optional snapshot file.
    Memory,
    /// Redis or Redis Cluster.
    Redis,
}

/// `[store]`
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// memory | redis
    pub kind: StoreKind,
    /// Memory store: file the sessions are saved to and loaded from.
    pub snapshot: Option<PathBuf>,
    /// Memory store: how often the snapshot is written.
    pub snapshot_interval: Duration,
    /// Memory store: the most sessions kept.
    pub max_sessions: usize,
    /// Redis URL (`redis://`, `rediss://`, `redis+cluster://`).
    pub url: Option<String>,
    /// Prefix of every Redis key.
    pub key_prefix: String,
}

/// Where logins come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginSource {
    /// The built-in login page checks a users file.
    UsersFile,
    /// The application logs users in with the `Login` control header.
    Backend,
}

/// `[login]`
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// users_file | backend
    pub source: LoginSource,
    /// Users file (`user:hash` lines).
    pub users_file: PathBuf,
    /// With `source = "backend"`: the application's login page.
    pub page: Option<String>,
    /// Path under which the built-in endpoints live, without trailing slash.
    pub prefix: String,
    /// Shown on the login page after a session expired.
    pub expired_message: String,
    /// Failed logins allowed per user and per client IP within the window.
    pub max_attempts: u32,
    /// Window for `max_attempts`.
    pub attempt_window: Duration,
    /// Optional HTML template replacing the built-in login page.
    pub template: Option<PathBuf>,
}

impl LoginConfig {
    /// Where visitors are sent to sign in.
    pub fn login_page(&self) -> String {
        match (&self.source, &self.page) {
            (LoginSource::Backend, Some(page)) => page.clone(),
            _ => format!("{}/login", self.prefix),
        }
    }
}

/// `[headers]`: the names of injected and control headers.
#[derive(Debug, Clone)]
pub struct HeadersConfig {
    /// The prefix as written (e.g. `X-Session-`).
    pub prefix: String,
    /// The prefix normalized for matching: lowercase, `_` and `.` as `-`.
    pub match_prefix: String,
    /// Whether `{prefix}Id` is sent upstream.
    pub send_id: bool,
    /// Prebuilt header names.
    pub names: HeaderNames,
}

/// Every header name derived from `[headers] prefix`, built once at load.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    /// `{prefix}User`
    pub user: HeaderName,
    /// `{prefix}Data`
    pub data: HeaderName,
    /// `{prefix}Created`
    pub created: HeaderName,
    /// `{prefix}Expires`
    pub expires: HeaderName,
    /// `{prefix}New`
    pub new: HeaderName,
    /// `{prefix}Id`
    pub id: HeaderName,
    /// `{prefix}Set` (control)
    pub set: HeaderName,
    /// `{prefix}Delete` (control)
    pub delete: HeaderName,
    /// `{prefix}Login` (control)
    pub login: HeaderName,
    /// `{prefix}Logout` (control)
    pub logout: HeaderName,
}

/// Who may reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone; session headers when a session exists.
    Public,
    /// Anyone; a session is created when missing.
    Session,
    /// Logged-in sessions only.
    Login,
}

impl Access {
    /// Name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Session => "session",
            Access::Login => "login",
        }
    }
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// An HTTP or HTTPS server: scheme and authority only.
    Http {
        /// `http` or `https`
        scheme: http::uri::Scheme,
        /// host:port
        authority: http::uri::Authority,
    },
    /// A directory of CGI scripts run by the built-in gateway.
    Cgi(PathBuf),
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Http { scheme, authority } => write!(f, "{scheme}://{authority}"),
            Upstream::Cgi(dir) => write!(f, "cgi:{}", dir.display()),
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Path prefix.
    pub path: String,
    /// Host this route is limited to (lowercase, no port), if any.
    pub host: Option<String>,
    /// Where requests go.
    pub upstream: Upstream,
    /// Who may pass.
    pub access: Access,
}

/// `[admin]`
#[derive(Clone, Default)]
pub struct AdminConfig {
    /// Admin listener; off when absent.
    pub listen: Option<SocketAddr>,
    /// Bearer token required by every admin request, if set.
    pub token: Option<String>,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// text | json
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `sessiongate=debug,info`, ...
    pub level: String,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One problem in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into `file:line:col` errors.
struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Reporter<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    fn span<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.at(spanned.span().start, message);
    }

    fn toml(&mut self, e: &toml::de::Error) {
        let start = e.span().map_or(0, |s| s.start);
        self.at(start, e.message().trim().to_string());
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text; `file` is used in messages and as `source`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let mut reporter = Reporter::new(file, text);
        let raw = deserialize_collecting(text, &mut reporter);
        let config = raw.and_then(|raw| validate(file, raw, &mut reporter));
        match config {
            Some(config) if reporter.errors.is_empty() => Ok(config),
            _ => {
                let mut errors = reporter.errors;
                if errors.is_empty() {
                    errors.push(ConfigError {
                        file: file.to_path_buf(),
                        line: 1,
                        col: 1,
                        message: "invalid configuration".into(),
                    });
                }
                errors.sort_by_key(|e| (e.line, e.col));
                errors.dedup();
                Err(ConfigErrors(errors))
            }
        }
    }

    /// The config path chosen by the command line, the environment, or the default.
    pub fn resolve_path(cli: Option<PathBuf>) -> PathBuf {
        cli.or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

impl std::str::FromStr for Config {
    type Err = ConfigErrors;

    /// Parses config text that has no file behind it (tests, embedded configs).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Config::parse(Path::new("<config>"), text)
    }
}

/// Deserializes the document, reporting each bad key and retrying without it,
/// so that one run reports every problem rather than the first.
fn deserialize_collecting(text: &str, reporter: &mut Reporter<'_>) -> Option<RawConfig> {
    let (mut doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in &syntax_errors {
            reporter.toml(e);
        }
        return None;
    }
    doc.get_mut().make_owned();
    let mut removed: Vec<String> = Vec::new();
    // Each round removes one key, so the loop ends; the bound is a backstop.
    for _ in 0..256 {
        let attempt = doc.clone();
        match RawConfig::deserialize(toml::de::Deserializer::from(attempt)) {
            Ok(raw) => return (reporter.errors.is_empty()).then_some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let missing_after_removal = e.message().starts_with("missing field")
                    && removed
                        .iter()
                        .any(|k| e.message().contains(&format!("`{k}`")));
                if !missing_after_removal {
                    reporter.toml(&e);
                }
                match remove_key_at(doc.get_mut(), &span) {
                    Some(key) => removed.push(key),
                    None => return None,
                }
            }
        }
    }
    None
}

/// Removes the innermost key whose key or value span contains `span`, at
/// any depth (tables and arrays of tables); returns its name.
fn remove_key_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let contains = |outer: &Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let keys: Vec<(String, bool)> = table
        .iter()
        .map(|(k, v)| {
            let k_span = k.span();
            let v_span = v.span();
            let hit = contains(&k_span) || (contains(&v_span) && v_span != *span);
            (k.get_ref().to_string(), hit)
        })
        .collect();
    // Deeper first: a nested table may hold the key even when the parent's
    // own span does not cover it (arrays of tables are spread over the file).
    for (key, value) in table.iter_mut() {
        let _ = key;
        if let Some(found) = remove_in_value(value.get_mut(), span) {
            return Some(found);
        }
    }
    let exact = table
        .iter()
        .find(|(_, v)| v.span() == *span)
        .map(|(k, _)| k.get_ref().to_string());
    let key = keys
        .into_iter()
        .find(|(_, hit)| *hit)
        .map(|(k, _)| k)
        .or(exact)?;
    table.remove(key.as_str());
    Some(key)
}

fn remove_in_value(value: &mut DeValue<'_>, span: &Range<usize>) -> Option<String> {
    match value {
        DeValue::Table(t) => remove_key_at(t, span),
        DeValue::Array(items) => items
            .iter_mut()
            .find_map(|item| remove_in_value(item.get_mut(), span)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Raw structs: exactly the file's shape.
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    headers: RawHeaders,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<Listen>>,
    tls: Option<Spanned<RawTls>>,
    redirect_http: Option<Spanned<Listen>>,
    upstream_ca: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<CidrOrIp>>,
    max_header_bytes: Option<Spanned<usize>>,
    upstream_timeout: Option<Spanned<Dur>>,
    shutdown_grace: Option<Dur>,
    cgi_max_concurrent: Option<Spanned<usize>>,
    workers: Option<Spanned<usize>>,
    request_header_timeout: Option<Spanned<Dur>>,
    keepalive_timeout: Option<Spanned<Dur>>,
    max_connections: Option<Spanned<usize>>,
    upstream_max_connections: Option<Spanned<usize>>,
    hsts: Option<Spanned<String>>,
}

/// `listen` may be one string or a list of strings.
#[derive(Debug)]
struct Listen(Vec<String>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address like \"0.0.0.0:8080\", or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen(vec![v.to_string()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Listen, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Listen(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    cookie_name: Option<Spanned<String>>,
    secret_keys: Option<Spanned<Vec<Spanned<String>>>>,
    idle_timeout: Option<Spanned<Dur>>,
    max_lifetime: Option<Spanned<Dur>>,
    touch_interval: Option<Dur>,
    cookie_secure: Option<SecureSetting>,
    cookie_same_site: Option<Spanned<SameSite>>,
    cookie_path: Option<Spanned<String>>,
    cookie_domain: Option<Spanned<String>>,
    persistent_cookie: Option<bool>,
    bind_ip: Option<bool>,
    max_data_bytes: Option<Spanned<usize>>,
    initial: Option<Spanned<BTreeMap<String, InitialValue>>>,
}

/// `cookie_secure` is "auto", or a boolean.
#[derive(Debug, Clone, Copy)]
struct SecureSetting(CookieSecure);

impl<'de> Deserialize<'de> for SecureSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bool(bool),
            Name(String),
        }
        match Either::deserialize(d)? {
            Either::Bool(true) => Ok(Self(CookieSecure::Always)),
            Either::Bool(false) => Ok(Self(CookieSecure::Never)),
            Either::Name(name) => match name.as_str() {
                "auto" => Ok(Self(CookieSecure::Auto)),
                "true" | "always" => Ok(Self(CookieSecure::Always)),
                "false" | "never" => Ok(Self(CookieSecure::Never)),
                other => Err(de::Error::custom(format!(
                    "cookie_secure must be \"auto\", true or false, not {other:?}"
                ))),
            },
        }
    }
}

/// Initial data values may be strings, numbers or booleans; all become strings.
#[derive(Debug)]
struct InitialValue(String);

impl<'de> Deserialize<'de> for InitialValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Self(match Scalar::deserialize(d)? {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: Option<Spanned<StoreKind>>,
    snapshot: Option<String>,
    snapshot_interval: Option<Spanned<Dur>>,
    max_sessions: Option<Spanned<usize>>,
    url: Option<Spanned<String>>,
    key_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    source: Option<Spanned<LoginSource>>,
    users_file: Option<String>,
    page: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    expired_message: Option<String>,
    max_attempts: Option<Spanned<u32>>,
    attempt_window: Option<Spanned<Dur>>,
    template: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaders {
    prefix: Option<Spanned<String>>,
    send_id: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: Spanned<String>,
    host: Option<Spanned<String>>,
    upstream: Spanned<String>,
    #[serde(default = "default_access")]
    access: Access,
}

fn default_access() -> Access {
    Access::Public
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<Spanned<String>>,
}

/// A duration written as a string with a unit: `"90s"`, `"30m"`, `"12h"`, `"7d"`.
#[derive(Debug, Clone, Copy)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = d.deserialize_any(DurVisitor)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

struct DurVisitor;

impl de::Visitor<'_> for DurVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string with a unit, like \"90s\", \"30m\", \"12h\" or \"7d\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Parses `"90s"`, `"30m"`, `"12h"`, `"7d"`, `"1h30m"`, `"250ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "duration {s:?} needs a unit, like \"90s\", \"30m\", \"12h\" or \"7d\""
        ));
    }
    humantime::parse_duration(trimmed).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// An entry of `trusted_proxies`: a CIDR, or a single address.
#[derive(Debug, Clone, Copy)]
struct CidrOrIp(IpNet);

impl<'de> Deserialize<'de> for CidrOrIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Self(IpNet::from(ip)))
            .map_err(|_| {
                de::Error::custom(format!(
                    "{s:?} is not a CIDR (like \"10.0.0.0/8\") or an IP address"
                ))
            })
    }
}

// ---------------------------------------------------------------------------
// Validation: raw structs -> Config
// ---------------------------------------------------------------------------

fn validate(file: &Path, raw: RawConfig, r: &mut Reporter<'_>) -> Option<Config> {
    let server = validate_server(raw.server, r);
    let session = validate_session(raw.session, r);
    let store = validate_store(raw.store, r);
    let login = validate_login(raw.login, r);
    let headers = validate_headers(raw.headers, r);
    let routes = validate_routes(raw.route, r);
    let admin = validate_admin(raw.admin, r);
    let log = validate_log(raw.log, r);

    if let (Some(session), Some(login)) = (&session, &login) {
        if session.idle_timeout > session.max_lifetime {
            // Not an error: the absolute lifetime simply wins.
            tracing::debug!("idle_timeout exceeds max_lifetime; max_lifetime wins");
        }
        if login.prefix.starts_with(&session.cookie_path) || session.cookie_path == "/" {
            // fine: the cookie reaches the built-in endpoints
        } else {
            r.at(
                0,
                format!(
                    "session.cookie_path {:?} does not cover login.prefix {:?}; the login page could not see the session",
                    session.cookie_path, login.prefix
                ),
            );
        }
    }
    if routes.as_ref().is_some_and(|r| r.is_empty()) {
        r.at(
            0,
            "no [[route]] is configured; add at least one, e.g. [[route]] path = \"/\" upstream = \"http://127.0.0.1:8000\"",
        );
    }
    Some(Config {
        source: file.to_path_buf(),
        server: server?,
        session: session?,
        store: store?,
        login: login?,
        headers: headers?,
        routes: routes?,
        admin: admin?,
        log: log?,
    })
}

fn validate_server(raw: RawServer, r: &mut Reporter<'_>) -> Option<ServerConfig> {
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

/// Resolves a secret: inline, `env:NAME` or `file:PATH`.
pub fn resolve_secret(spec: &str) -> Result<String, String> {
    if let Some(name) = spec.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return read_secret_file(Path::new(path))
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string());
    }
    Ok(spec.to_string())
}

/// The most a `file:` secret may hold. A key is 43 characters and a token a
/// few dozen; a larger file is a wrong path, and `/dev/zero` never ends.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a `file:` secret: a regular file of at most [`MAX_SECRET_FILE_BYTES`].
///
/// Anything else is refused before it is read, and most of it before it is
/// opened: reading a FIFO waits for a writer, and reading `/dev/zero` or
/// `/dev/urandom` never ends, so a mistyped path would hang the start (or a
/// reload) or use up the memory; opening some devices is not harmless either.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let shown = path.display();
    let cannot = |e: std::io::Error| format!("cannot read secret file {shown}: {e}");
    let not_regular = || format!("secret file {shown} is not a regular file");
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    // Non-blocking, in case the path became a FIFO since it was looked at
    // (opening one for reading waits for a writer); on a regular file it
    // changes nothing.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "secret file {shown} is larger than {} KiB",
            MAX_SECRET_FILE_BYTES / 1024
        ));
    }
    Ok(text)
}

/// The secret form that falls back to a key generated at start: meant for
/// the demo config, so that it runs without setup.
pub const ENV_OR_GENERATE: &str = "env-or-generate:";

fn validate_session(raw: RawSession, r: &mut Reporter<'_>) -> Option<SessionConfig> {
    let mut ok = true;
    let cookie_name = match raw.cookie_name {
        None => DEFAULT_COOKIE_NAME.to_string(),
        Some(n) => {
            let valid = !n.get_ref().is_empty()
                && n.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                r.span(
                    &n,
                    "cookie_name must be a non-empty token (letters, digits, and !#$%&'*+-.^_`|~)",
                );
                ok = false;
            }
            n.into_inner()
        }
    };
    let mut secret_keys = Vec::new();
    let mut generated_key = None;
    match raw.secret_keys {
        None => {
            r.at(
                0,
                "session.secret_keys is required: add secret_keys = [\"env:SESSIONGATE_KEY\"] and set the variable (sessiongate gen-key prints a key)",
            );
            ok = false;
        }
        Some(keys) if keys.get_ref().is_empty() => {
            r.span(&keys, "session.secret_keys must hold at least one key");
            ok = false;
        }
        Some(keys) => {
            for (i, key) in keys.get_ref().iter().enumerate() {
                let spec = key.get_ref();
                let resolved = if let Some(name) = spec.strip_prefix(ENV_OR_GENERATE) {
                    match std::env::var(name) {
                        Ok(v) => Ok(v),
                        Err(_) if i == 0 => {
                            let k = crate::session::id::generate_key();
                            generated_key = Some(name.to_string());
                            Ok(k)
                        }
                        Err(_) => Err(format!("environment variable {name} is not set")),
                    }
                } else {
                    resolve_secret(spec)
                };
                match resolved {
                    Ok(k) if k.len() < MIN_SECRET_KEY_LEN => {
                        r.span(
                            key,
                            format!(
                                "secret key {} is {} characters; at least {MIN_SECRET_KEY_LEN} are required (sessiongate gen-key prints one)",
                                i + 1,
                                k.len()
                            ),
                        );
                        ok = false;
                    }
                    Ok(k) => secret_keys.push(k.into_bytes()),
                    Err(e) => {
                        r.span(key, e);
                        ok = false;
                    }
                }
            }
        }
    }
    let idle_timeout = positive(
        raw.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        "idle_timeout",
        r,
        &mut ok,
    );
    let max_lifetime = positive(
        raw.max_lifetime,
        DEFAULT_MAX_LIFETIME,
        "max_lifetime",
        r,
        &mut ok,
    );
    let cookie_path = match raw.cookie_path {
        None => "/".to_string(),
        Some(p) => {
            if !p.get_ref().starts_with('/')
                || p.get_ref()
                    .bytes()
                    .any(|b| b.is_ascii_control() || b == b';')
            {
                r.span(
                    &p,
                    "cookie_path must start with / and hold no ';' or control characters",
                );
                ok = false;
            }
            p.into_inner()
        }
    };
    let cookie_domain = match raw.cookie_domain {
        None => None,
        Some(d) => {
            let valid = !d.get_ref().is_empty()
                && d.get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                r.span(&d, "cookie_domain must be a host name like \"example.org\"");
                ok = false;
            }
            Some(d.into_inner())
        }
    };
    let cookie_secure = raw.cookie_secure.map_or(CookieSecure::Auto, |s| s.0);
    let cookie_same_site = match raw.cookie_same_site {
        None => SameSite::Lax,
        Some(s) => {
            if *s.get_ref() == SameSite::None && cookie_secure == CookieSecure::Never {
                r.span(&s, "cookie_same_site = \"none\" requires a Secure cookie; browsers drop it otherwise");
                ok = false;
            }
            s.into_inner()
        }
    };
    if let Some(prefixed) = cookie_name.strip_prefix("__Host-") {
        let _ = prefixed;
        if cookie_secure == CookieSecure::Never || cookie_path != "/" || cookie_domain.is_some() {
            r.at(
                0,
                "a __Host- cookie_name needs cookie_secure other than false, cookie_path = \"/\" and no cookie_domain",
            );
            ok = false;
        }
    }
    if cookie_name.starts_with("__Secure-") && cookie_secure == CookieSecure::Never {
        r.at(
            0,
            "a __Secure- cookie_name needs cookie_secure other than false",
        );
        ok = false;
    }
    let max_data_bytes = raw
        .max_data_bytes
        .map_or(DEFAULT_MAX_DATA_BYTES, |v| v.into_inner());
    let mut initial = Vec::new();
    if let Some(init) = raw.initial {
        for (k, v) in init.get_ref() {
            if k.is_empty() {
                r.span(&init, "session.initial keys must not be empty");
                ok = false;
            }
            initial.push((k.clone(), v.0.clone()));
        }
        let encoded =
            crate::session::data::encode(initial.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if encoded.len() > max_data_bytes {
            r.span(
                &init,
                format!(
                    "session.initial holds {} bytes, more than max_data_bytes ({max_data_bytes})",
                    encoded.len()
                ),
            );
            ok = false;
        }
    }
    ok.then(|| SessionConfig {
        cookie_name,
        secret_keys,
        generated_key,
        idle_timeout,
        max_lifetime,
        touch_interval: raw.touch_interval.map_or(DEFAULT_TOUCH_INTERVAL, |d| d.0),
        cookie_secure,
        cookie_same_site,
        cookie_path,
        cookie_domain,
        persistent_cookie: raw.persistent_cookie.unwrap_or(false),
        bind_ip: raw.bind_ip.unwrap_or(false),
        max_data_bytes,
        initial,
    })
}

fn positive(
    v: Option<Spanned<Dur>>,
    default: Duration,
    name: &str,
    r: &mut Reporter<'_>,
    ok: &mut bool,
) -> Duration {
    match v {
        None => default,
        Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
            r.span(&d, format!("{name} must be at least one second"));
            *ok = false;
            default
        }
        Some(d) => d.into_inner().0,
    }
}

fn validate_store(raw: RawStore, r: &mut Reporter<'_>) -> Option<StoreConfig> {
    let mut ok = true;
    let kind = raw
        .kind
        .as_ref()
        .map_or(StoreKind::Memory, |k| *k.get_ref());
    if kind == StoreKind::Redis && raw.url.is_none() {
        match &raw.kind {
            Some(k) => r.span(
                k,
                "store.kind = \"redis\" needs store.url, e.g. url = \"redis://127.0.0.1:6379/0\"",
            ),
            None => r.at(0, "store.kind = \"redis\" needs store.url"),
        }
        ok = false;
    }
    if let Some(url) = &raw.url {
        let u = url.get_ref();
        let schemes = [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "redis+unix://",
            "unix://",
        ];
        if !schemes.iter().any(|s| u.starts_with(s)) {
            r.span(
                url,
                "store.url must start with redis://, rediss:// or redis+cluster://",
            );
            ok = false;
        }
    }
    let snapshot_interval = match raw.snapshot_interval {
        None => DEFAULT_SNAPSHOT_INTERVAL,
        Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
            r.span(&d, "snapshot_interval must be at least one second");
            ok = false;
            DEFAULT_SNAPSHOT_INTERVAL
        }
        Some(d) => d.into_inner().0,
    };
    let max_sessions = match raw.max_sessions {
        None => DEFAULT_MAX_SESSIONS,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "max_sessions must be at least 1");
            ok = false;
            0
        }
        Some(v) => v.into_inner(),
    };
    ok.then(|| StoreConfig {
        kind,
        snapshot: raw.snapshot.filter(|s| !s.is_empty()).map(PathBuf::from),
        snapshot_interval,
        max_sessions,
        url: raw.url.map(|u| u.into_inner()),
        key_prefix: raw
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string()),
    })
}

fn validate_login(raw: RawLogin, r: &mut Reporter<'_>) -> Option<LoginConfig> {
    let mut ok = true;
    let source = raw
        .source
        .as_ref()
        .map_or(LoginSource::UsersFile, |s| *s.get_ref());
    let prefix = match raw.prefix {
        None => DEFAULT_LOGIN_PREFIX.to_string(),
        Some(p) => {
            let trimmed = p.get_ref().trim_end_matches('/').to_string();
            if !p.get_ref().starts_with('/') || trimmed.is_empty() || !is_plain_path(&trimmed) {
                r.span(
                    &p,
                    "login.prefix must be a path like \"/.sessiongate\" (not \"/\")",
                );
                ok = false;
            }
            trimmed
        }
    };
    let page = match raw.page {
        None => None,
        Some(p) => {
            if !p.get_ref().starts_with('/')
                || p.get_ref().starts_with("//")
                || !is_plain_path(p.get_ref())
            {
                r.span(
                    &p,
                    "login.page must be a path on this site, like \"/login.cgi\"",
                );
                ok = false;
            }
            Some(p.into_inner())
        }
    };
    if source == LoginSource::Backend && page.is_none() {
        match &raw.source {
            Some(s) => r.span(
                s,
                "login.source = \"backend\" needs login.page, the application's login route",
            ),
            None => r.at(0, "login.source = \"backend\" needs login.page"),
        }
        ok = false;
    }
    let max_attempts = match raw.max_attempts {
        None => DEFAULT_MAX_ATTEMPTS,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "max_attempts must be at least 1");
            ok = false;
            1
        }
        Some(v) => v.into_inner(),
    };
    let attempt_window = positive(
        raw.attempt_window,
        DEFAULT_ATTEMPT_WINDOW,
        "attempt_window",
        r,
        &mut ok,
    );
    ok.then(|| LoginConfig {
        source,
        users_file: PathBuf::from(
            raw.users_file
                .unwrap_or_else(|| DEFAULT_USERS_FILE.to_string()),
        ),
        page,
        prefix,
        expired_message: raw
            .expired_message
            .unwrap_or_else(|| DEFAULT_EXPIRED_MESSAGE.to_string()),
        max_attempts,
        attempt_window,
        template: raw.template.map(PathBuf::from),
    })
}

fn is_plain_path(p: &str) -> bool {
    !p.bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#' || b == b'\\')
}

fn validate_headers(raw: RawHeaders, r: &mut Reporter<'_>) -> Option<HeadersConfig> {
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

fn validate_routes(raw: Vec<Spanned<RawRoute>>, r: &mut Reporter<'_>) -> Option<Vec<RouteConfig>> {
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

fn validate_admin(raw: RawAdmin, r: &mut Reporter<'_>) -> Option<AdminConfig> {
    let mut ok = true;
    let listen = raw
        .listen
        .as_ref()
        .and_then(|l| match parse_socket_addr(l.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                r.span(l, e);
                ok = false;
                None
            }
        });
    // Without a token, anyone who can reach the listener may end sessions.
    if let (Some(addr), Some(l), None) = (listen, &raw.listen, &raw.token) {
        if !addr.ip().is_loopback() {
            r.span(
                l,
                "admin.listen is not a loopback address: set admin.token as well",
            );
            ok = false;
        }
    }
    let token = raw.token.and_then(|t| match resolve_secret(t.get_ref()) {
        Ok(v) if v.is_empty() => {
            r.span(&t, "admin.token must not be empty");
            ok = false;
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            r.span(&t, e);
            ok = false;
            None
        }
    });
    ok.then_some(AdminConfig { listen, token })
}

fn validate_log(raw: RawLog, r: &mut Reporter<'_>) -> Option<LogConfig> {
    let level = match raw.level {
        None => "info".to_string(),
        Some(l) => {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                r.span(&l, "log.level must be trace, debug, info, warn, error, or a filter like \"sessiongate=debug,info\"");
                return None;
            }
            l.into_inner()
        }
    };
    Some(LogConfig {
        format: raw.format.unwrap_or(LogFormat::Text),
        level,
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn minimal() -> String {
        format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n"
        )
    }

    #[test]
    fn minimal_config_gets_spec_defaults() {
        let c: Config = minimal().parse().unwrap();
        assert_eq!(c.server.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
        assert_eq!(c.session.cookie_name, "sg_session");
        assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.session.max_lifetime, Duration::from_secs(86400));
        assert_eq!(c.session.cookie_same_site, SameSite::Lax);
        assert_eq!(c.session.cookie_secure, CookieSecure::Auto);
        assert_eq!(c.store.kind, StoreKind::Memory);
        assert_eq!(c.store.max_sessions, 1_000_000);
        assert_eq!(c.login.prefix, "/.sessiongate");
        assert_eq!(c.headers.prefix, "X-Session-");
        assert_eq!(c.headers.names.user.as_str(), "x-session-user");
        assert_eq!(c.routes[0].access, Access::Public);
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let text = minimal().replace(
            "[session]\nsecret_keys",
            "[session]\nidle_timout = \"5m\"\nsecret_keys",
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (2, 1));
        assert!(
            errs[0].message.contains("idle_timout"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn every_error_is_reported() {
        let text = "[server]\nlisten = [\"nope\"]\nbogus = 1\n\n[session]\nsecret_keys = [\"short\"]\nidle_timeout = \"5\"\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\naccess = \"maybe\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        // bogus key (3), bad duration (7), bad access (12) are found in the
        // first pass; once they are gone the remaining values are checked.
        assert!(lines.contains(&3), "{errs:?}");
        assert!(lines.contains(&7), "{errs:?}");
        assert!(lines.contains(&12), "{errs:?}");
    }

    #[test]
    fn semantic_errors_name_their_line() {
        let text = "[server]\nlisten = [\"nope\"]\n\n[session]\nsecret_keys = [\"short\"]\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 5, 9], "{errs:?}");
        assert!(errs[1].message.contains("at least 32"));
    }

    #[test]
    fn secrets_resolve_from_env_and_file() {
        let dir = std::env::temp_dir().join(format!("sg-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{KEY}\n")).unwrap();
        let text = minimal().replace(
            &format!("[\"{KEY}\"]"),
            &format!(
                "[\"file:{}\", \"env:SG_TEST_UNSET_VARIABLE\"]",
                file.display()
            ),
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(
            errs[0]
                .message
                .contains("SG_TEST_UNSET_VARIABLE is not set")
        );
        let text = minimal().replace(
            &format!("[\"{KEY}\"]"),
            &format!("[\"file:{}\"]", file.display()),
        );
        let c: Config = text.parse().unwrap();
        assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);
    }

    #[test]
    fn secret_files_that_never_end_or_block_are_refused() {
        // Each check runs on its own thread so that a regression fails the
        // test instead of hanging it.
        fn resolved_within_a_few_seconds(spec: String) -> Result<String, String> {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || tx.send(resolve_secret(&spec)));
            rx.recv_timeout(Duration::from_secs(5))
                .expect("resolve_secret returned within five seconds")
        }
        let dir = tempfile::tempdir().unwrap();

        let err = resolved_within_a_few_seconds("file:/dev/zero".into()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = resolved_within_a_few_seconds(format!("file:{}", fifo.display())).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'k'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        let err = resolved_within_a_few_seconds(format!("file:{}", big.display())).unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");

        let largest = dir.path().join("largest");
        std::fs::write(&largest, vec![b'k'; MAX_SECRET_FILE_BYTES as usize]).unwrap();
        let key = resolved_within_a_few_seconds(format!("file:{}", largest.display())).unwrap();
        assert_eq!(key.len(), MAX_SECRET_FILE_BYTES as usize);

        let err =
            resolved_within_a_few_seconds(format!("file:{}", dir.path().display())).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let err = resolved_within_a_few_seconds("file:/nonexistent/key".into()).unwrap_err();
        assert!(err.contains("cannot read secret file"), "{err}");
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
    }

    #[test]
    fn header_names_fold_underscores_and_dots() {
        assert_eq!(normalize_header_name("X_Session.User"), "x-session-user");
    }

    #[test]
    fn syntax_error_has_position() {
        let errs = "[server\nlisten = 1".parse::<Config>().unwrap_err().0;
        assert_eq!(errs[0].line, 1);
    }

    #[test]
    fn redis_needs_url() {
        let text = format!("{}\n[store]\nkind = \"redis\"\n", minimal());
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(errs[0].message.contains("store.url"), "{errs:?}");
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
