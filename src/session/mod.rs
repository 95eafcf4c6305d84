//! Sessions: ids, the signed cookie, data encoding, user names, the stores,
//! and the memory store's snapshot file.

pub mod any;
pub mod browser;
pub mod commit;
pub mod cookie;
pub mod data;
pub mod found;
pub mod id;
pub mod memory;
pub mod redis;
pub mod rules;
pub mod set_cookie;
pub mod snapshot;
pub mod store;
pub mod user;

pub use any::AnyStore;
pub use commit::{Committed, Committer, CookieOut, Hold, Identity, SessionChange};
pub use cookie::{CookieClaims, CookieJar, Signer};
pub use data::DataChange;
pub use found::{Current, Found};
pub use id::{LogTag, SessionId};
pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use rules::SessionRules;
pub use store::{
    Lookup, NewSession, Policy, ROTATED_FOR, SessionRecord, SessionStore, SessionSummary, SignIn,
    StoreError,
};
