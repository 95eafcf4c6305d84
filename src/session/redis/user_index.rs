//! The index of each user's sessions, `{key_prefix}user:{user}`: a sorted
//! set of base64url ids scored by the end of their absolute lifetime, for
//! "log this user out everywhere" and the admin listing.
//!
//! The set is only an index: each login drops the ids whose lifetime is
//! over, the listing drops those it finds dead, and the set expires
//! `max_lifetime` after the user's last login, so it stays as small as the
//! user's live sessions. The session keys themselves always decide.

use futures_util::future::join_all;
use redis::Value;

use super::RedisStore;
use super::record::{RECORD_FIELDS, complete_record};
use crate::session::id::SessionId;
use crate::session::store::{Policy, SessionSummary, StoreError};

/// Ids handled per batch when a user's sessions are listed or removed.
const BATCH: usize = 64;

impl RedisStore {
    /// Ends every session of `user`; returns how many ended.
    pub(super) async fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        let index = self.user_key(user);
        let members = self.members(&index).await?;
        let mut removed = 0;
        for batch in members.chunks(BATCH) {
            let results = join_all(batch.iter().map(|member| {
                let key = self.member_key(member);
                self.conn.run(move |mut c| async move {
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

    /// The live sessions of `user`; the members found dead are forgotten.
    pub(super) async fn live_sessions_of(
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
                let key = self.member_key(member);
                self.conn.run(move |mut c| async move {
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&RECORD_FIELDS)
                        .query_async::<Value>(&mut c)
                        .await
                })
            }))
            .await;
            for (member, reply) in batch.iter().zip(replies) {
                let record = match reply? {
                    Value::Array(fields) if fields.first() != Some(&Value::Nil) => {
                        Some(complete_record(fields)?)
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

    /// Every id in a user's set.
    async fn members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.conn
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(index)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await
    }

    /// Takes `members` out of a user's set.
    async fn forget(&self, index: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        self.conn
            .run(|mut c| async move {
                redis::cmd("ZREM")
                    .arg(index)
                    .arg(members)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}
