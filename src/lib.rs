//! sessiongate: a reverse proxy that gives sessions to web sites that have none.
//!
//! A request travels through these modules, in this order:
//!
//! ```text
//! server      accept -> (TLS) -> hyper auto (HTTP/1.1, h2)
//!   tls         certificates (reloaded when they change), upstream trust
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

pub mod access;
pub mod access_log;
pub mod body;
pub mod builtin;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod forwarded;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod proxy;
pub mod redact;
pub mod redirect;
pub mod respond;
pub mod server;
pub mod session;
pub mod tls;
pub mod upgrade;
pub mod upstream;
