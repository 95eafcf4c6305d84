//! Who may use the admin listener. With `admin.token` set, every request
//! must carry `Authorization: Bearer <token>`; the comparison takes the
//! same time whatever the guess (both sides are hashed first, so not even
//! the token's length shows). Without a token only a loopback listener
//! answers: `check` refuses any other address without one, and should a
//! reload remove the token while the listener (bound at start) is on such
//! an address, every request is refused rather than let through.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminError;

/// Lets the request through, or says it is [`AdminError::Unauthorized`].
/// `token` is the one in force; `listener` the address the admin listener
/// is bound to.
pub fn check(
    token: Option<&str>,
    headers: &HeaderMap,
    listener: SocketAddr,
) -> Result<(), AdminError> {
    let Some(expected) = token else {
        return if listener.ip().is_loopback() {
            Ok(())
        } else {
            Err(AdminError::Unauthorized)
        };
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .ok_or(AdminError::Unauthorized)?;
    if same(presented, expected.as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized)
    }
}

/// The token of a `Bearer` credential (the scheme in any case, RFC 9110
/// section 11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether two secrets are equal, in time that depends on neither.
fn same(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert(AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    const LOOPBACK: &str = "127.0.0.1:9901";
    const EVERYWHERE: &str = "0.0.0.0:9901";

    #[test]
    fn a_token_in_force_is_needed_and_must_match() {
        let at = LOOPBACK.parse().unwrap();
        let ok = |h: Option<&str>| check(Some("s3cret"), &headers(h), at).is_ok();
        assert!(ok(Some("Bearer s3cret")));
        assert!(ok(Some("bearer  s3cret ")));
        assert!(!ok(None));
        assert!(!ok(Some("Bearer")));
        assert!(!ok(Some("Bearer ")));
        assert!(!ok(Some("Bearer s3cre")));
        assert!(!ok(Some("Bearer s3cret2")));
        assert!(!ok(Some("Basic czNjcmV0")));
        assert!(!ok(Some("s3cret")));
    }

    #[test]
    fn without_a_token_only_loopback_answers() {
        assert!(check(None, &headers(None), LOOPBACK.parse().unwrap()).is_ok());
        assert!(check(None, &headers(None), "[::1]:9901".parse().unwrap()).is_ok());
        assert!(check(None, &headers(None), EVERYWHERE.parse().unwrap()).is_err());
        let any = headers(Some("Bearer anything"));
        assert!(check(None, &any, EVERYWHERE.parse().unwrap()).is_err());
    }
}
