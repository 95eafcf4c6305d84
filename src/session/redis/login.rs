//! Login: a session moved to a new, unrelated id, in one script when every
//! key is in one slot, in three steps when a Redis Cluster puts them apart.
//!
//! On one Redis server (or when `key_prefix` holds a hash tag such as
//! `"{sg}:"`, which puts every key in one slot) a login is one script over
//! the old key, the new key, the user's set and the set of the new id's
//! tag. In a cluster the keys hash to different slots, which no script may
//! span, so the move takes three steps, ordered so that a failure between
//! them can only log the visitor out, never leave two live sessions or a
//! session the indexes do not know:
//!
//! 1. add the new id to the user's set, then to its tag's set (a dangling
//!    member is harmless);
//! 2. on the old key's node: apply the change, check its size, replace the
//!    old session by the mark of a moved id and return its data (nothing
//!    changes if it is too large);
//! 3. on the new key's node: create the logged-in session with that data.

use redis::Value;

use super::RedisStore;
use super::record::{ip_arg, parse_record, parse_taken, push_change, push_limits};
use crate::session::data::DataChange;
use crate::session::id::SessionId;
use crate::session::store::{NewSession, Policy, SessionRecord, SignIn, StoreError};

/// One login's inputs, as [`SessionStore::login`] takes them.
///
/// [`SessionStore::login`]: crate::session::SessionStore::login
#[derive(Clone, Copy)]
pub(super) struct Login<'a> {
    /// The session moved away, if the visitor had an id.
    pub(super) old: Option<&'a SessionId>,
    /// The id the logged-in session gets.
    pub(super) new: &'a SessionId,
    /// Who logged in, and for how long.
    pub(super) who: &'a SignIn<'a>,
    /// The data change that comes with the login.
    pub(super) change: &'a DataChange,
    /// The client's IP, and the data to start from when `old` holds no
    /// live session.
    pub(super) seed: NewSession<'a>,
    /// The proxy's clock, unix seconds.
    pub(super) now: u64,
    /// Lifetime and size rules.
    pub(super) policy: &'a Policy,
}

impl RedisStore {
    /// The login in one script, `lua/login.lua`, for keys in one slot.
    pub(super) async fn login_at_once(
        &self,
        login: Login<'_>,
    ) -> Result<SessionRecord, StoreError> {
        let new_key = self.session_key(login.new);
        let index = self.user_key(login.who.user);
        let tagged = self.tag_key(&login.new.log_tag());
        let old_key = login.old.map(|o| self.session_key(o));
        let member = login.new.to_base64();
        let reply = self
            .conn
            .run(|mut c| async move {
                let mut inv = self.scripts.login.prepare_invoke();
                inv.key(&new_key).key(&index).key(&tagged);
                if let Some(old_key) = &old_key {
                    inv.key(old_key);
                }
                push_limits(&mut inv, login.now, login.policy);
                inv.arg(login.who.user)
                    .arg(&member)
                    .arg(login.seed.initial)
                    .arg(ip_arg(login.seed.ip))
                    .arg(login.who.groups)
                    .arg(remember_arg(login.who))
                    .arg(browser_arg(login.who));
                push_change(&mut inv, login.change);
                inv.invoke_async::<Value>(&mut c).await
            })
            .await?;
        parse_record(reply)
    }

    /// The three-step login for keys in different cluster slots (see the
    /// module documentation for the order and why).
    pub(super) async fn login_in_steps(
        &self,
        login: Login<'_>,
    ) -> Result<SessionRecord, StoreError> {
        let member = login.new.to_base64();
        let (_, life) = login.policy.lifetimes(login.who.remember);
        for index in [
            self.user_key(login.who.user),
            self.tag_key(&login.new.log_tag()),
        ] {
            self.conn
                .run(|mut c| {
                    let (index, member) = (&index, &member);
                    async move {
                        let mut inv = self.scripts.login_index.prepare_invoke();
                        inv.key(index).arg(member).arg(login.now).arg(life);
                        inv.invoke_async::<Value>(&mut c).await
                    }
                })
                .await?;
        }
        let seed_ip = ip_arg(login.seed.ip);
        // `None`: step 2 already applied the change.
        let (base, ip, put_change) = match login.old {
            Some(old) => {
                let key = self.session_key(old);
                let taken = self
                    .conn
                    .run(|mut c| async move {
                        let mut inv = self.scripts.login_take.prepare_invoke();
                        inv.key(&key);
                        push_limits(&mut inv, login.now, login.policy);
                        inv.arg(login.seed.initial);
                        push_change(&mut inv, login.change);
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
            None => (login.seed.initial.to_string(), seed_ip, Some(login.change)),
        };
        let key = self.session_key(login.new);
        let reply = self
            .conn
            .run(|mut c| async move {
                let mut inv = self.scripts.login_put.prepare_invoke();
                inv.key(&key);
                push_limits(&mut inv, login.now, login.policy);
                inv.arg(login.who.user)
                    .arg(&base)
                    .arg(&ip)
                    .arg(login.who.groups)
                    .arg(remember_arg(login.who))
                    .arg(browser_arg(login.who));
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

/// A login's "remember me" lifetime as a script argument: empty for none.
fn remember_arg(who: &SignIn<'_>) -> String {
    who.remember.map(|r| r.to_string()).unwrap_or_default()
}

/// A login's browser description as a script argument: empty for none,
/// capped as every store keeps it.
fn browser_arg<'a>(who: &SignIn<'a>) -> &'a str {
    who.browser
        .map(crate::session::browser::capped)
        .unwrap_or_default()
}
