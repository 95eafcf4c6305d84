//! The proxy in this process, from a TOML string, on 127.0.0.1:0 and with
//! a clock that moves only when a test says so.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sessiongate::clock::Clock;
use sessiongate::config::Config;
use sessiongate::server::{self, Running};

/// A test secret key (32+ characters).
pub const KEY: &str = "test-key-0123456789-abcdefghijklmnop";

/// A proxy running in this process.
pub struct Proxy {
    pub addr: SocketAddr,
    pub running: Option<Running>,
    pub time: Arc<AtomicU64>,
}

impl Proxy {
    /// Starts a proxy from config text; `listen` is forced to an ephemeral port.
    /// Time starts at a fixed instant and moves only with [`Proxy::advance`].
    pub async fn start(toml: &str) -> Proxy {
        let config: Config = toml
            .parse()
            .unwrap_or_else(|e| panic!("bad test config:\n{e}"));
        Proxy::start_with(config).await
    }

    /// Starts a proxy from a config already parsed (with secrets of the
    /// test's own, say), as [`Proxy::start`] does.
    pub async fn start_with(mut config: Config) -> Proxy {
        config.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
        // In-process proxies run from the repository root; a snapshot file
        // named by a shipped config must not be read or written from there.
        config.store.snapshot = None;
        if let (Some(n), None) = (super::test_workers(), config.server.workers) {
            config.server.workers = Some(n);
            config.server.thread_per_core = true;
        }
        let time = Arc::new(AtomicU64::new(1_700_000_000));
        let clock = Clock::Manual(time.clone());
        let store = server::build_store(&config, &clock).await.unwrap();
        let running = server::start_with_clock(config, store, clock)
            .await
            .unwrap();
        Proxy {
            addr: running.addrs[0],
            running: Some(running),
            time,
        }
    }

    /// Moves the proxy's clock forward.
    pub fn advance(&self, secs: u64) {
        self.time.fetch_add(secs, Ordering::Relaxed);
    }

    /// The proxy's clock: unix seconds.
    pub fn now(&self) -> u64 {
        self.time.load(Ordering::Relaxed)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn gate(&self) -> &sessiongate::proxy::Gate {
        &self.running.as_ref().unwrap().gate
    }
}

/// A config with one route per `(path, upstream, access)`, plus extra TOML.
pub fn config(routes: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = format!("[session]\nsecret_keys = [\"{KEY}\"]\n{extra}\n");
    for (path, upstream, access) in routes {
        s.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\naccess = \"{access}\"\n"
        ));
    }
    s
}
