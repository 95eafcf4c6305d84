//! The session cookie: its signed value and its `Set-Cookie` attributes.
//!
//! Value layout before base64url (no padding), 74 bytes:
//!
//! ```text
//! version (1) | flags (1) | created, unix seconds, big endian (8) | id (32) | HMAC-SHA256 (32)
//! ```
//!
//! The MAC covers everything before it. The `STORED` flag tells an anonymous
//! session that was never written to the store (still valid when the store
//! does not know it) from one that was stored and has since ended; the
//! `REMEMBERED` flag marks a "remember me" session, whose cookie may be as
//! old as `login.remember_me` allows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::id::{ID_LEN, SessionId};
use crate::config::SessionConfig;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const SIGNED_LEN: usize = 1 + 1 + 8 + ID_LEN;
const RAW_LEN: usize = SIGNED_LEN + MAC_LEN;
/// Length of the cookie value in characters.
pub const VALUE_LEN: usize = (RAW_LEN * 4).div_ceil(3);

/// Flag: the session has been written to the store.
const STORED: u8 = 0b0000_0001;
/// Flag: a "remember me" session.
const REMEMBERED: u8 = 0b0000_0010;

/// What a verified cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieClaims {
    /// The session id.
    pub id: SessionId,
    /// When the session was created, unix seconds.
    pub created: u64,
    /// Whether the session had been written to the store when this cookie was issued.
    pub stored: bool,
    /// Whether the session is a "remember me" one.
    pub remembered: bool,
}

/// Why a cookie value was not accepted. Never shown to clients: a bad
/// cookie is simply "no session".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Not our format.
    #[error("malformed session cookie")]
    Malformed,
    /// No configured key made this MAC.
    #[error("session cookie signature does not verify")]
    BadSignature,
    /// Signed by us, but older than `max_lifetime`.
    #[error("session cookie is older than max_lifetime")]
    TooOld,
}

/// Signs with the first key; verifies with every key (rotation).
///
/// Each key's HMAC state is keyed once at load and cloned per use, so a
/// request pays for the hash only, not for the key schedule.
///
/// The last value a thread verified is remembered with the signer that
/// verified it (see [`LAST_VERIFIED`]): the requests of a session on a
/// connection present the same cookie one after another, and the same
/// bytes under the same keys verify the same way. A value is compared with
/// the remembered one in constant time; the age check is made every time.
#[derive(Clone)]
pub struct Signer {
    keys: Vec<HmacSha256>,
    /// Tells this signer's keys from those of any other signer made in
    /// this process (a reload makes a new one); clones share it.
    generation: u64,
}

/// A cookie value verified by the signer of `generation`, and its bytes.
struct Verified {
    generation: u64,
    value: [u64; VALUE_WORDS],
    raw: [u8; RAW_LEN],
}

/// A cookie value in eight-byte words (the last padded with zeros), for a
/// constant-time comparison a word at a time rather than a byte at a time.
const VALUE_WORDS: usize = VALUE_LEN.div_ceil(8);

/// `value` (of [`VALUE_LEN`] bytes) as words.
fn value_words(value: &[u8; VALUE_LEN]) -> [u64; VALUE_WORDS] {
    let mut words = [0u64; VALUE_WORDS];
    for (word, bytes) in words.iter_mut().zip(value.chunks(8)) {
        let mut padded = [0u8; 8];
        padded[..bytes.len()].copy_from_slice(bytes);
        *word = u64::from_ne_bytes(padded);
    }
    words
}

thread_local! {
    /// The last cookie value this thread verified.
    static LAST_VERIFIED: std::cell::RefCell<Option<Verified>> =
        const { std::cell::RefCell::new(None) };
}

