//! Committing what the backend asked of the session, atomically in the
//! store, and deciding what the cookie becomes.
//!
//! A login or logout the store could not keep is an error: the backend's
//! answer says it happened, so that answer must not reach the user, and the
//! cookie stays as it was so that the user can try again. A data change the
//! store could not keep is logged; the response still goes out.
//!
//! Backend logins go through the login throttle as the built-in form's do
//! (see [`crate::login::backend_page`]): a `Login-Failed` counts a failure,
//! a `Login` for a locked user or address is refused (the backend's answer
//! is replaced by `429`), and a `Login` that happens forgets the user's
//! failures.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::found::Current;
use super::rules::SessionRules;
use super::{
    AnyStore, CookieClaims, DataChange, NewSession, SessionId, SessionStore, SignIn, StoreError,
};
use crate::audit::{Audit, Event, How};
use crate::login::{RetryAfter, Throttle};
use crate::metrics::Metrics;

/// What a backend asked of the session (its control headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    /// Keys to set (`Set: k=v&k2=v2`, may repeat).
    pub set: Vec<(String, String)>,
    /// Keys to delete (`Delete: k1, k2`).
    pub delete: Vec<String>,
    /// Amounts to add to counters (`Incr: hits=1&stock=-2`, may repeat).
    pub incr: Vec<(String, i64)>,
    /// Log in as this user, with a new session id.
    pub login: Option<String>,
    /// The user's groups, given beside `login` (`Groups: a, b`), joined
    /// by commas; ignored without `login`.
    pub groups: Option<String>,
    /// Destroy the session.
    pub logout: bool,
    /// A sign-in the backend refused, for this user name
    /// (`Login-Failed: <user>`): counted in the login throttle.
    pub login_failed: Option<String>,
    /// Problems found, for the log (a bad user name, say).
    pub rejected: Vec<String>,
}

impl SessionChange {
    /// Whether the backend asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.delete.is_empty()
            && self.incr.is_empty()
            && self.login.is_none()
            && !self.logout
            && self.login_failed.is_none()
    }
}

/// What goes into `Set-Cookie` after the backend answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieOut {
    /// No `Set-Cookie`.
    Keep,
    /// Set the cookie for these claims.
    Set(CookieClaims),
    /// Clear the cookie.
    Clear,
}

impl CookieOut {
    /// The cookie of a session created by this request (not yet stored).
    pub fn for_new(current: Option<&Current>) -> CookieOut {
        match current {
            Some(c) if c.new => CookieOut::Set(CookieClaims {
                id: c.id,
                created: c.created,
                stored: false,
                remembered: false,
            }),
            _ => CookieOut::Keep,
        }
    }
}

/// Why a request goes on without a session and must leave the browser's
/// cookie as it is: no new session, no `Set-Cookie` of any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The cookie names an id a login just moved ([`super::Found::Rotated`]).
    Rotated,
    /// The store could not say what the cookie names (a `public` route goes
    /// on without it).
    StoreUnreachable,
    /// The request was let in by its HTTP Basic credentials: it has no
    /// session and starts none, whatever the backend answers.
    Basic,
}

/// Why the backend's login or logout did not happen; its answer must not
/// reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The store could not keep the login or logout (named).
    #[error("the session store could not keep the {0}")]
    Store(&'static str),
    /// Too many failed logins for the user or the address: the login is
    /// refused for this long.
    #[error(transparent)]
    Throttled(#[from] RetryAfter),
}

/// Who the session is after the commit, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// As before.
    Same,
    /// Logged out.
    SignedOut,
    /// A new or newly logged-in session.
    Became {
        /// Its id.
        id: SessionId,
        /// Its user.
        user: Option<Arc<str>>,
    },
}

/// The result of a commit.
#[derive(Debug)]
pub struct Committed {
    /// What `Set-Cookie` must say.
    pub cookie: CookieOut,
    /// Who the session now is.
    pub identity: Identity,
}

impl Committed {
    fn cookie(cookie: CookieOut) -> Self {
        Committed {
            cookie,
            identity: Identity::Same,
        }
    }
}

