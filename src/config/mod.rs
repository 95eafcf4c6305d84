//! The configuration file: raw TOML structs, then a validated [`Config`].
//!
//! Loading happens in two steps, so that every mistake in a file is reported
//! at once and with its position:
//!
//! 1. the document is parsed with spans and each section is deserialized into
//!    `Raw*` structs (`deny_unknown_fields`: a typo must never silently turn a
//!    security setting off). When a key fails, it is reported and taken out,
//!    and the section is tried again, so one pass finds every bad key;
//! 2. the raw structs are checked as a whole (`TryFrom`-like) and turned into
//!    the types the proxy runs on: parsed addresses, resolved secrets,
//!    prebuilt header names.
//!
//! Errors are [`ConfigError`]s, each printed as `file:line:col: message`.
//! [`Config::check`] also returns the warnings, where keys were written
//! ([`Places`]), and looks on the disk for the files and directories the
//! config names; a start ([`Config::load`]) leaves those to the modules
//! that read them.
//!
//! Where things are:
//!
//! ```text
//! mod.rs          the validated types, the defaults, Config::load / parse
//! raw.rs          the file's shape: Raw* structs, durations, addresses
//! deserialize.rs  step 1: deserialize, report each bad key, retry without it
//! validate/       step 2: one module per section, and the cross-section rules
//! secrets.rs      env: / file: / env-or-generate: secrets, read through a SecretSource
//! kept_key.rs     the generated key of env-or-generate:, kept beside the snapshot
//! report.rs       byte offsets -> file:line:col errors
//! summary.rs      the summary `sessiongate check` prints
//! ```
//!
//! Nothing here imports from the modules that run the proxy: only from
//! leaves (`canonical`, `hsts`, `accept`).

mod deserialize;
pub mod kept_key;
mod raw;
mod report;
mod secrets;
mod summary;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;

use deserialize::deserialize_collecting;
pub use raw::{MAX_DURATION, format_duration, parse_duration};
use report::Reporter;
pub use report::{ConfigError, ConfigErrors, Places};
pub use secrets::{
    ENV_OR_GENERATE, MAX_SECRET_FILE_BYTES, SecretError, SecretSource, SystemSecrets, generate_key,
    resolve_secret,
};
use validate::validate;
pub use validate::{
    RESERVED_SCRIPT_VARIABLES, check_port, normalize_header_name, parse_socket_addr, parse_upstream,
};

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
const DEFAULT_BASIC_REALM: &str = "sessiongate";
const DEFAULT_REPLAY_MAX_BYTES: usize = 1 << 20;
const DEFAULT_REPLAY_TTL: Duration = Duration::from_secs(10 * 60);
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
    /// Other origins whose pages may send state-changing requests
    /// (`trusted_origins`; see [`crate::csrf`]).
    pub trusted_origins: Vec<crate::origin::Origin>,
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
    /// With more than one worker (the default on a machine of several
    /// cores): each worker is a thread of its own with a single-threaded
    /// runtime, its own listening sockets (`SO_REUSEPORT`) and its own idle
    /// upstream connections (see [`crate::workers`]). `false`: one
    /// multi-threaded runtime whose threads share everything.
    pub thread_per_core: bool,
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

impl ServerConfig {
    /// The number of thread-per-core workers: `workers` (one per CPU core
    /// when unset), when that is more than one and `thread_per_core` is on.
    pub fn thread_per_core_workers(&self) -> Option<usize> {
        if !self.thread_per_core {
            return None;
        }
        let workers = self.workers.unwrap_or_else(cpu_cores);
        (workers > 1).then_some(workers)
    }
}

/// The CPU cores this process may run on (its affinity and cgroup quota
/// counted), at least one.
fn cpu_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
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
    /// Where that key is kept (beside the snapshot), when it is.
    pub kept_key: Option<kept_key::KeptKey>,
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
    /// Groups file (Apache's AuthGroupFile format), if any.
    pub groups_file: Option<PathBuf>,
    /// "Remember me" on the built-in login page: how long such a session
    /// lasts, idle or not, with a persistent cookie; off when `None`.
    pub remember_me: Option<Duration>,
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
    /// The realm named in `WWW-Authenticate: Basic` on `basic_auth` routes:
    /// printable ASCII without `"` or `\`, so it is quoted as it stands.
    pub basic_realm: String,
    /// The largest form body kept across a sign-in to be sent on after it
    /// (`login.replay_max_bytes`); 0: none is kept.
    pub replay_max_bytes: usize,
    /// How long a kept form waits for its sign-in (`login.replay_ttl`).
    pub replay_ttl: Duration,
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
    /// `sign_key`, resolved: the first signs `{prefix}Signature`, the
    /// others are listed for the backends' rotation. Empty: no signature.
    pub sign_keys: Vec<SignKey>,
}

