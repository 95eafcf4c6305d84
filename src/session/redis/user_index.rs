//! The indexes of signed-in sessions: `{key_prefix}user:{user}`, a sorted
//! set of the base64url ids of a user's sessions, and `{key_prefix}tag:
//! {tag}`, the same for the ids with one log tag; both scored by the end
//! of each session's absolute lifetime. They serve "log this user out
//! everywhere", the admin listing, ending one session by its tag, and the
//! cleanup after a logout.
//!
//! The sets are only indexes: each login drops the ids whose lifetime is
//! over, a logout takes its id out of both, the listing and the endings
//! drop the members they find dead (expired, ended, or the mark of a moved
//! id), and each set expires `max_lifetime` after the last login it
//! indexed. So they stay as small as the live sessions they name. The
//! session keys themselves always decide.
//!
//! Taking a member out of an index is best effort where the session has
//! already ended: a member left behind (Redis failing between the two
//! steps) names no session, and the next listing drops it.

use futures_util::future::join_all;
use redis::Value;

use super::RedisStore;
use super::record::{RECORD_FIELDS, complete_record};
use crate::session::id::{LogTag, SessionId};
use crate::session::store::{Policy, SessionSummary, StoreError, oldest_first};

/// Ids handled per batch when a user's sessions are listed or removed.
const BATCH: usize = 64;

impl RedisStore {
    /// Ends one session (a logout), and takes its id out of the indexes
    /// when it was signed in.
    pub(super) async fn end_one(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = self.session_key(id);
        let user: Option<String> = self
            .conn
            .run(|mut c| async move {
                let mut inv = self.scripts.end.prepare_invoke();
                inv.key(&key);
                inv.invoke_async(&mut c).await
            })
            .await?;
        if let Some(user) = user {
            self.forget_quietly(&user, &[id.to_base64()]).await;
        }
        Ok(())
    }

    /// Ends every session of `user`; returns how many ended.
    pub(super) async fn end_all_of(&self, user: &str) -> Result<usize, StoreError> {
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
            self.forget(user, batch).await?;
        }
        Ok(removed)
    }

    /// The live sessions of `user`, oldest first; the members found dead
    /// are forgotten.
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
                        live.push(SessionSummary::of(&id, &record, policy));
                    }
                    _ => dead.push(member.clone()),
                }
            }
        }
        self.forget(user, &dead).await?;
        oldest_first(&mut live);
        Ok(live)
    }

    /// Ends the live signed-in sessions whose tag is `tag`; whether any was.
    pub(super) async fn end_tagged(
        &self,
        tag: &LogTag,
        now: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        let index = self.tag_key(tag);
        let members = self.members(&index).await?;
        let mut ended = false;
        for member in members {
            let id = SessionId::from_base64(&member).filter(|id| id.log_tag() == *tag);
            let user: Option<String> = match id {
                Some(_) => {
                    let key = self.member_key(&member);
                    self.conn
                        .run(|mut c| async move {
                            let mut inv = self.scripts.end_if_live.prepare_invoke();
                            inv.key(&key)
                                .arg(now)
                                .arg(policy.idle_timeout)
                                .arg(policy.max_lifetime);
                            inv.invoke_async(&mut c).await
                        })
                        .await?
                }
                // Not an id of this tag: nothing a login of ours wrote.
                None => None,
            };
            match user {
                Some(user) => {
                    ended = true;
                    self.forget_quietly(&user, std::slice::from_ref(&member))
                        .await;
                }
                None => self.zrem(&index, std::slice::from_ref(&member)).await?,
            }
        }
        Ok(ended)
    }

    /// Every id in an index.
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

    /// Takes `members` out of `user`'s set and out of their tags' sets.
    async fn forget(&self, user: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        self.zrem(&self.user_key(user), members).await?;
        let tags = join_all(members.iter().filter_map(|member| {
            let id = SessionId::from_base64(member)?;
            let index = self.tag_key(&id.log_tag());
            Some(async move { self.zrem(&index, std::slice::from_ref(member)).await })
        }))
        .await;
        tags.into_iter().collect()
    }

    /// [`RedisStore::forget`] once the sessions have ended: a failure only
    /// leaves members that name nothing, dropped by the next listing.
    async fn forget_quietly(&self, user: &str, members: &[String]) {
        if let Err(e) = self.forget(user, members).await {
            tracing::debug!(error = %e, "ended session left in the index until its next listing");
        }
    }

    /// `ZREM index members...`
    async fn zrem(&self, index: &str, members: &[String]) -> Result<(), StoreError> {
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