/// Numbers signers, so that no two share a [`Signer::generation`].
static SIGNERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Signer {
    /// Builds a signer; `keys` must not be empty (the config guarantees it).
    pub fn new(keys: &[Vec<u8>]) -> Self {
        let keys = keys
            .iter()
            .filter_map(|k| HmacSha256::new_from_slice(k).ok())
            .collect();
        let generation = SIGNERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Signer { keys, generation }
    }

    /// The cookie value for a session.
    pub fn encode(&self, claims: &CookieClaims) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1] =
            if claims.stored { STORED } else { 0 } | if claims.remembered { REMEMBERED } else { 0 };
        raw[2..10].copy_from_slice(&claims.created.to_be_bytes());
        raw[10..SIGNED_LEN].copy_from_slice(claims.id.as_bytes());
        let mac = self.mac(0, &raw[..SIGNED_LEN]);
        raw[SIGNED_LEN..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Verifies a cookie value against every key, in constant time per key,
    /// and checks its age against `max_lifetime` (seconds) before any store lookup.
    pub fn decode(
        &self,
        value: &str,
        now: u64,
        max_lifetime: u64,
    ) -> Result<CookieClaims, CookieError> {
        self.decode_remembered(value, now, max_lifetime, max_lifetime)
    }

    /// [`Signer::decode`], where the cookie of a "remember me" session may
    /// be `remembered_lifetime` seconds old.
    pub fn decode_remembered(
        &self,
        value: &str,
        now: u64,
        max_lifetime: u64,
        remembered_lifetime: u64,
    ) -> Result<CookieClaims, CookieError> {
        if value.len() != VALUE_LEN {
            return Err(CookieError::Malformed);
        }
        let raw = match self.recall(value) {
            Some(raw) => raw,
            None => {
                let raw = self.verify(value)?;
                self.remember(value, &raw);
                raw
            }
        };
        let signed = &raw[..SIGNED_LEN];
        if signed[0] != VERSION {
            return Err(CookieError::Malformed);
        }
        let mut created = [0u8; 8];
        created.copy_from_slice(&signed[2..10]);
        let created = u64::from_be_bytes(created);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&signed[10..SIGNED_LEN]);
        let remembered = signed[1] & REMEMBERED != 0;
        let lifetime = if remembered {
            remembered_lifetime
        } else {
            max_lifetime
        };
        if now >= created.saturating_add(lifetime) {
            return Err(CookieError::TooOld);
        }
        Ok(CookieClaims {
            id: SessionId::from_bytes(id),
            created,
            stored: signed[1] & STORED != 0,
            remembered,
        })
    }

    /// The bytes of `value` (of [`VALUE_LEN`]) if their MAC is one of our keys'.
    fn verify(&self, value: &str) -> Result<[u8; RAW_LEN], CookieError> {
        let mut raw = [0u8; RAW_LEN];
        match URL_SAFE_NO_PAD.decode_slice(value.as_bytes(), &mut raw) {
            Ok(RAW_LEN) => {}
            _ => return Err(CookieError::Malformed),
        }
        let (signed, mac) = raw.split_at(SIGNED_LEN);
        // Every key is tried even after a match would be found, so timing
        // does not reveal which key signed.
        let mut verified = false;
        for key in &self.keys {
            let mut m = key.clone();
            m.update(signed);
            verified |= m.verify_slice(mac).is_ok();
        }
        if !verified {
            return Err(CookieError::BadSignature);
        }
        Ok(raw)
    }

    /// The bytes of `value` if it is the value this signer verified last on
    /// this thread. Compared in constant time: a forged value learns
    /// nothing of the remembered one from how long the comparison takes.
    fn recall(&self, value: &str) -> Option<[u8; RAW_LEN]> {
        use subtle::ConstantTimeEq as _;
        // The length is no secret: every cookie value has the same.
        let words = value_words(value.as_bytes().try_into().ok()?);
        LAST_VERIFIED.with_borrow(|last| {
            let last = last.as_ref()?;
            let same = last.generation == self.generation
                && bool::from(words.as_slice().ct_eq(last.value.as_slice()));
            same.then_some(last.raw)
        })
    }

    /// Remembers `value` (of [`VALUE_LEN`]) as verified, with its bytes.
    fn remember(&self, value: &str, raw: &[u8; RAW_LEN]) {
        let Ok(text) = value.as_bytes().try_into() else {
            return;
        };
        LAST_VERIFIED.set(Some(Verified {
            generation: self.generation,
            value: value_words(text),
            raw: *raw,
        }));
    }

    /// A CSRF token bound to a session id: HMAC with the signing key over a
    /// domain-separated message, base64url.
    pub fn csrf_token(&self, id: &SessionId) -> String {
        let mut msg = Vec::with_capacity(5 + ID_LEN);
        msg.extend_from_slice(b"csrf:");
        msg.extend_from_slice(id.as_bytes());
        URL_SAFE_NO_PAD.encode(self.mac(0, &msg))
    }

    /// Checks a CSRF token against every key in constant time.
    pub fn verify_csrf(&self, id: &SessionId, token: &str) -> bool {
        let Ok(mac) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        let mut ok = false;
        for key in &self.keys {
            let mut m = key.clone();
            m.update(b"csrf:");
            m.update(id.as_bytes());
            ok |= m.verify_slice(&mac).is_ok();
        }
        ok
    }

    fn mac(&self, key: usize, msg: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.keys[key].clone();
        m.update(msg);
        m.finalize().into_bytes().into()
    }
}

