//! The memory store's index of signed-in sessions: each user's ids, and
//! the ids behind each log tag, for "log this user out everywhere", the
//! admin listing, and ending a session by the tag an operator saw.
//!
//! Only sessions with a user are indexed, and only the steps that add or
//! take such a session touch the index: a login, a logout, the removal of
//! an expired or evicted session, a snapshot restore. A request that only
//! reads or updates its session never does.
//!
//! The map of sessions decides; the index only points into it. Whoever
//! adds a session inserts it in the map first, then here; whoever takes
//! one removes it from the map first, then from here. So a reader of the
//! index may meet an id that has just gone (it checks the map), but never
//! misses a session that was in the map before it looked. The index's
//! locks are never held while a lock of the map is taken, so the two
//! cannot wait on each other.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;

use crate::session::id::{IdHashBuilder, LogTag, SessionId};

/// Parts of each map, as the map of sessions has (see `SHARDS` there): a
/// part's table doubles under its write lock, and small parts keep that
/// pause short for the logins waiting on it.
const SHARDS: usize = 64;

/// Each user's signed-in sessions, and the sessions behind each tag.
///
/// Both maps hold [`Ids`], which keeps the usual single id in place: most
/// users have one session, and a tag almost always names one. A set of its
/// own per key (some 160 bytes even for one id) made the index cost more
/// than the sessions it points to.
pub(super) struct UserIndex {
    /// The ids of each user's sessions.
    by_user: DashMap<Arc<str>, Ids>,
    /// The ids whose tag is the key ([`LogTag::as_u64`]); almost always
    /// one, more only when two ids share 48 bits of their hash.
    by_tag: DashMap<u64, Ids>,
}

impl Default for UserIndex {
    fn default() -> Self {
        UserIndex {
            by_user: DashMap::with_shard_amount(SHARDS),
            by_tag: DashMap::with_shard_amount(SHARDS),
        }
    }
}

impl UserIndex {
    /// Indexes `id` as a session of `user`.
    pub(super) fn add(&self, user: &Arc<str>, id: SessionId) {
        // A user's ids are looked up by `&str` first: a new login of a user
        // already indexed shares no new allocation for the name.
        match self.by_user.get_mut(&**user) {
            Some(mut ids) => ids.insert(id),
            None => add(&self.by_user, user.clone(), id),
        }
        add(&self.by_tag, id.log_tag().as_u64(), id);
    }

    /// Forgets `id` as a session of `user` (the session has left the map).
    pub(super) fn remove(&self, user: &str, id: &SessionId) {
        forget(&self.by_user, user, id);
        self.forget_tag(id);
    }

    /// Takes out every id indexed for `user`, leaving their tags: the
    /// caller removes each session from the map, then calls
    /// [`UserIndex::forget_tag`].
    pub(super) fn take_user(&self, user: &str) -> Vec<SessionId> {
        self.by_user
            .remove(user)
            .map(|(_, ids)| ids.to_vec())
            .unwrap_or_default()
    }

    /// The ids indexed for `user`.
    pub(super) fn ids_of(&self, user: &str) -> Vec<SessionId> {
        self.by_user
            .get(user)
            .map(|ids| ids.to_vec())
            .unwrap_or_default()
    }

    /// The ids whose tag is `tag`.
    pub(super) fn ids_tagged(&self, tag: LogTag) -> Vec<SessionId> {
        self.by_tag
            .get(&tag.as_u64())
            .map(|ids| ids.to_vec())
            .unwrap_or_default()
    }

    /// Forgets the tag of `id` (the session has left the map).
    pub(super) fn forget_tag(&self, id: &SessionId) {
        forget(&self.by_tag, &id.log_tag().as_u64(), id);
    }

    /// How many users have an indexed session (for tests).
    #[cfg(test)]
    pub(super) fn users(&self) -> usize {
        self.by_user.len()
    }

    /// How many sessions are indexed (by tag; for tests).
    #[cfg(test)]
    pub(super) fn tagged(&self) -> usize {
        self.by_tag.iter().map(|e| e.value().len()).sum()
    }
}

/// Adds `id` to the ids under `key`, the key with it if it is new.
fn add<K: Eq + Hash>(map: &DashMap<K, Ids>, key: K, id: SessionId) {
    map.entry(key)
        .and_modify(|ids| ids.insert(id))
        .or_insert(Ids::One(id));
}

/// Takes `id` out of the ids under `key`, and the key with its last id.
fn forget<K, Q>(map: &DashMap<K, Ids>, key: &Q, id: &SessionId)
where
    K: Eq + Hash + Borrow<Q>,
    Q: Eq + Hash + ?Sized,
{
    loop {
        // The usual case: the key's only id.
        if map.remove_if(key, |_, ids| ids.is_only(id)).is_some() {
            return;
        }
        let Some(mut ids) = map.get_mut(key) else {
            return;
        };
        match &mut *ids {
            Ids::Many(set) => {
                set.remove(id);
                if set.len() == 1
                    && let Some(last) = set.iter().next().copied()
                {
                    *ids = Ids::One(last);
                }
                return;
            }
            // Another removal left `id` alone under the key meanwhile:
            // the key goes, by the first step.
            Ids::One(one) if one == id => {}
            Ids::One(_) => return,
        }
    }
}

