//! HTTP Basic on `basic_auth` routes, for the clients that cannot fill in a
//! login form: cron jobs, monitoring, `curl` scripts.
//!
//! ```text
//! Authorization: Basic base64(user:password)
//!   -> parse ([`credentials`]): absent / malformed / user and password
//!   -> throttle (the login form's: per user and per client address)
//!   -> cache of recent successes ([`VerifiedCache`]): a hit goes through
//!   -> argon2 against the users file, on the blocking pool, a few at a time
//!      ([`UsersSource::verify_blocking`])
//!   -> remember a success; count and audit the outcome
//! ```
//!
//! No session is made for such a request, and no cookie set: the request is
//! forwarded with the user's name and nothing else of a session. The gate
//! decides what a [`Verdict`] becomes (see `proxy::Gate::admit`).
//!
//! # Why a cache
//!
//! A script that calls every second would otherwise cost an argon2
//! verification (tens of milliseconds of a core, 19 MiB) per request. The
//! cache keeps, per user, an HMAC of `user \0 password` under a key drawn at
//! start (never the password), compared in constant time; an entry serves
//! for [`VERIFIED_TTL_SECS`] and only for the users file it was checked
//! against ([`UsersSource::generation`](super::UsersSource::generation)), so a
//! changed password stops working as soon as the file is read again. Cache
//! hits are not counted as logins and not audited: only a real check is.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use super::{LoginCounters, RetryAfter, Throttle, UsersSource};
use crate::audit::{Audit, Event, How};
use crate::session::user::valid_user;

/// How long a verified password is taken on trust without another argon2
/// run: a minute turns a script's request a second into one verification a
/// minute, and bounds how long a password the proxy has stopped seeing in
/// the users file (an edit `stat` cannot tell, same size and time) still
/// works from memory.
pub const VERIFIED_TTL_SECS: u64 = 60;

/// Most users the cache remembers at once. Only successful checks are kept,
/// one entry per user of the users file, so this is reached only with a
/// very large file; then expired entries go, and if that is not enough the
/// whole cache (each user pays one verification again).
pub const VERIFIED_CAPACITY: usize = 10_000;

/// What a request's `Authorization` header offers.
#[derive(PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization`, or another scheme (`Bearer ...`).
    Absent,
    /// `Basic`, but not a usable `user:password` (the reason, for the log).
    Malformed(&'static str),
    /// A user name and a password.
    Basic {
        /// The user name (a valid one: see [`valid_user`]).
        user: String,
        /// The password, as sent.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    // The password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Absent => f.write_str("Absent"),
            Credentials::Malformed(why) => f.debug_tuple("Malformed").field(why).finish(),
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// Base64 as RFC 7617 uses it, tolerating a missing `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads the `Authorization` header(s) of a request (RFC 7617): the scheme
/// is matched without regard to case, the credentials are base64 of UTF-8
/// `user:password` (split at the first colon, so a password may hold
/// colons). Other schemes are [`Credentials::Absent`]; two `Authorization`
/// headers of which one is Basic are malformed (which one would count?).
pub fn credentials(headers: &HeaderMap) -> Credentials {
    let values = headers.get_all(header::AUTHORIZATION);
    let mut basic = values.iter().filter_map(|v| basic_token(v.as_bytes()));
    let Some(token) = basic.next() else {
        return Credentials::Absent;
    };
    if values.iter().nth(1).is_some() {
        return Credentials::Malformed("more than one Authorization header");
    }
    let Ok(decoded) = BASE64.decode(token) else {
        return Credentials::Malformed("the credentials are not base64");
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Credentials::Malformed("the credentials are not UTF-8");
    };
    let Some((user, password)) = text.split_once(':') else {
        return Credentials::Malformed("no colon between user and password");
    };
    if !valid_user(user) {
        return Credentials::Malformed(
            "the user name is empty, too long or holds control characters",
        );
    }
    Credentials::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    }
}

/// The credentials of a `Basic` value (trimmed), or `None` for another
/// scheme.
fn basic_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"basic";
    let scheme = value.get(..SCHEME.len())?;
    let rest = &value[SCHEME.len()..];
    let separated = rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t';
    (scheme.eq_ignore_ascii_case(SCHEME) && separated).then(|| rest.trim_ascii())
}

