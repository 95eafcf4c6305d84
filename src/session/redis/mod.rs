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
//! {key_prefix}tag:{tag}           sorted set, the same for the ids whose log tag
//!                                 (SessionId::log_hash) is {tag}: almost always one
//! {key_prefix}kept:{id}           string: a request kept across a sign-in (kept.rs)
//! ```
//!
//! The tag's set lets an operator end one session by the tag the logs and
//! the admin listing show, without the id: a direct lookup, where finding
//! the tag otherwise would mean a SCAN of every key on every node and a
//! hash of each id. It is written by the login, in the same script as the
//! user's set (or the same first step in a cluster), and expires like it.
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
//! clock inside every script, so Redis's timer only does the cleaning.
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
//! byte for byte what [`DataChange::apply`] gives. A login in a cluster,
//! whose keys no one script may span, is the exception: three scripts in
//! an order that fails safe (see `login.rs`).
//!
//! # Where things are
//!
//! ```text
//! mod.rs          RedisStore, and SessionStore: lookup, update, remove, ping
//! connection.rs   one server or a cluster, TLS, timeouts; failure -> StoreError
//! record.rs       script arguments out; hash fields and replies -> SessionRecord
//! scripts.rs      the Lua scripts, from lua/*.lua
//! login.rs        login in one script, or in three steps in a cluster
//! user_index.rs   each user's and each tag's set of ids: log out
//!                 everywhere, list, end by tag, and logout's cleanup
//! count.rs        counting sessions, node by node
//! kept.rs         requests kept across a sign-in: SET PX, taken once by a script
//! ```

mod connection;
mod count;
mod kept;
mod login;
mod record;
mod scripts;
mod user_index;

pub use self::connection::RedisSetupError;

use redis::Value;

use self::connection::Connection;
use self::login::Login;
use self::record::{
    MARK_FIELD, RECORD_FIELDS, ip_arg, number, parse_lookup, parse_record, push_change,
    push_limits, record_from_fields,
};
use self::scripts::Scripts;
use super::data::DataChange;
use super::id::{LogTag, SessionId};
use super::store::{
    Lookup, NewSession, Policy, ROTATED_FOR, SessionRecord, SessionStore, SessionSummary, SignIn,
    StoreError,
};

/// Sessions kept in Redis or Redis Cluster.
pub struct RedisStore {
    conn: Connection,
    prefix: String,
    /// Whether every key lands in one slot, so one script may touch several.
    colocated: bool,
    scripts: Scripts,
}

impl RedisStore {
    /// Prepares a store for `url` (`redis://`, `rediss://`, `redis+unix://`,
    /// or `redis+cluster://host:port,host:port`) without connecting; the
    /// connection is made on first use. Must be called within a Tokio runtime.
    pub fn open(url: &str, key_prefix: &str) -> Result<RedisStore, RedisSetupError> {
        RedisStore::open_for_workers(url, key_prefix, 0)
    }

    /// [`RedisStore::open`] with a connection of its own for each of
    /// `workers` thread-per-core workers (see [`crate::workers`]).
    pub fn open_for_workers(
        url: &str,
        key_prefix: &str,
        workers: usize,
    ) -> Result<RedisStore, RedisSetupError> {
        let conn = Connection::open(url, workers)?;
        let colocated = !conn.is_cluster() || has_hash_tag(key_prefix);
        Ok(RedisStore {
            conn,
            prefix: key_prefix.to_string(),
            colocated,
            scripts: Scripts::new(),
        })
    }

    /// Whether the last operation got an answer from Redis.
    pub fn is_answering(&self) -> bool {
        self.conn.is_answering()
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// The key of a session, or of the mark a login left on its id.
    fn session_key(&self, id: &SessionId) -> String {
        self.member_key(&id.to_base64())
    }

    /// The session key of an id as a user's set holds it, in base64url.
    fn member_key(&self, member: &str) -> String {
        format!("{}{member}", self.prefix)
    }

    /// The key of a user's set of session ids.
    fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// The key of the set of session ids whose log tag is `tag`.
    fn tag_key(&self, tag: &LogTag) -> String {
        format!("{}tag:{tag}", self.prefix)
    }
}

impl RedisStore {
    /// What the session key `key` holds, read with one HMGET and left as
    /// it is: the idle deadline is not refreshed.
    async fn read(&self, key: &str, now: u64, policy: &Policy) -> Result<Lookup, StoreError> {
        let mut fields: Vec<Value> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&RECORD_FIELDS)
                    .arg(MARK_FIELD)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mark = (fields.len() == RECORD_FIELDS.len() + 1)
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
        Ok(Lookup::Live(record))
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
        let record = match self.read(&key, now, policy).await? {
            Lookup::Live(record) => record,
            other => return Ok(other),
        };
        if !(now.saturating_sub(record.last_seen) >= policy.touch_interval
            && now > record.last_seen)
        {
            return Ok(Lookup::Live(record));
        }
        let reply = self
            .conn
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

    async fn peek(&self, id: &SessionId, now: u64, policy: &Policy) -> Result<Lookup, StoreError> {
        self.read(&self.session_key(id), now, policy).await
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
            .conn
            .run(|mut c| async move {
                let mut inv = self.scripts.update.prepare_invoke();
                inv.key(&key);
                push_limits(&mut inv, now, policy);
                match &create {
                    Some(seed) => inv
                        .arg(1)
                        .arg(seed.created)
                        .arg(seed.initial)
                        .arg(ip_arg(seed.ip)),
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
        who: &SignIn<'_>,
        change: &DataChange,
        seed: NewSession<'_>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        let login = Login {
            old,
            new,
            who,
            change,
            seed,
            now,
            policy,
        };
        if self.colocated {
            self.login_at_once(login).await
        } else {
            self.login_in_steps(login).await
        }
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        self.end_one(id).await
    }

    async fn sessions_of(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.live_sessions_of(user, now, policy).await
    }

    async fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        self.end_all_of(user).await
    }

    async fn end_session_tagged(
        &self,
        tag: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        match LogTag::parse(tag) {
            Some(tag) => self.end_tagged(&tag, now, policy).await,
            None => Ok(false),
        }
    }

    async fn keep_request(
        &self,
        id: &SessionId,
        request: &[u8],
        now: u64,
        ttl: u64,
    ) -> Result<(), StoreError> {
        self.keep(id, request, now, ttl).await
    }

    async fn take_request(&self, id: &SessionId, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.take(id, now).await
    }

    async fn count(&self) -> Result<usize, StoreError> {
        self.count_sessions().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .run(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }
}

/// Whether `prefix` holds a complete, non-empty Redis hash tag, which puts
/// every key that starts with it in the same cluster slot.
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .is_some_and(|open| prefix[open + 1..].find('}').is_some_and(|len| len > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_in_the_prefix() {
        assert!(has_hash_tag("{sg}:"));
        assert!(has_hash_tag("app:{s}"));
        assert!(!has_hash_tag("sg:"));
        assert!(!has_hash_tag("{}sg:"));
        assert!(!has_hash_tag("{sg:"));
    }
}
