//! The Redis store: sessions shared by every sessiongate instance that
//! points at the same Redis server or Redis Cluster.
//!
//! # Keys
//!
//! ```text
//! {key_prefix}{id, base64url}     hash: c created, s last_seen, d data (urlencoded),
//!                                       u user (absent while anonymous), i client IP
//!                                 or, once a login moved the session away, only
//!                                       r the time of that login (TTL ROTATED_FOR)
//! {key_prefix}user:{user}         sorted set: the base64url ids of the user's sessions,
//!                                 scored by the end of their absolute lifetime
//! ```
//!
//! The mark of a moved id lives in the old session's own key, so it is read
//! by the same HMGET as the session (a plain request pays nothing for it),
//! it is written by the same script that deletes the session (one step on
//! one node, in a cluster too), and it is in the same slot whatever the
//! prefix. Only [`SessionStore::count`] has to look inside the keys to tell
//! marks from sessions.
//!
//! A session key's TTL is its remaining life: the idle deadline, never past
//! `created + max_lifetime`. Expiry is also checked against the proxy's own
//! clock inside every script, so Redis's timer only does the cleaning. The
//! user sets are an index for "log this user out everywhere" and the admin
//! listing: each login drops the ids whose lifetime is over, the listing
//! drops those found dead, and the set expires `max_lifetime` after the
//! user's last login, so it stays as small as the user's live sessions.
//!
//! # Atomicity
//!
//! Every change is one Lua script (EVALSHA, loaded again by the client
//! after a Redis restart) that reads, checks and writes in one step on the
//! server: data changes are applied there, so two instances updating one
//! session never lose each other's keys, and `max_data_bytes` and the rule
//! that only an update asked to create may create are enforced there too.
//! The change travels already urlencoded, key by key, the way the stored
//! data is encoded, so the script works on encoded pairs and its result is
//! byte for byte what [`DataChange::apply`] gives.
//!
//! # Login in a Redis Cluster
//!
//! Login moves a session to a new, unrelated id. On one Redis server (or
//! when `key_prefix` holds a hash tag such as `"{sg}:"`, which puts every
//! key in one slot) that is one script over the old key, the new key and
//! the user's set. In a cluster the two ids hash to different slots, which
//! no script may span, so the move takes three steps, ordered so that a
//! failure between them can only log the visitor out, never leave two live
//! sessions or a session the index does not know:
//!
//! 1. add the new id to the user's set (a dangling member is harmless);
//! 2. on the old key's node: apply the change, check its size, replace the
//!    old session by the mark of a moved id and return its data (nothing
//!    changes if it is too large);
//! 3. on the new key's node: create the logged-in session with that data.
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

mod scripts;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use self::scripts::Scripts;
use super::data::DataChange;
use super::id::SessionId;
use super::store::{
    Lookup, NewSession, Policy, ROTATED_FOR, SessionRecord, SessionStore, SessionSummary,
    StoreError,
};
use crate::redact::redact_url;

/// Longest wait for a TCP connection to a Redis node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest any store operation may take, retries and reconnection included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// Ids handled per batch when a user's sessions are listed or removed.
const BATCH: usize = 64;
/// The fields of a session key a lookup reads: a session's, then a mark's.
const LOOKUP_FIELDS: [&str; 6] = ["c", "s", "d", "u", "i", "r"];

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

/// Sessions kept in Redis or Redis Cluster.
pub struct RedisStore {
    link: Link,
    prefix: String,
    /// Whether every key lands in one slot, so one script may touch several.
    colocated: bool,
    scripts: Scripts,
    /// Whether the last operation got an answer. Lets the proxy refuse
    /// protected requests at once while Redis is away, instead of handing
    /// out sessions it cannot keep.
    answering: AtomicBool,
}

/// A connection that remakes itself: one server, or a cluster.
#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
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

