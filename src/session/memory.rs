//! The in-memory store: a sharded concurrent map (dashmap).
//!
//! Reads take a shard's read lock; writes (updates, touches) take one
//! shard's write lock for the few instructions they need, never across an
//! await. When `max_sessions` is reached, a batch of the least valuable
//! sessions is evicted in one pass: expired first, then anonymous before
//! logged-in, nearest expiry first.
//!
//! Ids moved away by a login are remembered for [`ROTATED_FOR`] seconds in
//! a map of their own (id and time, no data), swept with the sessions and
//! never written to the snapshot: a restart forgets them, which only costs
//! the few requests racing a login at that very moment.
//!
//! Signed-in sessions are also indexed by user and by log tag (`index.rs`),
//! by the steps that add or take them, never by a request that only reads
//! or updates its session. The index is not in the snapshot either: a
//! restore rebuilds it as it inserts the sessions, so a snapshot written
//! before the index existed loads as any other.
//!
//! Requests kept across a sign-in (`kept.rs`) live beside the sessions,
//! swept with them, bounded in total size, never in the snapshot.

mod index;
mod kept;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use self::index::UserIndex;
use self::kept::KeptRequests;
pub use self::kept::MAX_KEPT_BYTES;
use super::data::DataChange;
use super::id::{IdHashBuilder, LogTag, SessionId};
use super::store::{
    Lookup, NewSession, Policy, ROTATED_FOR, SessionRecord, SessionStore, SessionSummary, SignIn,
    StoreError, check_size, oldest_first,
};

/// How many independently locked parts the map has. Many small parts keep
/// every pause short: a part's hash table doubles (and rehashes) under its
/// write lock, and with a million sessions in 64 parts that is some 16,000
/// entries at a time rather than the 125,000 of dashmap's default on two
/// cores, which every request meanwhile would wait for (`cargo bench
/// --bench memory`: the longest creation went from 30 ms to 8 ms). More
/// parts shorten it little and leave more freed tables to the allocator.
const SHARDS: usize = 64;

/// Sessions held in this process.
pub struct MemoryStore {
    /// Records are boxed: a bucket then holds the id and a pointer (40
    /// bytes), and the hash table's spare capacity (up to half of it, as
    /// tables grow by doubling) costs little. A million sessions fit in
    /// about 200 MB (`cargo bench --bench memory`).
    map: DashMap<SessionId, Box<SessionRecord>, IdHashBuilder>,
    /// Itself, for the pass that makes room: it runs on the blocking pool,
    /// not on the thread of the request that found the store full.
    me: Weak<MemoryStore>,
    /// Serializes the passes that make room; requests wait on it (without
    /// holding a thread) only when the store is full.
    evicting: tokio::sync::Mutex<()>,
    empty: EmptyData,
    /// Bumped by every change, so the snapshot writer can skip a store
    /// that has not changed since the last snapshot.
    changes: AtomicU64,
    /// The number of sessions, kept by every insert and removal, so that
    /// creating a session needs no count over every part of the map.
    /// Whole-map passes set it to the exact count again.
    size: AtomicUsize,
    /// Ids a login moved away, with the time of that login. At most
    /// `max_sessions` of them: a mark takes some 40 bytes, a fifth of a
    /// session, and only a flood of logins within one minute could fill
    /// the map, in which case the newest logins go unmarked (they then
    /// lose only the protection of their racing requests).
    rotated: DashMap<SessionId, u64, IdHashBuilder>,
    /// Signed-in sessions by user and by log tag.
    index: UserIndex,
    /// Sessions removed because they had expired (by the sweeper, or found
    /// so), since the start, for `/metrics`.
    expired: AtomicU64,
    /// Sessions evicted to make room under `max_sessions`, since the start.
    evicted: AtomicU64,
    /// Requests kept across a sign-in (not sessions; not in the snapshot).
    kept: KeptRequests,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| MemoryStore {
            map: DashMap::with_hasher_and_shard_amount(IdHashBuilder::default(), SHARDS),
            me: me.clone(),
            evicting: tokio::sync::Mutex::default(),
            empty: EmptyData::default(),
            changes: AtomicU64::default(),
            size: AtomicUsize::default(),
            rotated: DashMap::default(),
            index: UserIndex::default(),
            expired: AtomicU64::default(),
            evicted: AtomicU64::default(),
            kept: KeptRequests::default(),
        })
    }
}

/// One shared allocation for "no data".
struct EmptyData(Arc<str>);

impl Default for EmptyData {
    fn default() -> Self {
        EmptyData(Arc::from(""))
    }
}