/// Recent successful verifications, one per user: see the module
/// documentation. Safe to share (`&self` only).
pub struct VerifiedCache {
    /// The HMAC key, drawn at start; `None` (the cache off, every request
    /// verified) if the system could not give random bytes.
    key: Option<[u8; 32]>,
    entries: Mutex<HashMap<Box<str>, Verified>>,
    capacity: usize,
}

/// One user's last verified password.
struct Verified {
    /// HMAC-SHA256 of `user \0 password`.
    tag: [u8; 32],
    /// The users file it was checked against.
    generation: u64,
    /// When, in unix seconds.
    at: u64,
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("on", &self.key.is_some())
            .field("users", &self.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedCache {
    /// An empty cache of at most `capacity` users (at least 1), under a
    /// fresh random key.
    pub fn new(capacity: usize) -> Self {
        let mut key = [0u8; 32];
        let key = match getrandom::fill(&mut key) {
            Ok(()) => Some(key),
            Err(e) => {
                tracing::warn!(error = %e, "no random bytes for the HTTP Basic cache: every request is verified");
                None
            }
        };
        VerifiedCache {
            key,
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Whether `password` is the one last verified for `user`, against the
    /// users file of `generation`, less than [`VERIFIED_TTL_SECS`] ago.
    pub fn confirms(&self, user: &str, password: &str, generation: u64, now: u64) -> bool {
        let Some(tag) = self.tag(user, password) else {
            return false;
        };
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(user)
            .is_some_and(|v| v.fresh(generation, now) && bool::from(v.tag.ct_eq(&tag)))
    }

    /// Remembers that `password` is `user`'s by the users file of
    /// `generation`, as of `now`.
    pub fn remember(&self, user: &str, password: &str, generation: u64, now: u64) {
        let Some(tag) = self.tag(user, password) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(user) {
            entries.retain(|_, v| v.fresh(generation, now));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            user.into(),
            Verified {
                tag,
                generation,
                at: now,
            },
        );
    }

    /// Users remembered (fresh or not).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nobody is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn tag(&self, user: &str, password: &str) -> Option<[u8; 32]> {
        let key = self.key.as_ref()?;
        // A key of any length is accepted: this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }
}

impl Verified {
    /// Checked against this users file, within the last minute (a clock
    /// that went back makes it stale too).
    fn fresh(&self, generation: u64, now: u64) -> bool {
        self.generation == generation && now >= self.at && now - self.at < VERIFIED_TTL_SECS
    }
}

/// What a request's Basic credentials come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No Basic credentials: the route's usual decision applies.
    NoCredentials,
    /// The users file says the password is the user's.
    Admitted(Arc<str>),
    /// Malformed credentials, an unknown user or a wrong password.
    Refused,
    /// Too many failures for this user or address lately; nothing checked.
    Throttled(RetryAfter),
}

/// What a check counts and records, and for whom.
pub struct Witness<'a> {
    /// `logins_total{result=...}`.
    pub counters: &'a LoginCounters,
    /// The audit log.
    pub audit: &'a Audit,
    /// The client's address (for the throttle, the log and the audit).
    pub client: IpAddr,
    /// Unix seconds, the gate's clock.
    pub now: u64,
}

/// HTTP Basic for one config: the challenge its routes send, and the cache
/// of recent successes (a reload starts a new one, with its users file).
#[derive(Debug)]
pub struct BasicGate {
    challenge: HeaderValue,
    cache: VerifiedCache,
}

impl BasicGate {
    /// The gate for `realm` (checked by the config: printable ASCII with no
    /// `"` or `\`).
    pub fn new(realm: &str) -> Self {
        let challenge =
            HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
                .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"sessiongate\""));
        BasicGate {
            challenge,
            cache: VerifiedCache::new(VERIFIED_CAPACITY),
        }
    }