impl RedisStore {
    /// Prepares a store for `url` (`redis://`, `rediss://`, `redis+unix://`,
    /// or `redis+cluster://host:port,host:port`) without connecting; the
    /// connection is made on first use. Must be called within a Tokio runtime.
    pub fn open(url: &str, key_prefix: &str) -> Result<RedisStore, RedisSetupError> {
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
        let colocated = matches!(link, Link::Single(_)) || has_hash_tag(key_prefix);
        Ok(RedisStore {
            link,
            prefix: key_prefix.to_string(),
            colocated,
            answering: AtomicBool::new(true),
            scripts: Scripts::new(),
        })
    }

    /// Whether the last operation got an answer from Redis.
    pub fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Relaxed)
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}{}", self.prefix, id.to_base64())
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// Runs one operation against a fresh handle on the shared connection,
    /// within [`OPERATION_TIMEOUT`].
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(OPERATION_TIMEOUT, op(self.link.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis did not answer within {OPERATION_TIMEOUT:?}"
            ))),
        };
        let answered = !matches!(result, Err(StoreError::Unavailable(_)));
        self.answering.store(answered, Ordering::Relaxed);
        result
    }

    /// The three-step login for keys in different cluster slots (see the
    /// module documentation for the order and why).
    #[allow(clippy::too_many_arguments)] // one login needs every input
    async fn login_in_steps(
        &self,
        old: Option<&SessionId>,
        new: &SessionId,
        user: &str,
        change: &DataChange,
        seed: NewSession<'_>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        let index = self.user_key(user);
        let member = new.to_base64();
        self.run(|mut c| async move {
            let mut inv = self.scripts.login_index.prepare_invoke();
            inv.key(&index)
                .arg(&member)
                .arg(now)
                .arg(policy.max_lifetime);
            inv.invoke_async::<Value>(&mut c).await
        })
        .await?;
        let seed_ip = seed.ip.map(|ip| ip.to_string()).unwrap_or_default();
        // `None`: step 2 already applied the change.
        let (base, ip, put_change) = match old {
            Some(old) => {
                let key = self.session_key(old);
                let taken = self
                    .run(|mut c| async move {
                        let mut inv = self.scripts.login_take.prepare_invoke();
                        inv.key(&key)
                            .arg(now)
                            .arg(policy.idle_timeout)
                            .arg(policy.max_lifetime)
                            .arg(policy.max_data_bytes)
                            .arg(seed.initial);
                        push_change(&mut inv, change);
                        inv.invoke_async::<Value>(&mut c).await
                    })
                    .await?;
                let (data, old_ip) = parse_taken(taken)?;
                let ip = if seed_ip.is_empty() {
                    old_ip.unwrap_or_default()
                } else {
                    seed_ip
                };
                (data, ip, None)
            }
            None => (seed.initial.to_string(), seed_ip, Some(change)),
        };
        let key = self.session_key(new);
        let reply = self
            .run(|mut c| async move {
                let mut inv = self.scripts.login_put.prepare_invoke();
                inv.key(&key)
                    .arg(now)
                    .arg(policy.idle_timeout)
                    .arg(policy.max_lifetime)
                    .arg(policy.max_data_bytes)
                    .arg(user)
                    .arg(&base)
                    .arg(&ip);
                match put_change {
                    Some(change) => {
                        inv.arg(1);
                        push_change(&mut inv, change);
                    }
                    None => {
                        inv.arg(0);
                    }
                }
                inv.invoke_async::<Value>(&mut c).await
            })
            .await?;
        parse_record(reply)
    }

    /// Every primary of the cluster, as `(host, port)`.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, StoreError> {
        let nodes: String = self
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

