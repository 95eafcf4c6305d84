//! Everything the tests start, each on 127.0.0.1 with a port the OS picked,
//! each stopped when its handle drops:
//!
//! - [`proxy`]: the proxy in this process, from a TOML string, with a
//!   clock the test moves ([`Proxy::advance`]);
//! - [`binary`]: the real `sessiongate` binary, from a TOML string, ready
//!   when it has logged where it listens; and its subcommands;
//! - [`backend`]: a backend that records what it received;
//! - [`client`]: HTTP clients, cookies, and raw bytes over TCP;
//! - [`site`]: a small site behind the proxy, and procedures every store
//!   must pass (key rotation, requests racing a login);
//! - [`tls`]: a throw-away CA, certificate files, TLS clients and backends;
//! - [`redis_server`]: `redis-server` and a Redis Cluster;
//! - [`programs`]: Apache httpd and chromedriver;
//! - [`process`]: [`eventually`], the one way to wait, and the child
//!   process every program above runs as.

pub mod backend;
pub mod binary;
pub mod client;
pub mod form;
pub mod process;
pub mod programs;
pub mod proxy;
pub mod redis_server;
pub mod site;
pub mod tls;

use std::path::Path;

pub use backend::{Backend, Reply, Seen};
pub use binary::{Binary, RunningBinary};
pub use client::{browser, client, raw, session_cookie, set_cookies};
pub use process::{BUDGET, eventually};
pub use proxy::{KEY, Proxy, config};

/// `SESSIONGATE_TEST_WORKERS=N` (N > 1) runs every proxy the tests start,
/// in this process or as the binary, with `N` thread-per-core workers
/// (`server.workers = N`, `server.thread_per_core = true`), unless the
/// test's config chooses its own `workers`: the whole suite once that way
/// shows the workers keep the contract.
pub fn test_workers() -> Option<usize> {
    std::env::var("SESSIONGATE_TEST_WORKERS")
        .ok()?
        .parse()
        .ok()
        .filter(|&n: &usize| n > 1)
}

/// The repository: the shipped configs' relative paths resolve against it.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
