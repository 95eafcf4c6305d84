//! The built-in login (`login.source = "users_file"`): its endpoints
//! ([`endpoints`]), and their building blocks, each free of HTTP so that it
//! can be tested on its own:
//!
//! - [`password`]: argon2id hashes for `sessiongate hash-password`; argon2
//!   and bcrypt (`htpasswd -B`) verification.
//! - [`users`]: the users file, checked line by line, and a [`UsersSource`]
//!   that reloads it when it changes or on `SIGHUP`.
//! - [`throttle`]: `login.max_attempts` failures per user and per client
//!   address within `login.attempt_window`, then `429` with `Retry-After`.
//! - [`next`]: the `next` parameter, honoured only for paths on this site.
//! - [`page`]: the built-in login page, or an operator's template.
//! - [`metrics`]: counters of successful, failed and throttled logins.
//! - [`departures`]: users who left the users file lose their sessions.
//! - [`basic`]: HTTP Basic on `basic_auth` routes (scripts, cron jobs),
//!   through the same throttle and users file, with no session.
//! - [`expiry`]: `{prefix}/status`, `{prefix}/keepalive` and the warning
//!   script `{prefix}/session.js`.
//! - [`backend_page`]: the application's own login page (`source =
//!   "backend"`): the expired notice, and its failures in the same throttle.
//! - [`your_sessions`]: `{prefix}/sessions`, where a signed-in user sees
//!   their sessions and ends the ones they no longer want.
//!
//! A `POST {prefix}/login` handler uses them in this order: [`safe_next`] on
//! `next`, [`Throttle::check`] (429 when locked, even for the right
//! password), [`UsersSource::verify_blocking`], then
//! [`Throttle::record_failure`] and the page again with `401`, or
//! [`Throttle::record_success`] and a `303` to `next`, counting each outcome
//! in [`LoginCounters`].

pub mod backend_page;
pub mod basic;
pub mod departures;
pub mod endpoints;
pub mod expiry;
pub mod groups;
pub mod metrics;
pub mod next;
pub mod page;
pub mod password;
pub mod throttle;
pub mod users;
pub mod watched;
pub mod your_sessions;

pub use basic::{BasicGate, Verdict};
pub use departures::Departures;
pub use metrics::LoginCounters;
pub use next::safe_next;
pub use page::{LoginPage, PageContext, PageError, escape_html};
pub use password::{HashFormatError, PasswordError, check_hash, hash_password, verify_password};
pub use throttle::{RetryAfter, Throttle};
pub use users::{UsersError, UsersFile, UsersSource};
