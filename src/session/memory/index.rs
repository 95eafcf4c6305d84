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

use std::collections::HashSet;
use std::sync::Arc;

use dashmap::DashMap;

use crate::session::id::{IdHashBuilder, LogTag, SessionId};

/// Each user's signed-in sessions, and the sessions behind each tag.
#[derive(Default)]
pub(super) struct UserIndex {
    /// The ids of each user's sessions.
    by_user: DashMap<Arc<str>, HashSet<SessionId, IdHashBuilder>>,
    /// The ids whose tag is the key ([`LogTag::as_u64`]); almost always
    /// one, more only when two ids share 48 bits of their hash.
    by_tag: DashMap<u64, Vec<SessionId>>,
}

impl UserIndex {
    /// Indexes `id` as a session of `user`.
    pub(super) fn add(&self, user: &Arc<str>, id: SessionId) {
        // A user's set is looked up by `&str` first: a new login of a user
        // already indexed shares no new allocation for the name.
        match self.by_user.get_mut(&**user) {
            Some(mut ids) => {
                ids.insert(id);
            }
            None => {
                self.by_user.entry(user.clone()).or_default().insert(id);
            }
        }
        let mut ids = self.by_tag.entry(id.log_tag().as_u64()).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    /// Forgets `id` as a session of `user` (the session has left the map).
    pub(super) fn remove(&self, user: &str, id: &SessionId) {
        let emptied = self.by_user.get_mut(user).is_some_and(|mut ids| {
            ids.remove(id);
            ids.is_empty()
        });
        if emptied {
            self.by_user.remove_if(user, |_, ids| ids.is_empty());
        }
        self.forget_tag(id);
    }

    /// Takes out every id indexed for `user`, leaving their tags: the
    /// caller removes each session from the map, then calls
    /// [`UserIndex::forget_tag`].
    pub(super) fn take_user(&self, user: &str) -> Vec<SessionId> {
        self.by_user
            .remove(user)
            .map(|(_, ids)| ids.into_iter().collect())
            .unwrap_or_default()
    }

    /// The ids indexed for `user`.
    pub(super) fn ids_of(&self, user: &str) -> Vec<SessionId> {
        self.by_user
            .get(user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The ids whose tag is `tag`.
    pub(super) fn ids_tagged(&self, tag: LogTag) -> Vec<SessionId> {
        self.by_tag
            .get(&tag.as_u64())
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    /// Forgets the tag of `id` (the session has left the map).
    pub(super) fn forget_tag(&self, id: &SessionId) {
        let key = id.log_tag().as_u64();
        let emptied = self.by_tag.get_mut(&key).is_some_and(|mut ids| {
            ids.retain(|other| other != id);
            ids.is_empty()
        });
        if emptied {
            self.by_tag.remove_if(&key, |_, ids| ids.is_empty());
        }
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
