//! The `Authorization` header of a `basic_auth` route:
//! `login::basic::credentials` on any header value.
//!
//! It never panics; what it reads as credentials has a valid user name
//! without a colon (the first colon splits); the same token under another
//! spelling of the scheme (`BASIC`, a tab, a trailing blank) gives the same
//! user and password; and a second `Authorization` header makes it
//! malformed (which one would count?).

#![no_main]

use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sessiongate::login::basic::{Credentials, credentials};
use sessiongate::session::user::valid_user;

fuzz_target!(|raw: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value.clone());
    let Credentials::Basic { user, password } = credentials(&headers) else {
        return;
    };
    assert!(valid_user(&user), "{user:?}");
    assert!(!user.contains(':'), "{user:?}");
    // Scheme in another case, blanks around: the same credentials.
    let text = String::from_utf8_lossy(raw);
    let token = text[5..].trim_ascii();
    let again = HeaderValue::from_str(&format!("BASIC\t{token} ")).expect("ASCII");
    headers.insert(AUTHORIZATION, again);
    match credentials(&headers) {
        Credentials::Basic {
            user: u,
            password: p,
        } => {
            assert_eq!((u, p), (user, password));
        }
        other => panic!("{other:?}"),
    }
    // A second Authorization header makes it ambiguous.
    headers.append(AUTHORIZATION, value);
    assert!(matches!(credentials(&headers), Credentials::Malformed(_)));
});