impl MemoryStore {
    /// Removes expired sessions, and marks of moved ids that are over;
    /// returns how many sessions.
    pub fn sweep(&self, now: u64, policy: &Policy) -> usize {
        self.rotated.retain(|_, at| still_rotated(*at, now));
        self.kept.sweep(now);
        let before = self.map.len();
        let mut signed_in = Vec::new();
        self.map.retain(|id, r| {
            let expired = r.is_expired(now, policy);
            if expired {
                if let Some(user) = &r.user {
                    signed_in.push((*id, user.clone()));
                }
            }
            !expired
        });
        // After the pass: the index is never locked while the map is.
        for (id, user) in &signed_in {
            self.index.remove(user, id);
        }
        let removed = before.saturating_sub(self.recount());
        if removed > 0 {
            self.changed();
            self.expired.fetch_add(removed as u64, Ordering::Relaxed);
        }
        removed
    }

    /// Keeps the index after `record` left the map under `id`.
    fn unindex(&self, id: &SessionId, record: &SessionRecord) {
        if let Some(user) = &record.user {
            self.index.remove(user, id);
        }
    }

    /// Sessions removed because they had expired, since the start.
    pub fn expired_total(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Sessions evicted under `max_sessions`, since the start.
    pub fn evicted_total(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// A number that changes whenever the store does (not a count).
    pub fn generation(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the sessions exactly (every part of the map), and keeps the count.
    fn recount(&self) -> usize {
        let len = self.map.len();
        self.size.store(len, Ordering::Relaxed);
        len
    }

    /// Keeps the count after an insert that may have added a session.
    fn added(&self, yes: bool) {
        if yes {
            self.size.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps the count after a removal that may have taken one. (A count
    /// that races below zero wraps to a huge number, which only sends the
    /// next creation to `make_room`'s exact recount.)
    fn removed(&self, yes: bool) {
        if yes {
            self.size.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every session, for the snapshot writer. Each shard is read-locked
    /// only while it is copied.
    pub fn entries(&self) -> Vec<(SessionId, SessionRecord)> {
        self.map
            .iter()
            .map(|e| (*e.key(), SessionRecord::clone(e.value())))
            .collect()
    }

    /// Inserts a session as it was (snapshot loading).
    /// Signed-in sessions are indexed as they go in: a restore rebuilds
    /// the index from the sessions themselves.
    pub fn insert(&self, id: SessionId, record: SessionRecord) {
        let user = record.user.clone();
        let previous = self.map.insert(id, Box::new(record));
        if let Some(previous) = &previous {
            self.unindex(&id, previous);
        }
        if let Some(user) = &user {
            self.index.add(user, id);
        }
        self.added(previous.is_none());
        self.changed();
    }

    /// Number of sessions, without going through the async trait.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn data(&self, s: String) -> Arc<str> {
        if s.is_empty() {
            self.empty.0.clone()
        } else {
            Arc::from(s)
        }
    }

    /// Whether the kept count says the store is at `max_sessions`.
    fn is_full(&self, policy: &Policy) -> bool {
        self.size.load(Ordering::Relaxed) >= policy.max_sessions
    }

    /// Makes room for one more session when the store is full.
    async fn make_room(&self, now: u64, policy: &Policy) {
        if !self.is_full(policy) {
            return;
        }
        // One pass at a time: those that waited find the room it made.
        let _turn = self.evicting.lock().await;
        if self.recount() < policy.max_sessions {
            return;
        }
        // Always there while `self` is (the store lives only in its Arc).
        let Some(me) = self.me.upgrade() else {
            return self.evict(now, policy);
        };
        // The pass walks the whole map (some 100 ms for a million
        // sessions): off the worker's thread, whose other requests go on.
        let policy = *policy;
        if let Err(e) = tokio::task::spawn_blocking(move || me.evict(now, &policy)).await {
            tracing::error!(error = %e, "making room in the session store did not finish");
        }
    }

    /// Sweeps, and when that frees nothing, evicts a batch of the least
    /// valuable sessions (see the module's comment).
    fn evict(&self, now: u64, policy: &Policy) {
        // The sweep leaves the kept count exact.
        if self.sweep(now, policy) > 0 && self.size.load(Ordering::Relaxed) < policy.max_sessions {
            return;
        }
        // Evict ~1% at once so that a full store pays for a scan rarely.
        let batch = (policy.max_sessions / 100).clamp(1, 10_000);
        // A max-heap of the `batch` least valuable entries seen so far.
        let mut worst: BinaryHeap<(bool, u64, Reverse<[u8; 32]>)> =
            BinaryHeap::with_capacity(batch + 1);
        for e in self.map.iter() {
            let key = (
                e.value().user.is_some(),
                e.value().expires_at(policy),
                Reverse(*e.key().as_bytes()),
            );
            if worst.len() < batch {
                worst.push(key);
            } else if worst.peek().is_some_and(|top| key < *top) {
                worst.pop();
                worst.push(key);
            }
        }
        for (_, _, Reverse(id)) in worst {
            let id = SessionId::from_bytes(id);
            if let Some((id, record)) = self.map.remove(&id) {
                self.unindex(&id, &record);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.recount();
        self.changed();
    }

    /// Whether a login moved `id` away less than [`ROTATED_FOR`] ago.
    fn is_rotated(&self, id: &SessionId, now: u64) -> bool {
        self.rotated
            .get(id)
            .is_some_and(|at| still_rotated(*at, now))
    }

    /// Marks `id` as moved away by a login at `now`, within the bound.
    fn mark_rotated(&self, id: &SessionId, now: u64, policy: &Policy) {
        if self.rotated.len() >= policy.max_sessions {
            self.rotated.retain(|_, at| still_rotated(*at, now));
            if self.rotated.len() >= policy.max_sessions {
                return;
            }
        }
        self.rotated.insert(*id, now);
    }

    fn fresh(&self, seed: &NewSession<'_>, now: u64) -> SessionRecord {
        SessionRecord {
            created: seed.created,
            last_seen: now,
            user: None,
            data: self.data(seed.initial.to_string()),
            ip: seed.ip,
            groups: None,
            remember: None,
            browser: None,
        }
    }
}

/// Whether a mark made at `at` still holds at `now`.
fn still_rotated(at: u64, now: u64) -> bool {
    now < at.saturating_add(ROTATED_FOR)
}

impl SessionStore for MemoryStore {
    async fn lookup(
        &self,
        id: &SessionId,
        now: u64,
        policy: &Policy,
    ) -> Result<Lookup, StoreError> {
        let (record, touch) = match self.map.get(id) {
            // Only a miss looks at the marks: a live session costs nothing more.
            None if self.is_rotated(id, now) => return Ok(Lookup::Rotated),
            None => return Ok(Lookup::Absent),
            Some(r) => {
                if r.is_expired(now, policy) {
                    drop(r);
                    let removed = self.map.remove_if(id, |_, r| r.is_expired(now, policy));
                    self.removed(removed.is_some());
                    if let Some((id, record)) = &removed {
                        self.unindex(id, record);
                        self.changed();
                        self.expired.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(Lookup::Absent);
                }
                let touch =
                    now.saturating_sub(r.last_seen) >= policy.touch_interval && now > r.last_seen;
                (SessionRecord::clone(&r), touch)
            }
        };
        if touch {
            if let Some(mut r) = self.map.get_mut(id) {
                r.last_seen = r.last_seen.max(now);
            }
            self.changed();
            return Ok(Lookup::Live(SessionRecord {
                last_seen: now,
                ..record
            }));
        }
        Ok(Lookup::Live(record))
    }

    async fn peek(&self, id: &SessionId, now: u64, policy: &Policy) -> Result<Lookup, StoreError> {
        // Read only: an expired session is left for the sweeper or the
        // next lookup to remove.
        Ok(match self.map.get(id) {
            None if self.is_rotated(id, now) => Lookup::Rotated,
            None => Lookup::Absent,
            Some(r) if r.is_expired(now, policy) => Lookup::Absent,
            Some(r) => Lookup::Live(SessionRecord::clone(&r)),
        })
    }

    async fn update(
        &self,
        id: &SessionId,
        change: &DataChange,
        create: Option<NewSession<'_>>,
        now: u64,
        policy: &Policy,
    ) -> Result<SessionRecord, StoreError> {
        // Only a full store needs to know whether the id is new: the
        // common update looks the id up once, in `entry` below.
        if create.is_some() && self.is_full(policy) && !self.map.contains_key(id) {
            self.make_room(now, policy).await;
        }
        // Counted up front: an update that ends up changing nothing only
        // costs one needless snapshot.
        self.changed();
        match self.map.entry(*id) {
            Entry::Occupied(mut e) => {
                if e.get().is_expired(now, policy) {
                    let (id, record) = e.remove_entry();
                    self.removed(true);
                    self.unindex(&id, &record);
                    self.expired.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::Gone);
                }
                let data = change.apply(&e.get().data);
                check_size(&data, policy)?;
                let r = e.get_mut();
                r.data = self.data(data);
                r.last_seen = now;
                Ok(SessionRecord::clone(r))
            }
            Entry::Vacant(v) => {
                // Read under the entry's lock, which a login holds while it
                // marks the id: an update never slips a session in between.
                let Some(seed) = create.filter(|_| !self.is_rotated(id, now)) else {
                    return Err(StoreError::Gone);
                };
                let mut record = self.fresh(&seed, now);
                let data = change.apply(&record.data);
                check_size(&data, policy)?;
                record.data = self.data(data);
                let record = SessionRecord::clone(&v.insert(Box::new(record)));
                self.added(true);
                Ok(record)
            }
        }
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
        // Read, check, mark and remove the old session under its entry's
        // lock, so that no update of it lands in between and none can
        // create it again afterwards; the result is checked before anything
        // changes, so a refused update leaves everything as it was.
        let (data, old_ip, replaced) = match old {
            Some(o) => match self.map.entry(*o) {
                Entry::Occupied(e) => {
                    let live = !e.get().is_expired(now, policy);
                    let base = if live { &e.get().data } else { seed.initial };
                    let data = change.apply(base);
                    check_size(&data, policy)?;
                    self.mark_rotated(o, now, policy);
                    let (_, previous) = e.remove_entry();
                    self.removed(true);
                    let ip = previous.ip.filter(|_| live);
                    (data, ip, Some(previous))
                }
                Entry::Vacant(v) => {
                    let data = change.apply(seed.initial);
                    check_size(&data, policy)?;
                    self.mark_rotated(o, now, policy);
                    drop(v);
                    (data, None, None)
                }
            },
            None => {
                let data = change.apply(seed.initial);
                check_size(&data, policy)?;
                (data, None, None)
            }
        };
        // A signed-in session that logs in again leaves its user's index.
        if let (Some(o), Some(previous)) = (old, &replaced) {
            self.unindex(o, previous);
        }
        self.make_room(now, policy).await;
        self.changed();
        let user: Arc<str> = Arc::from(who.user);
        let record = SessionRecord {
            created: now,
            last_seen: now,
            user: Some(user.clone()),
            data: self.data(data),
            ip: seed.ip.or(old_ip),
            groups: (!who.groups.is_empty()).then(|| Arc::from(who.groups)),
            remember: who.remember,
            browser: who.browser.map(|b| Arc::from(super::browser::capped(b))),
        };
        let previous = self.map.insert(*new, Box::new(record.clone()));
        if let Some(previous) = &previous {
            self.unindex(new, previous);
        }
        // Indexed once in the map (see index.rs for why in this order).
        self.index.add(&user, *new);
        self.added(previous.is_none());
        Ok(record)
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        self.rotated.remove(id);
        let removed = self.map.remove(id);
        self.removed(removed.is_some());
        if let Some((id, record)) = &removed {
            self.unindex(id, record);
            self.changed();
        }
        Ok(())
    }

    async fn sessions_of(
        &self,
        user: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut listed: Vec<SessionSummary> = self
            .index
            .ids_of(user)
            .iter()
            .filter_map(|id| {
                let r = self.map.get(id)?;
                let live = r.user.as_deref() == Some(user) && !r.is_expired(now, policy);
                live.then(|| SessionSummary::of(id, &r, policy))
            })
            .collect();
        oldest_first(&mut listed);
        Ok(listed)
    }

    async fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        let mut ended = 0;
        for id in self.index.take_user(user) {
            let removed = self
                .map
                .remove_if(&id, |_, r| r.user.as_deref() == Some(user));
            self.removed(removed.is_some());
            ended += usize::from(removed.is_some());
            self.index.forget_tag(&id);
        }
        if ended > 0 {
            self.changed();
        }
        Ok(ended)
    }

    async fn end_session_tagged(
        &self,
        tag: &str,
        now: u64,
        policy: &Policy,
    ) -> Result<bool, StoreError> {
        let Some(tag) = LogTag::parse(tag) else {
            return Ok(false);
        };
        let mut ended = false;
        for id in self.index.ids_tagged(tag) {
            // An expired session goes too, but was not ended by this call.
            let Some((id, record)) = self.map.remove_if(&id, |_, r| r.user.is_some()) else {
                continue;
            };
            self.removed(true);
            self.changed();
            self.unindex(&id, &record);
            ended |= !record.is_expired(now, policy);
        }
        Ok(ended)
    }

    async fn keep_request(
        &self,
        id: &SessionId,
        request: &[u8],
        now: u64,
        ttl: u64,
    ) -> Result<(), StoreError> {
        self.kept.keep(id, request, now.saturating_add(ttl))
    }

    async fn take_request(&self, id: &SessionId, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kept.take(id, now))
    }

    async fn count(&self) -> Result<usize, StoreError> {
        Ok(self.map.len())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

// The behaviour every store shares is tested once for all of them in
// tests/it/store_contract.rs; what is tested here is the memory store's own.
#[cfg(test)]
mod tests;