impl SessionStore for RedisStore {
    async fn lookup(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        let key = self.session_key(id);
        // Most lookups only read: one HMGET, cheaper for Redis than a
        // script, which also reads the mark a login may have left. Only
        // when the idle deadline is due for a refresh (at most once per
        // touch_interval) does the load script read and touch atomically.
        let mut fields: Vec<Value> = self
            .run(|mut c| {
                let key = &key;
                async move {
                    redis::cmd("HMGET")
                        .arg(key)
                        .arg(&LOOKUP_FIELDS)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        let mark = (fields.len() == LOOKUP_FIELDS.len())
            .then(|| fields.pop())
            .flatten()
            .and_then(number);
        let Some(record) = record_from_fields(fields)? else {
            return Ok(match mark {
                Some(at) if now < at.saturating_add(ROTATED_FOR) => Lookup::Rotated,
                _ => Lookup::Absent,
            });
        };
        if record.is_expired(now, policy) {
            return Ok(Lookup::Absent);
        }
        if !(now.saturating_sub(record.last_seen) >= policy.touch_interval
            && now > record.last_seen)
        {
            return Ok(Lookup::Live(record));
        }
        let reply = self
            .run(|mut c| async move {
                let mut inv = self.scripts.load.prepare_invoke();
                inv.key(&key)
                    .arg(now)
                    .arg(policy.idle_timeout)
                    .arg(policy.max_lifetime)
                    .arg(policy.touch_interval);
                inv.invoke_async::<Value>(&mut c).await
            })
            .await?;
        parse_lookup(reply)
    }

    async fn update(
        &self,
        id: &SessionId,
        change: &DataChange,
        create: Option<NewSession<'_>>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        let key = self.session_key(id);
        let reply = self
            .run(|mut c| async move {
                let mut inv = self.scripts.update.prepare_invoke();
                inv.key(&key)
                    .arg(now)
                    .arg(policy.idle_timeout)
                    .arg(policy.max_lifetime)
                    .arg(policy.max_data_bytes);
                match &create {
                    Some(seed) => inv
                        .arg(1)
                        .arg(seed.created)
                        .arg(seed.initial)
                        .arg(seed.ip.map(|ip| ip.to_string()).unwrap_or_default()),
                    None => inv.arg(0).arg(0).arg("").arg(""),
                };
                push_change(&mut inv, change);
                inv.invoke_async::<Value>(&mut c).await
            })
            .await?;
        parse_record(reply)
    }

    #[allow(clippy::too_many_arguments)] // one atomic step needs every input
    async fn login(
        &self,
        old: Option<&SessionId>,
        new: &SessionId,
        user: &str,
        change: &DataChange,
        seed: NewSession<'_>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        if !self.colocated {
            return self
                .login_in_steps(old, new, user, change, seed, now, policy)
                .await;
        }
        let new_key = self.session_key(new);
        let index = self.user_key(user);
        let old_key = old.map(|o| self.session_key(o));
        let member = new.to_base64();
        let reply = self
            .run(|mut c| async move {
                let mut inv = self.scripts.login.prepare_invoke();
                inv.key(&new_key).key(&index);
                if let Some(old_key) = &old_key {
                    inv.key(old_key);
                }
                inv.arg(now)
                    .arg(policy.idle_timeout)
                    .arg(policy.max_lifetime)
                    .arg(policy.max_data_bytes)
                    .arg(user)
                    .arg(&member)
                    .arg(seed.initial)
                    .arg(seed.ip.map(|ip| ip.to_string()).unwrap_or_default());
                push_change(&mut inv, change);
                inv.invoke_async::<Value>(&mut c).await
            })
            .await?;
        parse_record(reply)
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = self.session_key(id);
        self.run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await })
            .await
    }

    async fn remove_user(&self, user: &str) -> Result<usize, StoreError> {
        let index = self.user_key(user);
        let members = self.members(&index).await?;
        let mut removed = 0;
        for batch in members.chunks(BATCH) {
            let results = join_all(batch.iter().map(|member| {
                let key = format!("{}{member}", self.prefix);
                self.run(move |mut c| async move {
                    let mut inv = self.scripts.drop_if_user.prepare_invoke();
                    inv.key(&key).arg(user);
                    inv.invoke_async::<i64>(&mut c).await
                })
            }))
            .await;
            for r in results {
                removed += usize::from(r? == 1);
            }
            // Only the members handled: a login meanwhile keeps its own.
            self.forget(&index, batch).await?;
        }
        Ok(removed)
    }

