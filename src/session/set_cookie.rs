//! The one `Set-Cookie` of the session cookie on a response, when one is due.

use http::HeaderMap;
use http::header::{self, HeaderValue};

use super::commit::CookieOut;
use super::rules::SessionRules;

impl SessionRules {
    /// Adds the `Set-Cookie` that `out` calls for (none for
    /// [`CookieOut::Keep`]), and keeps shared caches from storing the
    /// response that carries it.
    pub fn apply_cookie(&self, headers: &mut HeaderMap, out: CookieOut, https: bool, now: u64) {
        let secure = self.jar.secure_for(https);
        let value = match out {
            CookieOut::Keep => return,
            CookieOut::Set(claims) => {
                let remaining = claims
                    .created
                    .saturating_add(self.policy.cookie_lifetime(claims.remembered))
                    .saturating_sub(now);
                let value = self.signer.encode(&claims);
                self.jar.set(&value, secure, remaining, claims.remembered)
            }
            CookieOut::Clear => self.jar.clear(secure),
        };
        // The string's own buffer becomes the value: no copy.
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            headers.append(header::SET_COOKIE, v);
            no_store_on_cookie(headers);
        }
    }
}

/// A response that sets a session cookie must never be cached by a shared cache.
fn no_store_on_cookie(headers: &mut HeaderMap) {
    let cacheable = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| {
            let v = v.to_ascii_lowercase();
            !(v.contains("no-store") || v.contains("private") || v.contains("no-cache"))
        });
    if cacheable {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
}