/// Finds every value of the cookie `name` in the request's `Cookie` headers.
///
/// The headers are split as bytes, and only a value of `name` is read as
/// text: the other cookies (often most of the header) are not checked
/// byte by byte, and one of them with bytes that are not text no longer
/// hides ours.
pub fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| cookie_pairs(v.as_bytes()))
        .filter_map(move |pair| {
            let eq = memchr::memchr(b'=', pair)?;
            let (k, v) = (&pair[..eq], &pair[eq + 1..]);
            if k.trim_ascii() != name.as_bytes() {
                return None;
            }
            std::str::from_utf8(v.trim_ascii())
                .ok()
                .map(|v| v.trim_matches('"'))
        })
}

/// The `;`-separated pairs of one `Cookie` header value, untrimmed
/// (found with `memchr`: a session cookie makes the header long).
pub fn cookie_pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Builds `Set-Cookie` values; the attribute tails are formatted once per config.
#[derive(Debug, Clone)]
pub struct CookieJar {
    name: String,
    tail_plain: String,
    tail_secure: String,
    persistent: bool,
    secure: crate::config::CookieSecure,
}

impl CookieJar {
    /// Prepares the attribute tails from `[session]`.
    pub fn new(cfg: &SessionConfig) -> Self {
        let mut tail = format!(
            "; Path={}; HttpOnly; SameSite={}",
            cfg.cookie_path,
            cfg.cookie_same_site.as_str()
        );
        let domain = cfg
            .cookie_domain
            .as_ref()
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        let tail_plain = format!("{tail}{domain}");
        tail.push_str("; Secure");
        tail.push_str(&domain);
        CookieJar {
            name: cfg.cookie_name.clone(),
            tail_plain,
            tail_secure: tail,
            persistent: cfg.persistent_cookie,
            // Browsers drop __Host- and __Secure- cookies without Secure.
            secure: if cfg.cookie_name.starts_with("__Host-")
                || cfg.cookie_name.starts_with("__Secure-")
            {
                crate::config::CookieSecure::Always
            } else {
                cfg.cookie_secure
            },
        }
    }

    /// Whether the cookie is Secure for a client whose connection is (or is
    /// not) HTTPS.
    pub fn secure_for(&self, https: bool) -> bool {
        match self.secure {
            crate::config::CookieSecure::Auto => https,
            crate::config::CookieSecure::Always => true,
            crate::config::CookieSecure::Never => false,
        }
    }

    /// The cookie name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The attributes after the value, with or without Secure.
    fn tail(&self, secure: bool) -> &str {
        if secure {
            &self.tail_secure
        } else {
            &self.tail_plain
        }
    }

    /// `Set-Cookie` for a session; `remaining` is the time left until
    /// `max_lifetime`, used as Max-Age for persistent cookies. A "remember
    /// me" session's cookie is `persistent` whatever `persistent_cookie` says.
    pub fn set(&self, value: &str, secure: bool, remaining: u64, persistent: bool) -> String {
        let tail = self.tail(secure);
        // Pushed piece by piece into one allocation of the right size.
        let mut out = String::with_capacity(self.name.len() + 1 + value.len() + tail.len() + 30);
        out.push_str(&self.name);
        out.push('=');
        out.push_str(value);
        out.push_str(tail);
        if self.persistent || persistent {
            out.push_str("; Max-Age=");
            out.push_str(itoa::Buffer::new().format(remaining));
        }
        out
    }