/// What is left of the backend's change for a request on [`Hold`]: no
/// session was found for it, and none may be started for it. A login still
/// happens, with its data changes (it makes a new id of its own, so it
/// replaces nothing the user holds: a login form sent twice logs in twice).
/// Without a login, data changes go nowhere (logged). A logout has nothing
/// to end when a login moved the id; when the store could not be asked, the
/// session may be alive, and clearing the cookie would leave it so: that is
/// refused. A request let in by HTTP Basic keeps nothing at all, a login
/// included: it has no session and must start none.
pub fn held_back(hold: Hold, mut change: SessionChange) -> Result<SessionChange, CommitError> {
    if hold == Hold::Basic {
        // A script's request must not turn into a session (nor a cookie it
        // would not keep anyway); the problems found are still logged.
        if !change.is_empty() {
            tracing::info!(
                "the backend's session headers on a request signed in with HTTP Basic: not applied (there is no session)"
            );
        }
        return Ok(SessionChange {
            rejected: change.rejected,
            ..SessionChange::default()
        });
    }
    if change.logout {
        match hold {
            Hold::Rotated => {
                tracing::info!("a logout with a cookie a login has just replaced: nothing to end")
            }
            // Settled above: nothing of the change is left.
            Hold::Basic => {}
            Hold::StoreUnreachable => {
                tracing::error!(
                    operation = "logout",
                    "session store unreachable: the session cannot be ended"
                );
                return Err(CommitError::Store("logout"));
            }
        }
        change.logout = false;
    }
    if change.login.is_none() && !(change.set.is_empty() && change.delete.is_empty()) {
        match hold {
            Hold::Rotated => tracing::info!(
                "the backend changed a session whose id a login has just replaced: not applied"
            ),
            Hold::StoreUnreachable => tracing::warn!(
                "session store unreachable: the backend's session changes are not applied"
            ),
            Hold::Basic => {}
        }
        change.set.clear();
        change.delete.clear();
    }
    Ok(change)
}

/// Counts and logs a store operation that failed (`what`: login, logout,
/// update, ...): the one place such a failure is reported, for the commit
/// here and the built-in login endpoints alike.
pub fn store_failed(metrics: &Metrics, what: &str, e: &StoreError) {
    Metrics::inc(&metrics.store_errors);
    tracing::error!(operation = what, error = %e, "session store failed");
}

/// Where a commit writes, and what it counts.
pub struct Committer<'a> {
    /// The rules of the session.
    pub rules: &'a SessionRules,
    /// The store.
    pub store: &'a AnyStore,
    /// Counters.
    pub metrics: &'a Metrics,
    /// The audit log.
    pub audit: &'a Audit,
    /// The login throttle (of the built-in login, shared).
    pub throttle: &'a Throttle,
    /// The client's address (kept with a new session).
    pub client: IpAddr,
    /// The request's `User-Agent`: a sign-in keeps a short description.
    pub user_agent: Option<&'a HeaderValue>,
    /// Unix seconds.
    pub now: u64,
}

