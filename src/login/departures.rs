//! Users who leave the users file lose their sessions: the users file is
//! the list of who may be signed in, so taking a name out of it also signs
//! that user out everywhere, on every instance that shares the store.
//!
//! [`Departures`] remembers the users file last seen. Each time the file
//! in force is another one (the file changed, or a reload brought a new
//! one), the users it no longer lists have their sessions ended, each
//! with a `user_removed` line in the audit log. A user whose sessions
//! could not be ended (the store did not answer) is tried again at the
//! next call, unless they are back in the file by then.

use std::sync::Arc;

use super::users::UsersFile;
use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::session::{AnyStore, SessionStore};

/// The users file last seen, and the departures still to settle.
#[derive(Default)]
pub struct Departures {
    known: Option<Arc<UsersFile>>,
    pending: Vec<String>,
}

impl Departures {
    /// Starts from the users file in force (`None`: no users file).
    pub fn new(current: Option<Arc<UsersFile>>) -> Self {
        Departures {
            known: current,
            pending: Vec::new(),
        }
    }

    /// Compares `current` (the users file in force, `None` when the
    /// config has none) with the one last seen, and ends the sessions of
    /// every user who left, counting them as revoked. Returns the users
    /// whose sessions ended.
    ///
    /// Without a users file any more (the login moved to the backend),
    /// nobody is taken to have left: the backend now says who signs in.
    pub async fn settle(
        &mut self,
        current: Option<Arc<UsersFile>>,
        store: &AnyStore,
        audit: &Audit,
        metrics: &Metrics,
    ) -> Vec<String> {
        let Some(current) = current else {
            self.known = None;
            self.pending.clear();
            return Vec::new();
        };
        if let Some(before) = &self.known {
            if !Arc::ptr_eq(before, &current) {
                self.pending.extend(current.removed_since(before));
                self.pending.sort_unstable();
                self.pending.dedup();
            }
        }
        self.known = Some(current.clone());
        self.pending.retain(|user| !current.contains(user));
        let mut settled = Vec::new();
        let mut failed = Vec::new();
        for user in std::mem::take(&mut self.pending) {
            match store.end_sessions_of(&user).await {
                Ok(ended) => {
                    tracing::info!(user = %user, ended, "user removed from the users file: sessions ended");
                    audit.user_removed(&user, ended);
                    Metrics::add(&metrics.sessions_revoked, ended as u64);
                    settled.push(user);
                }
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "user removed from the users file, but the sessions could not be ended yet; trying again");
                    failed.push(user);
                }
            }
        }
        self.pending = failed;
        settled
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::session::{DataChange, MemoryStore, NewSession, Policy, SessionId, SignIn};

    /// `htpasswd -bnB -C 5 alice 'correct horse'`: any valid hash will do.
    const HASH: &str = "$2y$05$8GZGcB76O/vrMDfbnLsspuETEb.ZaPA/atHhCzSgQhhJyk31FFTzC";

    fn users(names: &[&str]) -> Arc<UsersFile> {
        let text: String = names.iter().map(|n| format!("{n}:{HASH}\n")).collect();
        Arc::new(UsersFile::parse(Path::new("users"), &text).expect("users file"))
    }

    async fn sign_in(store: &AnyStore, user: &str) -> SessionId {
        let policy = Policy {
            idle_timeout: 100,
            max_lifetime: 1000,
            touch_interval: 10,
            max_data_bytes: 64,
            max_sessions: 100,
            remember_me: None,
        };
        let id = SessionId::generate();
        let seed = NewSession {
            created: 0,
            initial: "",
            ip: None,
        };
        store
            .login(
                None,
                &id,
                &SignIn::user(user),
                &DataChange::default(),
                seed,
                0,
                &policy,
            )
            .await
            .expect("login");
        id
    }

    #[tokio::test]
    async fn users_who_leave_the_file_are_signed_out() {
        let store = AnyStore::Memory(MemoryStore::new());
        let audit = Audit::off();
        let metrics = Metrics::default();
        let first = users(&["alice", "bob", "carol"]);
        let mut departures = Departures::new(Some(first.clone()));
        sign_in(&store, "alice").await;
        sign_in(&store, "alice").await;
        sign_in(&store, "bob").await;
        // The same file again: nobody left.
        assert!(
            departures
                .settle(Some(first), &store, &audit, &metrics)
                .await
                .is_empty()
        );
        let second = users(&["bob"]);
        let gone = departures
            .settle(Some(second.clone()), &store, &audit, &metrics)
            .await;
        assert_eq!(gone, ["alice", "carol"]);
        assert_eq!(
            Metrics::get(&metrics.sessions_revoked),
            2,
            "counted as revoked"
        );
        assert_eq!(store.end_sessions_of("alice").await, Ok(0), "ended");
        assert_eq!(store.count().await, Ok(1), "bob's session stays");
        // A file that is no longer in force says nothing about who left.
        assert!(
            departures
                .settle(None, &store, &audit, &metrics)
                .await
                .is_empty()
        );
        assert!(
            departures
                .settle(Some(users(&[])), &store, &audit, &metrics)
                .await
                .is_empty()
        );
    }
}