/// The ids under one key of the index: one in place, or a set of two or
/// more. Never empty: the last id leaves with its key.
enum Ids {
    /// The usual case, without an allocation.
    One(SessionId),
    /// Two or more.
    Many(HashSet<SessionId, IdHashBuilder>),
}

impl Ids {
    /// Adds `id`; adding one already there changes nothing.
    fn insert(&mut self, id: SessionId) {
        match self {
            Ids::One(one) if *one == id => {}
            Ids::One(one) => {
                let mut set = HashSet::with_capacity_and_hasher(2, IdHashBuilder::default());
                set.insert(*one);
                set.insert(id);
                *self = Ids::Many(set);
            }
            Ids::Many(set) => {
                set.insert(id);
            }
        }
    }

    /// Whether `id` is the one id here.
    fn is_only(&self, id: &SessionId) -> bool {
        matches!(self, Ids::One(one) if one == id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Ids::One(_) => 1,
            Ids::Many(set) => set.len(),
        }
    }

    fn to_vec(&self) -> Vec<SessionId> {
        match self {
            Ids::One(one) => vec![*one],
            Ids::Many(set) => set.iter().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_tags_come_and_go_with_their_sessions() {
        let index = UserIndex::default();
        let ann: Arc<str> = Arc::from("ann");
        let a = SessionId::generate();
        let b = SessionId::generate();
        index.add(&ann, a);
        index.add(&ann, b);
        index.add(&ann, b);
        let mut ids = index.ids_of("ann");
        ids.sort_by_key(|id| *id.as_bytes());
        let mut expected = vec![a, b];
        expected.sort_by_key(|id| *id.as_bytes());
        assert_eq!(ids, expected);
        assert_eq!(index.ids_tagged(a.log_tag()), vec![a]);
        assert_eq!(index.tagged(), 2);
        index.remove("ann", &a);
        assert_eq!(index.ids_of("ann"), vec![b]);
        assert!(index.ids_tagged(a.log_tag()).is_empty());
        index.remove("ann", &b);
        assert_eq!(
            (index.users(), index.tagged()),
            (0, 0),
            "nothing left behind"
        );
        // Removing what is not indexed is nothing.
        index.remove("nobody", &a);
        assert_eq!(index.users(), 0);
    }

    #[test]
    fn ids_under_one_key_go_one_by_one_and_the_key_with_the_last() {
        // As under a tag that two or three ids share.
        let map: DashMap<u64, Ids> = DashMap::new();
        let ids: Vec<SessionId> = (0..3).map(|_| SessionId::generate()).collect();
        for id in &ids {
            map.entry(7).or_insert(Ids::One(*id)).insert(*id);
        }
        assert_eq!(map.get(&7).map(|i| i.len()), Some(3));
        forget(&map, &7, &ids[1]);
        assert_eq!(map.get(&7).map(|i| i.len()), Some(2));
        forget(&map, &7, &ids[1]);
        assert_eq!(map.get(&7).map(|i| i.len()), Some(2), "already gone");
        forget(&map, &7, &ids[0]);
        assert!(map.get(&7).is_some_and(|i| i.is_only(&ids[2])));
        forget(&map, &7, &ids[0]);
        assert!(
            map.get(&7).is_some_and(|i| i.is_only(&ids[2])),
            "not its id"
        );
        forget(&map, &7, &ids[2]);
        assert!(map.is_empty());
    }

    #[test]
    fn a_user_with_many_sessions_keeps_the_others_as_each_goes() {
        let index = UserIndex::default();
        let cy: Arc<str> = Arc::from("cy");
        let ids: Vec<SessionId> = (0..4).map(|_| SessionId::generate()).collect();
        for id in &ids {
            index.add(&cy, *id);
        }
        for (gone, id) in ids.iter().enumerate() {
            let mut left = index.ids_of("cy");
            left.sort_by_key(|id| *id.as_bytes());
            let mut expected = ids[gone..].to_vec();
            expected.sort_by_key(|id| *id.as_bytes());
            assert_eq!(left, expected);
            index.remove("cy", id);
        }
        assert_eq!((index.users(), index.tagged()), (0, 0));
    }

    #[test]
    fn taking_a_user_leaves_the_tags_to_the_caller() {
        let index = UserIndex::default();
        let bob: Arc<str> = Arc::from("bob");
        let ids: Vec<SessionId> = (0..3).map(|_| SessionId::generate()).collect();
        for id in &ids {
            index.add(&bob, *id);
        }
        let taken = index.take_user("bob");
        assert_eq!(taken.len(), 3);
        assert_eq!(index.users(), 0);
        assert_eq!(index.tagged(), 3);
        for id in &taken {
            index.forget_tag(id);
        }
        assert_eq!(index.tagged(), 0);
        assert!(index.take_user("bob").is_empty());
    }
}
