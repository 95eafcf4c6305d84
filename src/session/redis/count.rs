//! Counting the stored sessions ([`SessionStore::count`]): SCAN on the
//! only server, or on every primary of a cluster in turn, telling sessions
//! from the marks of moved ids. It walks every key under the prefix, a cost
//! no request should pay.
//!
//! [`SessionStore::count`]: crate::session::SessionStore::count

use redis::Value;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::RedisStore;
use super::connection::Link;
use super::record::number;
use crate::session::id::SessionId;
use crate::session::store::StoreError;

impl RedisStore {
    /// Counts the sessions on the only server, or on every cluster primary.
    pub(super) async fn count_sessions(&self) -> Result<usize, StoreError> {
        if !self.conn.is_cluster() {
            return self.count_on(None).await;
        }
        let mut total = 0;
        for node in self.primaries().await? {
            total += self.count_on(Some(node)).await?;
        }
        Ok(total)
    }

    /// Every primary of the cluster, as `(host, port)`.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let nodes: String = self
            .conn
            .run(
                |mut c| async move { redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await },
            )
            .await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                // ip:port@cport[,hostname]
                let addr = fields.get(1)?.split('@').next()?;
                let (host, port) = addr.rsplit_once(':')?;
                Some((host.to_string(), port.parse().ok()?))
            })
            .collect())
    }

    /// Counts the session keys on one node (or the only server), by SCAN.
    /// Keys named like a session are then asked whether they hold one (and
    /// not the mark of a moved id), a pipeline per SCAN batch on that node.
    async fn count_on(&self, node: Option<(String, u16)>) -> Result<usize, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        let mut count = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let route = node.clone().map(|(host, port)| {
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port })
            });
            let reply: Value = self
                .conn
                .run(|c| async move {
                    match (c, route) {
                        (Link::Cluster(mut cluster), Some(route)) => {
                            cluster.route_command(scan, route).await
                        }
                        (mut c, _) => scan.query_async(&mut c).await,
                    }
                })
                .await?;
            let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
                .map_err(|e| StoreError::Corrupt(format!("SCAN reply: {e}")))?;
            let named: Vec<String> = keys
                .into_iter()
                .filter(|k| {
                    k.strip_prefix(&self.prefix)
                        .and_then(SessionId::from_base64)
                        .is_some()
                })
                .collect();
            count += self.sessions_among(named, node.clone()).await?;
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    /// How many of `keys` (all on `node`, or on the only server) hold a
    /// session rather than the mark of a moved id.
    async fn sessions_among(
        &self,
        keys: Vec<String>,
        node: Option<(String, u16)>,
    ) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("HEXISTS").arg(key).arg("c");
        }
        let replies: Vec<Value> = self
            .conn
            .run(|c| async move {
                match (c, node) {
                    (Link::Cluster(mut cluster), Some((host, port))) => {
                        let route = SingleNodeRoutingInfo::ByAddress { host, port };
                        cluster.route_pipeline(pipe, 0, keys.len(), route).await
                    }
                    (mut c, _) => pipe.query_async(&mut c).await,
                }
            })
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(number)
            .filter(|&n| n == 1)
            .count())
    }
}

/// Escapes the glob characters of SCAN's MATCH.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
