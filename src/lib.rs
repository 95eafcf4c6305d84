//! sessiongate: a reverse proxy that gives sessions to web sites that have none.
//!
//! A request travels through these modules, in this order:
//!
//! ```text
//! server      accept -> (TLS) -> hyper (HTTP/1.1, h2; by ALPN or detected)
//!   accept      a slot among max_connections before each accept
//!   connection  deadlines: first request head, idle keep-alive; drain
//!   tls         certificates (reloaded when they change), upstream trust
//!   hsts        Strict-Transport-Security on every TLS response
//!   redirect    optional plain-HTTP listener: 301 to https://
//! proxy       resolve client -> normalise the path, one host -> route
//!               -> cookie -> session -> access decision
//!   canonical   the one path and host that are checked and forwarded
//!   forwarded   who the client is (X-Forwarded-* only from trusted proxies)
//!   access      route table, public / session / login
//!   session     cookie signature, id, store lookup
//!   upstream    strip client session headers, inject ours, forward (HTTP or CGI)
//!               take the backend's control headers
//!   session     commit the change atomically, set / clear the cookie
//!   upgrade     WebSocket handshakes: open the tunnel, copy both ways
//! body        stream the response; when it ends:
//!   access_log  the access log line
//!   logging     log lines buffered in memory, written out by one thread
//! ```

pub mod accept;
pub mod access;
pub mod access_log;
pub mod body;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod connection;
pub mod forward;
pub mod forwarded;
pub mod hsts;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod proxy;
pub mod redact;
pub mod redirect;
pub mod respond;
pub mod server;
pub mod session;
pub mod setup;
pub mod tls;
pub mod upgrade;
pub mod upstream;