    async fn user_sessions(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let index = self.user_key(user);
        let members = self.members(&index).await?;
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for batch in members.chunks(BATCH) {
            let replies = join_all(batch.iter().map(|member| {
                let key = format!("{}{member}", self.prefix);
                self.run(move |mut c| async move {
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&["c", "s", "d", "u", "i"][..])
                        .query_async::<Value>(&mut c)
                        .await
                })
            }))
            .await;
            for (member, reply) in batch.iter().zip(replies) {
                let record = match reply? {
                    Value::Array(mut fields) if fields.first() != Some(&Value::Nil) => {
                        fields.insert(0, Value::SimpleString("ok".into()));
                        Some(parse_record(Value::Array(fields))?)
                    }
                    _ => None,
                };
                let id = SessionId::from_base64(member);
                match (id, record) {
                    (Some(id), Some(record))
                        if record.user.as_deref() == Some(user)
                            && !record.is_expired(now, policy) =>
                    {
                        live.push(SessionSummary { id, record });
                    }
                    _ => dead.push(member.clone()),
                }
            }
        }
        self.forget(&index, &dead).await?;
        Ok(live)
    }

    async fn count(&self) -> Result<usize, StoreError> {
        if !self.is_cluster() {
            return self.count_on(None).await;
        }
        let mut total = 0;
        for node in self.primaries().await? {
            total += self.count_on(Some(node)).await?;
        }
        Ok(total)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }
}

