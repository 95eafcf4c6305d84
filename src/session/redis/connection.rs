//! The connection to Redis: one server (`redis://`, `rediss://`,
//! `redis+unix://`) or a cluster (`redis+cluster://host:port,host:port`,
//! `rediss+cluster://`), and what a failure means for the proxy.
//!
//! # TLS
//!
//! `rediss://` (and `rediss+cluster://`) connect over TLS (rustls) and
//! verify the server's certificate against the system's trust store;
//! `SSL_CERT_FILE` or `SSL_CERT_DIR` name another one.
//!
//! # When Redis is away
//!
//! Connecting is lazy: the proxy starts whether or not Redis answers, and
//! every operation fails with [`StoreError::Unavailable`] within a few
//! seconds while it does not, so `login` and `session` routes answer 503
//! and `public` routes go on without sessions. The connection (or, for a
//! cluster, the connections and slot map) is remade on the next operation
//! after a failure, so the proxy recovers by itself when Redis is back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use crate::redact::redact_url;
use crate::session::store::StoreError;

/// Longest wait for a TCP connection to a Redis node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest any store operation may take, retries and reconnection included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a Redis store could not be set up (exit code 2 at start).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The URL is not one the client can use.
    #[error("store.url {url}: {reason}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// The connection (one per thread-per-core worker, and one for every other
/// thread), and whether it last got an answer.
pub(super) struct Connection {
    /// Lane 0 outside the workers, lane `1 + n` on worker `n`: each lane
    /// connects on its first use, so its task runs on the runtime of the
    /// thread that uses it.
    links: Box<[Link]>,
    /// Whether the last operation got an answer. Lets the proxy refuse
    /// protected requests at once while Redis is away, instead of handing
    /// out sessions it cannot keep.
    answering: AtomicBool,
    /// Operations that found Redis away, on any lane.
    failures: AtomicU64,
    /// Per lane, `failures` as it was when the lane last got an answer. A
    /// lane behind it has not been used since Redis was away: see
    /// [`Connection::revive`].
    answered_at: Box<[AtomicU64]>,
}

/// A connection that remakes itself: one server, or a cluster.
#[derive(Clone)]
pub(super) enum Link {
    /// One server, over TCP, TLS or a Unix socket.
    Single(ConnectionManager),
    /// A Redis Cluster: a connection per node and the slot map.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

impl Connection {
    /// Prepares the connection for `url` without connecting, for `workers`
    /// thread-per-core workers (0 without them); it is made on first use.
    /// Must be called within a Tokio runtime.
    pub(super) fn open(url: &str, workers: usize) -> Result<Connection, RedisSetupError> {
        let links = (0..=workers)
            .map(|_| Self::make_link(url))
            .collect::<Result<_, _>>()?;
        Ok(Connection {
            links,
            answering: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            answered_at: (0..=workers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn make_link(url: &str) -> Result<Link, RedisSetupError> {
        let bad = |e: RedisError| RedisSetupError::Url {
            url: redact_url(url),
            reason: e.to_string(),
        };
        let link = match cluster_nodes(url) {
            Some(nodes) => {
                let nodes = nodes.map_err(|reason| RedisSetupError::Url {
                    url: redact_url(url),
                    reason,
                })?;
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()
                    .map_err(bad)?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT);
                Link::Cluster(client.get_pending_async_connection_with_config(config))
            }
            None => {
                let client = redis::Client::open(url).map_err(bad)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Link::Single(ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?)
            }
        };
        Ok(link)
    }

    /// Whether the last operation got an answer from Redis.
    pub(super) fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Relaxed)
    }

    /// Whether this is a Redis Cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.links[0], Link::Cluster(_))
    }

    /// This thread's lane: its place in `links` and `answered_at`.
    fn lane(&self) -> usize {
        let lane = crate::workers::worker().map_or(0, |n| n + 1);
        lane.min(self.links.len() - 1)
    }

