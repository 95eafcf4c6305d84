//! sessiongate: a reverse proxy that gives sessions to web sites that have none.
//!
//! # Architecture
//!
//! A request travels through these modules, in this order. `proxy::Gate::
//! process` is this diagram in code, one line per stage; each stage is a
//! function of the module named, returning a value (an early answer is a
//! `respond::Reject`, made into a status in one table).
//!
//! ```text
//! server          accept -> (TLS) -> hyper (HTTP/1.1, h2; by ALPN or detected)
//!   background      certificate watch, sweeper, snapshots, users file refresh
//!   accept          a slot among max_connections before each accept
//!   connection      deadlines: first request head, idle keep-alive; drain
//!   tls, hsts       certificates (reloaded when they change); HSTS on TLS
//!   https_redirect  optional plain-HTTP listener: 301 to https://
//! proxy           the stages, on the setup in force (setup: built per config)
//!   canonical       normalise the path; one host per request
//!   forwarded       who the client is (X-Forwarded-* only from trusted proxies)
//!   login::endpoints  built-in login page, login POST, logout
//!   login::expiry     status, keepalive, the expiry warning's script
//!   access          route table (longest prefix), public / session / login
//!   csrf            the cross-site shield: state-changing requests from
//!                   other origins refused (and on the built-in endpoints)
//!   login::basic    HTTP Basic on basic_auth routes (throttle, cache, argon2)
//!   replay          a form sent without a session kept across the sign-in,
//!                   and sent in place of the GET that comes back after it
//!   session::found  cookie -> signature -> one store lookup
//!   upstream::request_headers  strip client session headers, inject ours
//!     upstream::signed_assertion  and sign them (with headers.sign_key)
//!   forward         to the route's target: upstream::http, upstream::cgi
//!                   or upstream::fastcgi
//!   upstream::control  take the backend's control headers
//!   upgrade         WebSocket handshakes: open the tunnel, copy both ways
//!   session::commit  apply the change atomically in the store
//!   session::set_cookie  set / clear the cookie
//!   upstream::expiry_warning  the warning's script tag in HTML pages
//! body            stream the response; when it ends:
//!   access_log      the access log line
//!   logging         log lines buffered in memory, written out by one thread
//!
//! admin           its own listener (admin.listen): /healthz /readyz
//!                 /metrics (the counters of `metrics`) /sessions
//! ```
//!
//! Below them: `config` (TOML to a validated `Config`; imports nothing of
//! the request path), `session` (ids, cookie codec, stores: memory with its
//! snapshot, Redis), `login` (users file, throttle, page), `audit` (the
//! audit log: sign-ins, logouts, revocations, on a writer thread),
//! `metrics`, `clock`, `redact`. Beside them, `check`: `sessiongate check`,
//! the config and what it names, each finding at its `file:line:col`.
//!
//! # Where new things go
//!
//! - **A new upstream kind** (static files, FastCGI): a module under
//!   `upstream/`, a variant of `config::Upstream`, a variant of
//!   `forward::Target` built in `setup::build_targets`, and a `From` impl of
//!   its error type in `respond`.
//! - **A new store**: a module under `session/` implementing
//!   `session::SessionStore`, a variant of `session::AnyStore`, and one more
//!   run of the store contract suite in the tests.
//! - **A new key that names a file or directory**: `Section::names_file`
//!   or `names_dir` where it is validated, so that `sessiongate check`
//!   looks for it and reports it at the key.
//! - **A new built-in page**: a route in `login::endpoints::LoginDesk::serve`
//!   (or its own module beside it, given the same `Visit`).
//! - **A new config key**: its raw field and its validation in `config`, a
//!   `DEFAULT_*` const, a line in `check`'s summary when an operator should
//!   see it, and its use in `setup` (per config, swapped on reload) rather
//!   than read on every request.
//! - **A new stage**: one line in `proxy::Gate::process`, its work in the
//!   module that holds its kind.

pub mod accept;
pub mod access;
pub mod access_log;
pub mod admin;
pub mod audit;
pub mod background;
pub mod body;
pub mod canonical;
pub mod check;
pub mod clock;
pub mod config;
pub mod connection;
pub mod csrf;
pub mod forward;
pub mod forwarded;
pub mod hsts;
pub mod https_redirect;
pub mod idle_memory;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod redact;
pub mod replay;
pub mod respond;
pub mod server;
pub mod session;
pub mod setup;
pub mod tls;
pub mod upgrade;
pub mod upstream;
pub mod workers;
