//! The configured store, chosen at start: one enum so the request path
//! pays for a `match`, not a boxed future.

use std::sync::Arc;

use super::data::DataChange;
use super::id::SessionId;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::store::{
    Lookup, NewSession, Policy, SessionRecord, SessionStore, SessionSummary, SignIn, StoreError,
};

/// The store the proxy runs on.
#[derive(Clone)]
pub enum AnyStore {
    /// In-process memory.
    Memory(Arc<MemoryStore>),
    /// Redis or Redis Cluster, shared by every instance.
    Redis(Arc<RedisStore>),
}

impl AnyStore {
    /// The memory store, when that is the one configured.
    pub fn as_memory(&self) -> Option<&Arc<MemoryStore>> {
        match self {
            AnyStore::Memory(m) => Some(m),
            AnyStore::Redis(_) => None,
        }
    }
}

impl AnyStore {
    /// Whether the store can be used for a request that would create or
    /// need a session: free while the store answers; while it does not,
    /// one ping finds out whether it is back.
    pub async fn ready(&self) -> bool {
        match self {
            AnyStore::Memory(_) => true,
            AnyStore::Redis(r) if r.is_answering() => true,
            AnyStore::Redis(r) => Box::pin(r.ping()).await.is_ok(),
        }
    }
}

/// Calls the same method on whichever store this is. The Redis futures are
/// boxed: they are large, and unboxed they would make every request's future
/// (which embeds this one) as large as theirs, memory store or not. A Redis
/// call waits for the network anyway; one allocation is nothing beside it.
macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($s) => $call.await,
            AnyStore::Redis($s) => Box::pin($call).await,
        }
    };
}

impl SessionStore for AnyStore {
    async fn lookup(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        delegate!(self, s => s.lookup(id, now, policy))
    }

    async fn peek(&self, id: &SessionId, now: u64, policy: &Policy) -> Result<Lookup, StoreError> {
        delegate!(self, s => s.peek(id, now, policy))
    }

    async fn update(
        &self,
        id: &SessionId,
        change: &DataChange,
        create: Option<NewSession<'_>>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        delegate!(self, s => s.update(id, change, create, now, policy))
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
        delegate!(self, s => s.login(old, new, who, change, seed, now, policy))
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        delegate!(self, s => s.remove(id))
    }

    async fn sessions_of(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        delegate!(self, s => s.sessions_of(user, now, policy))
    }

    async fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        delegate!(self, s => s.end_sessions_of(user))
    }

    async fn end_session_tagged(
        &self,
        tag: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.end_session_tagged(tag, now, policy))
    }

    async fn keep_request(
        &self,
        id: &SessionId,
        request: &[u8],
        now: u64,
        ttl: u64,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.keep_request(id, request, now, ttl))
    }

    async fn take_request(&self, id: &SessionId, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, s => s.take_request(id, now))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        delegate!(self, s => s.count())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping())
    }
}
