//! The integration tests, one module per subject, built as one binary: one
//! link of the test dependencies instead of one per file, and one process
//! whose test threads share all of them.
//!
//! [`harness`] holds everything the modules start: the proxy in this
//! process, the real `sessiongate` binary, recording backends, `redis-server`,
//! httpd and chromedriver, and [`harness::eventually`] to wait on any of them.
//! A new subject is a file here and one `mod` line below.
//!
//! `cargo test --test it MODULE::` runs one module, e.g. `cargo test --test it cli::`.

mod harness;

mod admin;
mod audit;
mod backend_login;
mod basic_auth;
mod browser;
mod browser_csrf;
mod browser_replay;
mod cgi_gateway;
mod check;
mod cli;
mod connections;
mod counters;
mod csrf;
mod demo;
mod docker;
mod docs;
mod expiry;
mod expiry_warning;
mod fastcgi;
mod gate;
mod groups;
mod login;
mod login_blocks;
mod persistence;
mod proxy;
mod real_apps;
mod redis;
mod redis_tls;
mod replay;
mod revocation;
mod rotation;
mod script_env;
mod signed_assertion;
mod static_files;
mod store_contract;
mod tls;
mod tls_binary;
mod upstream_pool;
mod websocket;
mod workers;
mod your_sessions;