/// One key of `headers.sign_key`, with its key id.
#[derive(Clone)]
pub struct SignKey {
    /// The key id: [`sign_key_id`] of the key.
    pub kid: String,
    /// The key, as written or read.
    pub key: Vec<u8>,
}

impl fmt::Debug for SignKey {
    // The key never reaches a log, not even through Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key id of a signing key: the first 8 hex digits of
/// SHA-256(`"sessiongate-kid"` || key). A verifier holding several keys
/// finds the one a signature names by computing this for each; it tells
/// nothing of the key.
pub fn sign_key_id(key: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::new()
        .chain_update(b"sessiongate-kid")
        .chain_update(key)
        .finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
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
    /// `{prefix}Incr` (control)
    pub incr: HeaderName,
    /// `{prefix}Login` (control)
    pub login: HeaderName,
    /// `{prefix}Logout` (control)
    pub logout: HeaderName,
    /// `{prefix}Groups`: the user's groups, to the backend; beside
    /// `{prefix}Login`, from it (control)
    pub groups: HeaderName,
    /// `{prefix}Expired`: to the application's login page, the visitor's
    /// session has ended
    pub expired: HeaderName,
    /// `{prefix}Login-Failed` (control): a wrong password, for the throttle
    pub login_failed: HeaderName,
    /// `{prefix}Signature`: the signed assertion, to the backend
    pub signature: HeaderName,
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
    /// A directory of files served as they are.
    Static(PathBuf),
    /// A FastCGI server (php-fpm) that runs the scripts under `root`.
    FastCgi(FastCgiRoute),
}

impl Upstream {
    /// Whether the upstream runs scripts, which take `env` settings.
    pub fn runs_scripts(&self) -> bool {
        matches!(self, Upstream::Cgi(_) | Upstream::FastCgi(_))
    }
}

/// Where a FastCGI server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FastCgiServer {
    /// `fastcgi://HOST:PORT`
    Tcp {
        /// Host name or address, without IPv6 brackets.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `fastcgi:unix:PATH`
    Unix(PathBuf),
}

impl fmt::Display for FastCgiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FastCgiServer::Tcp { host, port } if host.contains(':') => {
                write!(f, "fastcgi://[{host}]:{port}")
            }
            FastCgiServer::Tcp { host, port } => write!(f, "fastcgi://{host}:{port}"),
            FastCgiServer::Unix(path) => write!(f, "fastcgi:unix:{}", path.display()),
        }
    }
}

/// A `fastcgi` route's upstream: the server, and where its scripts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastCgiRoute {
    /// The server.
    pub server: FastCgiServer,
    /// `root`: the document root as the FastCGI server sees it (absolute,
    /// without a trailing `/`); `SCRIPT_FILENAME` is this + the request path.
    pub root: String,
    /// `index`: the script run for a path ending in `/`.
    pub index: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Http { scheme, authority } => write!(f, "{scheme}://{authority}"),
            Upstream::Cgi(dir) => write!(f, "cgi:{}", dir.display()),
            Upstream::Static(dir) => write!(f, "static:{}", dir.display()),
            Upstream::FastCgi(route) => route.server.fmt(f),
        }
    }
}

/// The script a `fastcgi` route runs for a path ending in `/`.
pub const DEFAULT_FASTCGI_INDEX: &str = "index.php";

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
    /// A `login` route that also takes HTTP Basic credentials from the
    /// users file (scripts, cron jobs), without a session.
    pub basic_auth: bool,
    /// The cross-site shield on this route (`csrf`).
    pub csrf: CsrfMode,
    /// On a `login` route: who of the signed-in users may enter; any of
    /// them when `None`.
    pub allow: Option<Vec<Allowed>>,
    /// Variables added to every script's environment (`env`; `cgi:` and
    /// `fastcgi` routes only).
    pub env: ScriptEnv,
    /// Add the expiry warning's `<script>` tag to the route's HTML pages
    /// (`session` and `login` routes only; see
    /// [`crate::upstream::expiry_warning`]).
    pub inject_expiry_warning: bool,
}