impl RedisStore {
    async fn members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.run(|mut c| async move {
            redis::cmd("ZRANGE")
                .arg(index)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn forget(&self, index: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        self.run(|mut c| async move {
            redis::cmd("ZREM")
                .arg(index)
                .arg(members)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }
}

/// Appends a data change to a script's arguments: the number of keys to
/// delete, those keys, the number of keys to set, then key, value pairs;
/// every key and value urlencoded as the stored data is.
fn push_change(inv: &mut redis::ScriptInvocation<'_>, change: &DataChange) {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    inv.arg(change.delete.len());
    for k in &change.delete {
        inv.arg(enc(k));
    }
    inv.arg(change.set.len());
    for (k, v) in &change.set {
        inv.arg(enc(k)).arg(enc(v));
    }
}

/// Reads the load script's reply: nothing, `{"rotated"}`, or a record.
fn parse_lookup(reply: Value) -> Result<Lookup, StoreError> {
    match &reply {
        Value::Nil => Ok(Lookup::Absent),
        Value::Array(fields)
            if fields.len() == 1 && text(fields[0].clone()).as_deref() == Some("rotated") =>
        {
            Ok(Lookup::Rotated)
        }
        _ => parse_record(reply).map(Lookup::Live),
    }
}

/// Reads `{status, ...}` replies: `{"ok", created, last_seen, data, user|nil,
/// ip|nil}`, `{"gone"}` or `{"too_large", size}`.
fn parse_record(reply: Value) -> Result<SessionRecord, StoreError> {
    record_from_fields(status_fields(reply)?)?.ok_or_else(|| malformed("created"))
}

/// A record from `HMGET c s d u i`; `None` when the session does not exist.
fn record_from_fields(fields: Vec<Value>) -> Result<Option<SessionRecord>, StoreError> {
    let mut it = fields.into_iter();
    let (Some(created), Some(last_seen)) = (it.next().and_then(number), it.next().and_then(number))
    else {
        return Ok(None);
    };
    let data = it.next().and_then(text).unwrap_or_default();
    let user = it.next().and_then(text).map(Arc::from);
    let ip = match it.next().and_then(text) {
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| malformed("ip"))?),
        None => None,
    };
    Ok(Some(SessionRecord {
        created,
        last_seen,
        user,
        data: Arc::from(data),
        ip,
    }))
}

/// Reads the reply of the first login step: `{"ok", data, ip|nil}`.
fn parse_taken(reply: Value) -> Result<(String, Option<String>), StoreError> {
    let mut it = status_fields(reply)?.into_iter();
    let data = it.next().and_then(text).unwrap_or_default();
    Ok((data, it.next().and_then(text)))
}

/// The fields after an `"ok"` status, or the error the status stands for.
fn status_fields(reply: Value) -> Result<Vec<Value>, StoreError> {
    let Value::Array(mut fields) = reply else {
        return Err(malformed("reply"));
    };
    if fields.is_empty() {
        return Err(malformed("reply"));
    }
    let status = text(fields.remove(0)).unwrap_or_default();
    match status.as_str() {
        "ok" => Ok(fields),
        "gone" => Err(StoreError::Gone),
        "too_large" => {
            let mut it = fields.into_iter().map(|v| {
                number(v).map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
            });
            Err(StoreError::TooLarge {
                size: it.next().unwrap_or(usize::MAX),
                limit: it.next().unwrap_or(0),
            })
        }
        _ => Err(malformed("status")),
    }
}

fn malformed(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} in a Redis reply"))
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

fn number(v: Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(n).ok(),
        other => text(other)?.parse().ok(),
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

/// Whether `prefix` holds a complete, non-empty Redis hash tag, which puts
/// every key that starts with it in the same cluster slot.
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .is_some_and(|open| prefix[open + 1..].find('}').is_some_and(|len| len > 0))
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

    #[test]
    fn hash_tags_in_the_prefix() {
        assert!(has_hash_tag("{sg}:"));
        assert!(has_hash_tag("app:{s}"));
        assert!(!has_hash_tag("sg:"));
        assert!(!has_hash_tag("{}sg:"));
        assert!(!has_hash_tag("{sg:"));
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn replies_parse_or_fail_typed() {
        let ok = Value::Array(vec![
            Value::BulkString(b"ok".to_vec()),
            Value::Int(10),
            Value::BulkString(b"12".to_vec()),
            Value::BulkString(b"a=1".to_vec()),
            Value::Nil,
            Value::BulkString(b"192.0.2.1".to_vec()),
        ]);
        let r = parse_record(ok).unwrap();
        assert_eq!((r.created, r.last_seen, &*r.data), (10, 12, "a=1"));
        assert_eq!(r.user, None);
        assert_eq!(r.ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            parse_record(Value::Array(vec![Value::SimpleString("gone".into())])),
            Err(StoreError::Gone)
        );
        assert!(matches!(
            parse_record(Value::Array(vec![
                Value::SimpleString("too_large".into()),
                Value::Int(5000)
            ])),
            Err(StoreError::TooLarge { size: 5000, .. })
        ));
        assert_eq!(parse_lookup(Value::Nil), Ok(Lookup::Absent));
        assert_eq!(
            parse_lookup(Value::Array(vec![Value::BulkString(b"rotated".to_vec())])),
            Ok(Lookup::Rotated)
        );
        assert!(matches!(
            parse_lookup(Value::Array(vec![
                Value::SimpleString("ok".into()),
                Value::Int(1),
                Value::Int(2),
                Value::Nil,
                Value::Nil,
                Value::Nil,
            ])),
            Ok(Lookup::Live(_))
        ));
        for junk in [
            Value::Nil,
            Value::Int(3),
            Value::Array(vec![]),
            Value::Array(vec![Value::SimpleString("what".into())]),
            Value::Array(vec![Value::SimpleString("ok".into()), Value::Nil]),
        ] {
            assert!(matches!(parse_record(junk), Err(StoreError::Corrupt(_))));
        }
    }
}