    /// `WWW-Authenticate` for a 401 on a `basic_auth` route.
    pub fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    /// The cache of recent successes.
    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    /// Checks the Basic credentials in `headers` against `users`, under
    /// `throttle`; counts and audits the outcome as the login form does
    /// (cache hits aside).
    pub async fn check(
        &self,
        users: Option<&Arc<UsersSource>>,
        throttle: &Throttle,
        headers: &HeaderMap,
        w: &Witness<'_>,
    ) -> Verdict {
        let (user, password) = match credentials(headers) {
            Credentials::Absent => return Verdict::NoCredentials,
            Credentials::Malformed(why) => {
                tracing::info!(client = %w.client, reason = why, "malformed HTTP Basic credentials");
                return Verdict::Refused;
            }
            Credentials::Basic { user, password } => (user, password),
        };
        // The config allows basic_auth only with a users file.
        let Some(users) = users else {
            return Verdict::Refused;
        };
        if let Err(wait) = throttle.check(&user, w.client, w.now) {
            w.counters.inc_throttled();
            tracing::warn!(client = %w.client, user = %user, "HTTP Basic login throttled");
            w.audit
                .refused(Event::LoginThrottled, How::Basic, &user, Some(w.client));
            return Verdict::Throttled(wait);
        }
        // Read before verifying: if the file is reloaded meanwhile, the
        // success is remembered under the older generation and never used.
        let generation = users.generation();
        if self.cache.confirms(&user, &password, generation, w.now) {
            return Verdict::Admitted(user.into());
        }
        let right =
            !password.is_empty() && users.verify_blocking(user.clone(), password.clone()).await;
        if !right {
            throttle.record_failure(&user, w.client, w.now);
            w.counters.inc_failed();
            tracing::info!(client = %w.client, user = %user, "HTTP Basic login failed");
            w.audit
                .refused(Event::LoginFailed, How::Basic, &user, Some(w.client));
            return Verdict::Refused;
        }
        self.cache.remember(&user, &password, generation, w.now);
        throttle.record_success(&user, w.client);
        w.counters.inc_ok();
        tracing::info!(client = %w.client, user = %user, "HTTP Basic login");
        w.audit.basic_login(&user, Some(w.client));
        Verdict::Admitted(user.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        h
    }

    fn parsed(values: &[&[u8]]) -> Credentials {
        credentials(&with_authorization(values))
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    fn encoded(raw: &[u8]) -> Vec<u8> {
        let mut v = b"Basic ".to_vec();
        v.extend(
            base64::engine::general_purpose::STANDARD
                .encode(raw)
                .bytes(),
        );
        v
    }

    #[test]
    fn basic_credentials_are_read() {
        // "alice:correct horse", as curl -u sends it.
        assert_eq!(
            parsed(&[b"Basic YWxpY2U6Y29ycmVjdCBob3JzZQ=="]),
            basic("alice", "correct horse")
        );
        // Any case of the scheme, blanks around, padding left out.
        assert_eq!(
            parsed(&[b"bAsIc   YWxpY2U6Y29ycmVjdCBob3JzZQ  "]),
            basic("alice", "correct horse")
        );
        // The first colon splits; the password keeps the others.
        assert_eq!(parsed(&[&encoded(b"bob:a:b:c")]), basic("bob", "a:b:c"));
        // An empty password is read (and refused later, without argon2).
        assert_eq!(parsed(&[&encoded(b"bob:")]), basic("bob", ""));
        // UTF-8 names and passwords.
        assert_eq!(
            parsed(&[&encoded("zoë:pässwörd".as_bytes())]),
            basic("zoë", "pässwörd")
        );
    }

    #[test]
    fn other_schemes_are_no_credentials() {
        assert_eq!(parsed(&[]), Credentials::Absent);
        assert_eq!(parsed(&[b"Bearer abc.def"]), Credentials::Absent);
        assert_eq!(parsed(&[b"Basicx YWxpY2U6eA=="]), Credentials::Absent);
        assert_eq!(parsed(&[b"Digest username=\"a\""]), Credentials::Absent);
    }

    #[test]
    fn malformed_credentials_are_told_apart() {
        let malformed = |values: &[&[u8]]| matches!(parsed(values), Credentials::Malformed(_));
        assert!(malformed(&[b"Basic"]), "no token");
        assert!(malformed(&[b"Basic !!!not-base64"]));
        assert!(malformed(&[&encoded(b"no colon here")]));
        assert!(malformed(&[&encoded(b"\xff\xfe:password")]), "not UTF-8");
        assert!(malformed(&[&encoded(b":password")]), "empty user");
        assert!(malformed(&[&encoded(b"al\x07ice:pw")]), "control character");
        assert!(malformed(&[&encoded(
            format!("{}:pw", "a".repeat(300)).as_bytes()
        )]));
        assert!(malformed(&[b"Basic \xc3\xa9"]), "obs-text token");
        assert!(
            malformed(&[&encoded(b"alice:pw"), b"Bearer x"]),
            "two headers"
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let shown = format!("{:?}", basic("alice", "s3cret-pw"));
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn the_cache_confirms_only_the_password_it_saw() {
        let cache = VerifiedCache::new(16);
        assert!(!cache.confirms("alice", "pw", 1, 100));
        cache.remember("alice", "pw", 1, 100);
        assert!(cache.confirms("alice", "pw", 1, 100));
        assert!(cache.confirms("alice", "pw", 1, 100 + VERIFIED_TTL_SECS - 1));
        assert!(!cache.confirms("alice", "pw2", 1, 100), "another password");
        assert!(!cache.confirms("alice", "pw\0", 1, 100));
        assert!(!cache.confirms("bob", "pw", 1, 100), "another user");
    }

    #[test]
    fn the_cache_forgets_with_time_and_with_a_new_users_file() {
        let cache = VerifiedCache::new(16);
        cache.remember("alice", "pw", 1, 100);
        assert!(!cache.confirms("alice", "pw", 1, 100 + VERIFIED_TTL_SECS));
        assert!(
            !cache.confirms("alice", "pw", 2, 100),
            "the file was read again"
        );
        assert!(!cache.confirms("alice", "pw", 1, 99), "the clock went back");
    }

    #[test]
    fn the_cache_holds_no_password_and_stays_bounded() {
        let cache = VerifiedCache::new(3);
        for (i, user) in ["a", "b", "c"].iter().enumerate() {
            cache.remember(user, "hunter2", 1, 100 + i as u64);
        }
        assert_eq!(cache.len(), 3);
        // Full of fresh entries: a new user clears the lot.
        cache.remember("d", "hunter2", 1, 110);
        assert_eq!(cache.len(), 1);
        assert!(cache.confirms("d", "hunter2", 1, 110));
        // Stale entries go first.
        cache.remember("e", "x", 1, 110);
        cache.remember("f", "x", 1, 200);
        cache.remember("g", "x", 1, 200);
        assert_eq!(cache.len(), 2);
        assert!(cache.confirms("f", "x", 1, 200) && cache.confirms("g", "x", 1, 200));
        // Known users replace their own entry.
        cache.remember("f", "y", 1, 201);
        assert_eq!(cache.len(), 2);
        let shown = format!("{cache:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_challenge_names_the_realm() {
        let gate = BasicGate::new("legacy scripts");
        assert_eq!(
            gate.challenge(),
            "Basic realm=\"legacy scripts\", charset=\"UTF-8\""
        );
    }
}