/// A route's `csrf`: whether state-changing requests from other origins
/// are refused (see [`crate::csrf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsrfMode {
    /// Refused unless the browser says they come from this origin or a
    /// trusted one (the default on `session` and `login` routes).
    Origin,
    /// Not checked (the default on `public` routes).
    Off,
}

impl CsrfMode {
    /// The mode a route with this access has when it says nothing.
    pub fn default_for(access: Access) -> CsrfMode {
        match access {
            Access::Public => CsrfMode::Off,
            Access::Session | Access::Login => CsrfMode::Origin,
        }
    }

    /// Name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            CsrfMode::Origin => "origin",
            CsrfMode::Off => "off",
        }
    }
}

/// One entry of a route's `allow` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// `user:NAME`
    User(String),
    /// `group:NAME`: every member of the group.
    Group(String),
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allowed::User(name) => write!(f, "user:{name}"),
            Allowed::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// A route's `env`, with secrets resolved. Its values may be secrets, so
/// its `Debug` shows the names alone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ScriptEnv(BTreeMap<String, String>);

impl ScriptEnv {
    /// Settings from names to values (already checked).
    pub fn new(settings: BTreeMap<String, String>) -> Self {
        ScriptEnv(settings)
    }

    /// Whether there is no setting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The settings, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The names set, for `check`'s summary.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for ScriptEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
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
    /// Where the audit log goes (`audit`); off when `None`.
    pub audit: Option<AuditTarget>,
}

/// Where `log.audit` sends its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    /// `"stdout"`: standard output, between the other log lines.
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// What `sessiongate check` learns from a config file: the config, or every
/// error in it; the warnings either way; and where keys were written, for
/// the checks that only a loaded config allows (file contents, allow lists).
#[derive(Debug)]
pub struct Checked {
    /// The config, when it has no error.
    pub config: Option<Config>,
    /// Every error, in file order; empty when `config` is some.
    pub errors: Vec<ConfigError>,
    /// What is valid but will not work as written, in file order.
    pub warnings: Vec<ConfigError>,
    /// Where keys were written (see [`Places`]).
    pub places: Places,
}

/// Whether loading also looks at the files and directories the config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disk {
    /// Only the text: a start reads them itself, tests name paths freely.
    Ignore,
    /// Each must exist and be readable (`sessiongate check`).
    Look,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError::whole_file(
                path,
                format!("cannot read config file: {e}"),
            )])
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text; `file` is used in messages and as `source`.
    /// `env:` and `file:` secrets are read from the process environment and
    /// the disk.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        Config::parse_with_secrets(file, text, &SystemSecrets)
    }

    /// Like [`Config::parse`], with `env:` and `file:` secrets read from
    /// `secrets` alone.
    pub fn parse_with_secrets(
        file: &Path,
        text: &str,
        secrets: &dyn SecretSource,
    ) -> Result<Config, ConfigErrors> {
        let checked = Config::read(file, text, secrets, Disk::Ignore);
        checked.config.ok_or(ConfigErrors(checked.errors))
    }

    /// Reads the config file at `path` as `sessiongate check` does: every
    /// error in one pass, the files and directories it names looked at on
    /// the disk, and the warnings.
    pub fn check(path: &Path) -> Checked {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::check_text(path, &text, &SystemSecrets),
            Err(e) => Checked {
                config: None,
                errors: vec![ConfigError::whole_file(
                    path,
                    format!("cannot read config file: {e}"),
                )],
                warnings: Vec::new(),
                places: Places::default(),
            },
        }
    }

    /// [`Config::check`] on text read from `file`, with secrets from `secrets`.
    pub fn check_text(file: &Path, text: &str, secrets: &dyn SecretSource) -> Checked {
        Config::read(file, text, secrets, Disk::Look)
    }

    /// Both steps, and the disk when asked.
    fn read(file: &Path, text: &str, secrets: &dyn SecretSource, disk: Disk) -> Checked {
        let mut reporter = Reporter::new(file, text);
        let raw = deserialize_collecting(text, &mut reporter);
        let config = raw.and_then(|raw| validate(file, raw, &mut reporter, secrets));
        if disk == Disk::Look {
            reporter.check_named_paths();
        }
        let clean = reporter.is_clean();
        let (errors, warnings, places) = reporter.into_parts();
        match config {
            Some(config) if clean => Checked {
                config: Some(config),
                errors: Vec::new(),
                warnings,
                places,
            },
            _ => Checked {
                config: None,
                errors: errors.0,
                warnings,
                places,
            },
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

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::minimal;

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
}