    /// Brings a lane's connection back after Redis was away, before an
    /// operation is sent on it. Its connection learns that Redis went (or
    /// that its last attempt to reconnect failed) only from a command that
    /// fails, and only then starts to reconnect: without this, each
    /// worker's connection would cost one failed request once Redis is
    /// back. A `PING` takes that failure; a second, sent only after an I/O
    /// error, waits for the new connection. Both may be sent again safely,
    /// and both stay within the operation's time. Only once another lane
    /// has had an answer since: while Redis is away nothing is revived, and
    /// the one lane that finds it back pays one failed operation, as a
    /// single connection always has.
    async fn revive(&self, link: &Link) {
        let ping = || async {
            let mut c = link.clone();
            redis::cmd("PING").query_async::<()>(&mut c).await
        };
        if let Err(e) = ping().await {
            if e.is_io_error() {
                let _ = ping().await;
            }
        }
    }

    /// Runs one operation against a fresh handle on this thread's
    /// connection, within [`OPERATION_TIMEOUT`].
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let lane = self.lane();
        let link = &self.links[lane];
        let failures = self.failures.load(Ordering::Relaxed);
        // Revived once Redis answers again on some lane; while it is away,
        // operations fail as fast as they did.
        let stale = self.answered_at[lane].load(Ordering::Relaxed) != failures
            && self.answering.load(Ordering::Relaxed);
        let attempt = async {
            if stale {
                self.revive(link).await;
            }
            op(link.clone()).await
        };
        let result = match tokio::time::timeout(OPERATION_TIMEOUT, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {OPERATION_TIMEOUT:?}"
            ))),
        };
        let answered = !matches!(result, Err(StoreError::Unavailable(_)));
        if answered {
            self.answered_at[lane].store(failures, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.answering.store(answered, Ordering::Relaxed);
        result
    }
}

/// An answer sessiongate did not expect is "corrupt"; everything else
/// (connection lost or refused, timeouts, a cluster without a node, a
/// server loading or out of memory) is "unavailable": 503 on protected
/// routes, until Redis answers again.
fn classify(e: &RedisError) -> StoreError {
    let unexpected_answer = e.code() != Some("OOM")
        && matches!(
            e.kind(),
            ErrorKind::Parse
                | ErrorKind::UnexpectedReturnType
                | ErrorKind::Server(
                    ServerErrorKind::ResponseError
                        | ServerErrorKind::ExecAbort
                        | ServerErrorKind::CrossSlot
                        | ServerErrorKind::NoScript
                )
        );
    if unexpected_answer {
        StoreError::Corrupt(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// `redis+cluster://[auth@]h1:p1,h2:p2[/...]` as one URL per node; `None`
/// for a URL that is not a cluster URL.
fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis://", rest)
    } else {
        ("rediss://", url.strip_prefix("rediss+cluster://")?)
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let (hosts, tail) = match hosts.find(['/', '?']) {
        Some(at) => hosts.split_at(at),
        None => (hosts, ""),
    };
    // A database number means nothing to a cluster; options after `?` are kept.
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|h| format!("{scheme}{auth}{h}{query}"))
        .collect();
    if hosts.split(',').any(|h| h.trim().is_empty()) {
        return Some(Err(
            "a cluster URL lists host:port pairs separated by commas".into(),
        ));
    }
    Some(Ok(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_node_urls() {
        assert!(cluster_nodes("redis://127.0.0.1:6379/0").is_none());
        assert_eq!(
            cluster_nodes("redis+cluster://h1:7000,h2:7001").unwrap(),
            Ok(vec![
                "redis://h1:7000".to_string(),
                "redis://h2:7001".to_string()
            ])
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://:pw@h1:7000,h2:7001/0?protocol=resp3").unwrap(),
            Ok(vec![
                "rediss://:pw@h1:7000?protocol=resp3".to_string(),
                "rediss://:pw@h2:7001?protocol=resp3".to_string()
            ])
        );
        assert!(
            cluster_nodes("redis+cluster://h1:7000,,h2:1")
                .unwrap()
                .is_err()
        );
    }
}