impl Committer<'_> {
    /// Applies `change` to `current` (or to a session it starts), atomically
    /// in the store, and says what the cookie must become.
    pub async fn commit(
        &self,
        mut current: Option<Current>,
        change: SessionChange,
    ) -> Result<Committed, CommitError> {
        for problem in &change.rejected {
            tracing::warn!(problem = %problem, "ignoring a control header from the backend");
        }
        if let Some(user) = &change.login_failed {
            self.login_failed(user);
        }
        // Before anything changes: a refused login leaves the session as
        // it was, logout included.
        if let Some(user) = &change.login {
            self.admit_login(user)?;
        }
        let data = DataChange {
            delete: change.delete,
            set: change.set,
            incr: change.incr,
        };
        let mut identity = Identity::Same;
        if change.logout {
            if let Some(c) = current.take() {
                self.logout(&c).await?;
            }
            identity = Identity::SignedOut;
            if change.login.is_none() {
                return Ok(Committed {
                    cookie: CookieOut::Clear,
                    identity,
                });
            }
        }
        if let Some(user) = change.login {
            let browser = super::browser::describe_header(self.user_agent);
            let who = SignIn {
                user: &user,
                groups: change.groups.as_deref().unwrap_or_default(),
                remember: None,
                browser: browser.as_deref(),
            };
            return self.login(current.as_ref(), &who, &data).await;
        }
        if data.is_empty() {
            return Ok(Committed {
                cookie: CookieOut::for_new(current.as_ref()),
                identity,
            });
        }
        let cur = match current {
            Some(c) => c,
            None => {
                // A public route without a session, and the backend wants to
                // remember something: the session starts now.
                Metrics::inc(&self.metrics.sessions_created);
                let c = Current::fresh(self.now);
                identity = Identity::Became {
                    id: c.id,
                    user: None,
                };
                c
            }
        };
        Ok(Committed {
            cookie: self.update(&cur, &data).await,
            identity,
        })
    }

    /// Ends the session `c` for the backend's `Logout`.
    async fn logout(&self, c: &Current) -> Result<(), CommitError> {
        if let Err(e) = self.store.remove(&c.id).await {
            self.store_failed("logout", &e);
            return Err(CommitError::Store("logout"));
        }
        Metrics::inc(&self.metrics.sessions_logged_out);
        if let Some(user) = c.user() {
            self.audit
                .logout(How::Backend, user, Some(self.client), c.id.log_tag());
        }
        Ok(())
    }

    /// Counts a sign-in the backend refused, as the login form counts one.
    fn login_failed(&self, user: &str) {
        self.throttle.record_failure(user, self.client, self.now);
        self.metrics.logins.inc_failed();
        tracing::info!(client = %self.client, user = %user, "login failed (backend)");
        self.audit
            .refused(Event::LoginFailed, How::Backend, user, Some(self.client));
    }

    /// Refuses a backend's login for a user or address the throttle has
    /// locked, even with the right password, as the login form does.
    fn admit_login(&self, user: &str) -> Result<(), CommitError> {
        let Err(wait) = self.throttle.check(user, self.client, self.now) else {
            return Ok(());
        };
        self.metrics.logins.inc_throttled();
        tracing::warn!(client = %self.client, user = %user, "login throttled (backend)");
        self.audit
            .refused(Event::LoginThrottled, How::Backend, user, Some(self.client));
        Err(wait.into())
    }

    /// Logs the session in under a new id (the fixation defence). A data
    /// change too large is refused on its own; the login still happens.
    async fn login(
        &self,
        current: Option<&Current>,
        who: &SignIn<'_>,
        data: &DataChange,
    ) -> Result<Committed, CommitError> {
        let user = who.user;
        let new_id = SessionId::generate();
        let old = current.map(|c| c.id);
        let policy = &self.rules.policy;
        let mut result = self
            .store
            .login(
                old.as_ref(),
                &new_id,
                who,
                data,
                self.seed(),
                self.now,
                policy,
            )
            .await;
        if let Err(e @ StoreError::TooLarge { .. }) = &result {
            self.too_large(e);
            let nothing = DataChange::default();
            result = self
                .store
                .login(
                    old.as_ref(),
                    &new_id,
                    who,
                    &nothing,
                    self.seed(),
                    self.now,
                    policy,
                )
                .await;
        }
        match result {
            Ok(record) => {
                self.throttle.record_success(user, self.client);
                self.metrics.logins.inc_ok();
                Metrics::inc(&self.metrics.sessions_created);
                self.audit
                    .login(How::Backend, user, Some(self.client), new_id.log_tag());
                Ok(Committed {
                    cookie: CookieOut::Set(CookieClaims {
                        id: new_id,
                        created: record.created,
                        stored: true,
                        remembered: false,
                    }),
                    identity: Identity::Became {
                        id: new_id,
                        user: record.user,
                    },
                })
            }
            Err(e) => {
                self.store_failed("login", &e);
                Err(CommitError::Store("login"))
            }
        }
    }

    /// Stores a data change, creating the record when the cookie says it
    /// was never stored.
    async fn update(&self, cur: &Current, data: &DataChange) -> CookieOut {
        let create = (!cur.stored_cookie).then_some(NewSession {
            created: cur.created,
            ..self.seed()
        });
        let policy = &self.rules.policy;
        match self
            .store
            .update(&cur.id, data, create, self.now, policy)
            .await
        {
            Ok(_) if !cur.stored_cookie => CookieOut::Set(CookieClaims {
                id: cur.id,
                created: cur.created,
                stored: true,
                remembered: false,
            }),
            Ok(_) => CookieOut::Keep,
            Err(e) => {
                match e {
                    StoreError::TooLarge { .. } => self.too_large(&e),
                    StoreError::Gone => {
                        tracing::info!(session = %cur.id.log_hash(), "session ended before the backend's update");
                    }
                    e => self.store_failed("update", &e),
                }
                CookieOut::for_new(Some(cur))
            }
        }
    }

    fn seed(&self) -> NewSession<'_> {
        NewSession {
            created: self.now,
            initial: &self.rules.initial,
            ip: Some(self.client),
        }
    }

    fn too_large(&self, e: &StoreError) {
        Metrics::inc(&self.metrics.updates_too_large);
        tracing::warn!(error = %e, "refused a session update from the backend");
    }

    fn store_failed(&self, what: &str, e: &StoreError) {
        store_failed(self.metrics, what, e);
    }
}

impl Committed {
    /// Only a cookie decision, nobody new (used when nothing was asked).
    pub fn nothing_asked(current: Option<&Current>) -> Self {
        Committed::cookie(CookieOut::for_new(current))
    }
}
