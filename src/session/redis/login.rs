//! Login: a session moved to a new, unrelated id, in one script when every
//! key is in one slot, in three steps when a Redis Cluster puts them apart.
//!
//! On one Redis server (or when `key_prefix` holds a hash tag such as
//! `"{sg}:"`, which puts every key in one slot) a login is one script over
//! the old key, the new key and the user's set. In a cluster the two ids
//! hash to different slots, which no script may span, so the move takes
//! three steps, ordered so that a failure between them can only log the
//! visitor out, never leave two live sessions or a session the index does
//! not know:
//!
//! 1. add the new id to the user's set (a dangling member is harmless);
//! 2. on the old key's node: apply the change, check its size, replace the
//!    old session by the mark of a moved id and return its data (nothing
//!    changes if it is too large);
//! 3. on the new key's node: create the logged-in session with that data.

use redis::Value;

use super::RedisStore;
use super::record::{parse_record, parse_taken, push_change};
use crate::session::data::DataChange;
use crate::session::id::SessionId;
use crate::session::store::{NewSession, Policy, SessionRecord, StoreError};

impl RedisStore {
    /// The login in one script, `lua/login.lua`, for keys in one slot.
    #[allow(clippy::too_many_arguments)] // one atomic step needs every input
    pub(super) async fn login_at_once(
        &self,
        old: Option<&SessionId>,
        new: &SessionId,
        user: &str,
        change: &DataChange,
        seed: NewSession<'_>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        let new_key = self.session_key(new);
        let index = self.user_key(user);
        let old_key = old.map(|o| self.session_key(o));
        let member = new.to_base64();
        let reply = self
            .conn
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

    /// The three-step login for keys in different cluster slots (see the
    /// module documentation for the order and why).
    #[allow(clippy::too_many_arguments)] // one login needs every input
    pub(super) async fn login_in_steps(
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
        self.conn
            .run(|mut c| async move {
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
                    .conn
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
            .conn
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
}
