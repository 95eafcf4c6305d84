//! The session cookie's value: `Signer::decode` of any text, the round trip
//! `encode` -> `decode` of any claims, and the CSRF token check.
//!
//! Only a value the signer made verifies: a decoded value encodes back to
//! exactly itself (no second spelling of one cookie), a changed value never
//! verifies, and a genuine one verifies with every key order until it is
//! older than `max_lifetime`.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sessiongate::session::SessionId;
use sessiongate::session::cookie::{CookieClaims, CookieError, Signer, VALUE_LEN};

const OLD_KEY: &[u8] = b"an-old-key-that-still-verifies-cookies";
const NEW_KEY: &[u8] = b"the-current-key-that-signs-new-cookies";

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any text as a cookie value.
    Decode {
        value: String,
        now: u64,
        max_lifetime: u64,
    },
    /// A genuine cookie, checked at some time.
    RoundTrip {
        claims: Claims,
        now: u64,
        max_lifetime: u64,
        signed_with_old_key: bool,
    },
    /// A genuine cookie with some characters replaced.
    Tamper {
        claims: Claims,
        edits: Vec<(u8, u8)>,
    },
    /// Any text as the CSRF token of a session.
    Csrf { id: [u8; 32], token: String },
}

#[derive(Debug, Arbitrary)]
struct Claims {
    id: [u8; 32],
    created: u64,
    stored: bool,
    remembered: bool,
}

impl From<&Claims> for CookieClaims {
    fn from(c: &Claims) -> Self {
        CookieClaims {
            id: SessionId::from_bytes(c.id),
            created: c.created,
            stored: c.stored,
            remembered: c.remembered,
        }
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fuzz_target!(|input: Input| {
    let verifier = Signer::new(&[NEW_KEY.to_vec(), OLD_KEY.to_vec()]);
    match input {
        Input::Decode {
            value,
            now,
            max_lifetime,
        } => {
            if let Ok(claims) = verifier.decode(&value, now, max_lifetime) {
                assert_eq!(
                    verifier.encode(&claims),
                    value,
                    "a second spelling verified"
                );
            }
        }
        Input::RoundTrip {
            claims,
            now,
            max_lifetime,
            signed_with_old_key,
        } => {
            let claims = CookieClaims::from(&claims);
            let signer = if signed_with_old_key {
                Signer::new(&[OLD_KEY.to_vec()])
            } else {
                Signer::new(&[NEW_KEY.to_vec()])
            };
            let value = signer.encode(&claims);
            assert_eq!(value.len(), VALUE_LEN);
            assert!(value.bytes().all(|b| BASE64URL.contains(&b)), "{value}");
            let expected = if now >= claims.created.saturating_add(max_lifetime) {
                Err(CookieError::TooOld)
            } else {
                Ok(claims)
            };
            assert_eq!(verifier.decode(&value, now, max_lifetime), expected);
            let reordered = Signer::new(&[OLD_KEY.to_vec(), NEW_KEY.to_vec()]);
            assert_eq!(reordered.decode(&value, now, max_lifetime), expected);
            let stranger = Signer::new(&[b"a-key-that-never-signed-any-cookie".to_vec()]);
            assert_eq!(
                stranger.decode(&value, now, max_lifetime),
                Err(CookieError::BadSignature)
            );
        }
        Input::Tamper { claims, edits } => {
            let claims = CookieClaims::from(&claims);
            let genuine = verifier.encode(&claims);
            let mut bytes = genuine.clone().into_bytes();
            for (pos, ch) in edits {
                // Mostly characters of the alphabet, so that the change
                // reaches the signature check rather than the decoder.
                let ch = if ch < 0xc0 {
                    BASE64URL[usize::from(ch % 64)]
                } else {
                    ch & 0x7f
                };
                bytes[usize::from(pos) % VALUE_LEN] = ch;
            }
            let changed = String::from_utf8(bytes).expect("ASCII");
            let decoded = verifier.decode(&changed, 0, u64::MAX);
            if changed == genuine {
                assert_eq!(decoded, Ok(claims));
            } else {
                assert!(decoded.is_err(), "a changed cookie verified: {changed}");
            }
        }
        Input::Csrf { id, token } => {
            let id = SessionId::from_bytes(id);
            if verifier.verify_csrf(&id, &token) {
                assert!(
                    token == verifier.csrf_token(&id)
                        || token == Signer::new(&[OLD_KEY.to_vec()]).csrf_token(&id),
                    "a forged CSRF token verified: {token}"
                );
            }
            assert!(verifier.verify_csrf(&id, &verifier.csrf_token(&id)));
        }
    }
});
