//! Requests kept across a sign-in, in Redis: one string key each,
//! `{key_prefix}kept:{id, base64url}` (never taken for a session's key,
//! whose name is the id alone), written with `SET ... PX` and taken by
//! `lua/take_kept.lua` (read and delete in one step; one key, so in a
//! cluster too). The value starts with its end (8 bytes, big-endian unix
//! seconds), checked against the proxy's clock like sessions' ends: Redis's
//! TTL only does the cleaning.

use super::RedisStore;
use crate::session::id::SessionId;
use crate::session::store::StoreError;

impl RedisStore {
    /// The key of a kept request.
    fn kept_key(&self, id: &SessionId) -> String {
        format!("{}kept:{}", self.prefix, id.to_base64())
    }

    /// Keeps `request` under `id` until `now + ttl`.
    pub(super) async fn keep(
        &self,
        id: &SessionId,
        request: &[u8],
        now: u64,
        ttl: u64,
    ) -> Result<(), StoreError> {
        let key = self.kept_key(id);
        let mut value = Vec::with_capacity(8 + request.len());
        value.extend_from_slice(&now.saturating_add(ttl).to_be_bytes());
        value.extend_from_slice(request);
        let millis = ttl.max(1).saturating_mul(1000);
        self.conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Takes what `id` keeps, if it is not over at `now`.
    pub(super) async fn take(
        &self,
        id: &SessionId,
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.kept_key(id);
        let kept: Option<Vec<u8>> = self
            .conn
            .run(|mut c| async move {
                let mut inv = self.scripts.take_kept.prepare_invoke();
                inv.key(&key);
                inv.invoke_async(&mut c).await
            })
            .await?;
        let Some(kept) = kept else {
            return Ok(None);
        };
        let Some((until, request)) = kept.split_first_chunk::<8>() else {
            return Err(StoreError::Corrupt("a kept request without its end".into()));
        };
        Ok((now < u64::from_be_bytes(*until)).then(|| request.to_vec()))
    }
}