    /// `Set-Cookie` that removes the cookie, repeating Path, Domain and SameSite.
    pub fn clear(&self, secure: bool) -> String {
        let tail = self.tail(secure);
        format!(
            "{}={tail}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(keys: &[&str]) -> Signer {
        Signer::new(
            &keys
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        )
    }

    const K1: &str = "key-one-key-one-key-one-key-one-1";
    const K2: &str = "key-two-key-two-key-two-key-two-2";

    fn claims() -> CookieClaims {
        CookieClaims {
            id: SessionId::generate(),
            created: 1_000,
            stored: true,
            remembered: false,
        }
    }

    #[test]
    fn round_trip() {
        let s = signer(&[K1]);
        let c = claims();
        let v = s.encode(&c);
        assert_eq!(v.len(), VALUE_LEN);
        assert_eq!(s.decode(&v, 1_001, 100), Ok(c));
    }

    #[test]
    fn rotation_verifies_old_and_signs_new() {
        let old = signer(&[K2]);
        let rotated = signer(&[K1, K2]);
        let c = claims();
        let v_old = old.encode(&c);
        assert_eq!(rotated.decode(&v_old, 1_001, 100), Ok(c));
        let v_new = rotated.encode(&c);
        assert_eq!(signer(&[K1]).decode(&v_new, 1_001, 100), Ok(c));
        assert_eq!(
            signer(&[K1]).decode(&v_old, 1_001, 100),
            Err(CookieError::BadSignature)
        );
    }

    #[test]
    fn tampering_fails() {
        let s = signer(&[K1]);
        let v = s.encode(&claims());
        let mut bytes = v.into_bytes();
        bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            s.decode(&tampered, 1_001, 100),
            Err(CookieError::BadSignature)
        );
        assert_eq!(s.decode("", 1_001, 100), Err(CookieError::Malformed));
        assert_eq!(
            s.decode(&"A".repeat(VALUE_LEN), 1_001, 100),
            Err(CookieError::BadSignature)
        );
    }

    #[test]
    fn a_value_verified_just_before_is_still_judged_by_its_own_bytes_and_keys() {
        let s = signer(&[K1]);
        let c = claims();
        let v = s.encode(&c);
        assert_eq!(s.decode(&v, 1_001, 100), Ok(c));
        // Remembered now: the same value again, then every change of it.
        assert_eq!(s.decode(&v, 1_001, 100), Ok(c));
        for i in 0..VALUE_LEN {
            let mut bytes = v.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(s.decode(&tampered, 1_001, 100).is_err(), "byte {i}");
            // Checked against the remembered value after a failure too.
            assert_eq!(s.decode(&v, 1_001, 100), Ok(c));
        }
        // Its age is checked every time.
        assert_eq!(s.decode(&v, 1_100, 100), Err(CookieError::TooOld));
        // Another signer (a reload with other keys) verifies it afresh.
        assert_eq!(
            signer(&[K2]).decode(&v, 1_001, 100),
            Err(CookieError::BadSignature)
        );
        // A clone shares the keys, and the remembered value.
        assert_eq!(s.clone().decode(&v, 1_001, 100), Ok(c));
    }

    #[test]
    fn too_old_fails() {
        let s = signer(&[K1]);
        let v = s.encode(&claims());
        assert_eq!(s.decode(&v, 1_100, 100), Err(CookieError::TooOld));
        assert!(s.decode(&v, 1_099, 100).is_ok());
    }

    #[test]
    fn csrf_tokens_bind_to_the_session() {
        let s = signer(&[K1]);
        let a = SessionId::generate();
        let t = s.csrf_token(&a);
        assert!(s.verify_csrf(&a, &t));
        assert!(!s.verify_csrf(&SessionId::generate(), &t));
        assert!(!s.verify_csrf(&a, "nonsense"));
    }

    #[test]
    fn finds_our_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; sg_session=abc; b=2".parse().unwrap(),
        );
        h.append(http::header::COOKIE, "sg_session=def".parse().unwrap());
        // Quoted, spaced, and beside a cookie whose bytes are not text.
        h.append(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(
                b"x=\xff\xfe ;  sg_session = \"ghi\" ;sg_sessionx=no;=;noeq",
            )
            .unwrap(),
        );
        let v: Vec<_> = cookie_values(&h, "sg_session").collect();
        assert_eq!(v, vec!["abc", "def", "ghi"]);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_and_only_genuine_cookies_verify(input in ".{0,200}") {
            let s = signer(&[K1]);
            proptest::prop_assert!(s.decode(&input, 0, u64::MAX).is_err());
        }

        #[test]
        fn any_bit_flip_is_rejected(pos in 0usize..VALUE_LEN, ch in "[A-Za-z0-9_-]") {
            let s = signer(&[K1]);
            let v = s.encode(&claims());
            let mut bytes = v.clone().into_bytes();
            bytes[pos] = ch.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            if changed != v {
                proptest::prop_assert!(s.decode(&changed, 1_001, 100).is_err());
            }
        }
    }
}
