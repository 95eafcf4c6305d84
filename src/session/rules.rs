//! The rules every session of one config follows: how its cookie is signed
//! and set, how long it lives, what a new one holds, and whether it is bound
//! to its client's address. Prepared once per config (and again on reload).

use std::sync::Arc;

use super::{CookieJar, Policy, Signer};
use crate::config::{LoginConfig, SessionConfig, StoreConfig};

/// Cookie signing and attributes, lifetimes, initial data, IP binding.
pub struct SessionRules {
    /// Cookie signer (the first key signs, all verify).
    pub signer: Signer,
    /// Builds `Set-Cookie` values.
    pub jar: CookieJar,
    /// Lifetime and size rules.
    pub policy: Policy,
    /// Data every new session starts with, urlencoded.
    pub initial: Arc<str>,
    /// A session is valid only from the address that created it.
    pub bind_ip: bool,
}

impl SessionRules {
    /// The rules of `[session]` (and the store's size limit, and how long
    /// the login's "remember me" lasts).
    pub fn new(session: &SessionConfig, store: &StoreConfig, login: &LoginConfig) -> Self {
        let initial = super::data::encode(
            session
                .initial
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        SessionRules {
            signer: Signer::new(&session.secret_keys),
            jar: CookieJar::new(session),
            policy: Policy::from_config(session, store.max_sessions).remembering(login.remember_me),
            initial: Arc::from(initial),
            bind_ip: session.bind_ip,
        }
    }
}
