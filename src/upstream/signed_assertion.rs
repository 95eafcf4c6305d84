//! The signed assertion: `{prefix}Signature: v1;kid=..;t=..;sig=..` on
//! every forwarded request when `headers.sign_key` is set, so that a
//! backend reachable by others than sessiongate can tell the session
//! headers it gets are sessiongate's.
//!
//! The signature is HMAC-SHA256, base64url without padding, over the
//! canonical string: seven fields, one a line, joined by `\n`, with no
//! line end after the last:
//!
//! ```text
//! v1
//! METHOD                     as forwarded (REQUEST_METHOD)
//! /path?query                the normalised target as forwarded (REQUEST_URI)
//! t                          unix seconds, as in the header
//! user                       {prefix}User as forwarded, or empty
//! groups                     {prefix}Groups as forwarded, or empty
//! sha256-hex(data)           of {prefix}Data as forwarded, or of nothing
//! ```
//!
//! No field can hold a `\n`, so none can pass for two: the method and the
//! target come from the request line, which HTTP forbids to carry control
//! characters (hyper refuses them, and the `http` types cannot hold them),
//! the user and groups are read back from the header values just set,
//! which cannot hold them either, `t` is digits and the data is hashed.
//! Reading the values back from the headers also makes the signature cover
//! exactly what is forwarded: a value that could not be sent is signed as
//! absent, as the backend sees it.
//!
//! The keyed HMAC state is made once per config; a request clones it (two
//! SHA-256 states, no allocation) and allocates only the header's value.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, Mac as _};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};

use crate::config::HeadersConfig;

/// The version that opens both the header value and the canonical string.
pub const VERSION: &str = "v1";

/// Bytes of a signature, base64url without padding (32 bytes of HMAC-SHA256).
const SIG_LEN: usize = 43;

/// SHA-256 of nothing, in hex: the data field of every request without
/// session data (public routes, fresh sessions), spared a hash.
const EMPTY_DATA_HASH: &[u8; 64] =
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What a signature vouches for: the request as forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Assertion<'a> {
    /// The request method.
    pub method: &'a str,
    /// The normalised path and query, as forwarded (`/`: none).
    pub target: &'a str,
    /// When sessiongate forwarded it, unix seconds.
    pub t: u64,
    /// The `{prefix}User` value forwarded; empty for none.
    pub user: &'a [u8],
    /// The `{prefix}Groups` value forwarded; empty for none.
    pub groups: &'a [u8],
    /// The `{prefix}Data` value forwarded; empty for none.
    pub data: &'a [u8],
}

impl Assertion<'_> {
    /// Feeds the canonical string to `out`, piece by piece.
    fn write(&self, mut out: impl FnMut(&[u8])) {
        let mut t = itoa::Buffer::new();
        let data = match self.data {
            b"" => *EMPTY_DATA_HASH,
            data => hex(&Sha256::digest(data).into()),
        };
        for (i, field) in [
            VERSION.as_bytes(),
            self.method.as_bytes(),
            self.target.as_bytes(),
            t.format(self.t).as_bytes(),
            self.user,
            self.groups,
            &data,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out(b"\n");
            }
            out(field);
        }
    }

    /// The canonical string, whole (the signer feeds it to the HMAC
    /// without building it).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(|piece| out.extend_from_slice(piece));
        out
    }
}

/// Lower-case hex of a SHA-256 digest, on the stack.
fn hex(digest: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
    out
}

/// Signs forwarded requests with the first of `headers.sign_key`.
#[derive(Clone)]
pub struct AssertionSigner {
    /// The key's id, as the header names it.
    kid: String,
    /// HMAC-SHA256 with the key already absorbed.
    keyed: Hmac<Sha256>,
    /// `{prefix}Signature`.
    name: HeaderName,
    /// `{prefix}User`, `{prefix}Groups`, `{prefix}Data`: what is signed.
    user: HeaderName,
    groups: HeaderName,
    data: HeaderName,
}

impl std::fmt::Debug for AssertionSigner {
    // The keyed state holds the key: only its id is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AssertionSigner {
    /// The signer of `cfg`'s first sign key; `None` when there is none.
    pub fn new(cfg: &HeadersConfig) -> Option<Self> {
        let key = cfg.sign_keys.first()?;
        // HMAC takes a key of any length: this cannot fail.
        let keyed = Hmac::<Sha256>::new_from_slice(&key.key).ok()?;
        let names = &cfg.names;
        Some(AssertionSigner {
            kid: key.kid.clone(),
            keyed,
            name: names.signature.clone(),
            user: names.user.clone(),
            groups: names.groups.clone(),
            data: names.data.clone(),
        })
    }

    /// The assertion of a request whose session headers are set in
    /// `headers` (absent ones are empty).
    pub fn assertion<'a>(
        &self,
        headers: &'a HeaderMap,
        method: &'a str,
        target: &'a str,
        t: u64,
    ) -> Assertion<'a> {
        let value = |name: &HeaderName| headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
        Assertion {
            method,
            target,
            t,
            user: value(&self.user),
            groups: value(&self.groups),
            data: value(&self.data),
        }
    }

    /// The key id signatures name.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The header value for `assertion`:
    /// `v1;kid=KID;t=T;sig=BASE64URL`.
    pub fn value(&self, assertion: &Assertion<'_>) -> HeaderValue {
        let mut mac = self.keyed.clone();
        assertion.write(|piece| mac.update(piece));
        let tag = mac.finalize().into_bytes();
        let mut sig = [0u8; SIG_LEN];
        // 32 bytes always make 43 characters.
        let sig = match URL_SAFE_NO_PAD.encode_slice(tag, &mut sig) {
            Ok(n) => &sig[..n],
            Err(_) => &sig[..0],
        };
        let mut t = itoa::Buffer::new();
        let t = t.format(assertion.t);
        let mut out = Vec::with_capacity(
            VERSION.len()
                + ";kid=".len()
                + self.kid.len()
                + ";t=".len()
                + t.len()
                + ";sig=".len()
                + SIG_LEN,
        );
        for piece in [
            VERSION.as_bytes(),
            b";kid=",
            self.kid.as_bytes(),
            b";t=",
            t.as_bytes(),
            b";sig=",
            sig,
        ] {
            out.extend_from_slice(piece);
        }
        // Hex, digits and base64url: always a valid header value.
        HeaderValue::from_maybe_shared(Bytes::from(out))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Sets `{prefix}Signature` on a request about to be forwarded, over
    /// the session headers already set in `headers`.
    pub fn sign(&self, headers: &mut HeaderMap, method: &str, target: &str, t: u64) {
        let value = self.value(&self.assertion(headers, method, target, t));
        headers.insert(self.name.clone(), value);
    }
}

/// What the CGI gateway needs to sign again the request a script's local
/// redirect makes (a GET of another path, with the same session headers):
/// the signer and the time of the original request.
#[derive(Debug, Clone)]
pub struct Resign {
    /// The signer of the config the request came under.
    pub signer: std::sync::Arc<AssertionSigner>,
    /// The original request's `t`.
    pub t: u64,
}

impl Resign {
    /// `headers` signed for `method target` instead.
    pub fn sign(&self, headers: &mut HeaderMap, method: &str, target: &str) {
        self.signer.sign(headers, method, target, self.t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A config with one route, and `extra`.
    fn minimal(extra: &str) -> String {
        format!(
            "[session]\nsecret_keys = [\"session-key-0123456789-abcdefghijkl\"]\n{extra}\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n"
        )
    }

    /// A `[headers]` section with one sign key.
    fn headers_config() -> HeadersConfig {
        let text = minimal("[headers]\nsign_key = \"sign-key-0123456789-abcdefghijklmnop\"\n");
        let config: Config = text.parse().expect("config");
        config.headers
    }

    #[test]
    fn the_canonical_string_is_seven_lines_without_a_final_line_end() {
        let a = Assertion {
            method: "POST",
            target: "/members/a%2Fb?x=1&y",
            t: 1_700_000_000,
            user: "zoë".as_bytes(),
            groups: b"staff,admins",
            data: b"cart=3&n=1",
        };
        let data_hash = format!("{:x}", Sha256::digest(b"cart=3&n=1"));
        assert_eq!(
            String::from_utf8(a.canonical()).expect("UTF-8"),
            format!("v1\nPOST\n/members/a%2Fb?x=1&y\n1700000000\nzoë\nstaff,admins\n{data_hash}")
        );
    }

    #[test]
    fn the_digest_of_nothing_is_sha256_of_nothing() {
        assert_eq!(*EMPTY_DATA_HASH, hex(&Sha256::digest(b"").into()));
    }

    #[test]
    fn absent_fields_are_empty_lines_and_the_digest_of_nothing() {
        let headers = HeaderMap::new();
        let signer = AssertionSigner::new(&headers_config()).expect("a signer");
        let a = signer.assertion(&headers, "GET", "/", 5);
        assert_eq!(
            a.canonical(),
            b"v1\nGET\n/\n5\n\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_fields_are_read_back_from_the_headers_forwarded() {
        let cfg = headers_config();
        let mut headers = HeaderMap::new();
        headers.insert(cfg.names.user.clone(), HeaderValue::from_static("alice"));
        headers.insert(cfg.names.groups.clone(), HeaderValue::from_static("a,b"));
        headers.insert(cfg.names.data.clone(), HeaderValue::from_static("k=v"));
        let signer = AssertionSigner::new(&cfg).expect("a signer");
        let a = signer.assertion(&headers, "GET", "/x?q", 7);
        assert_eq!(
            (a.user, a.groups, a.data),
            (&b"alice"[..], &b"a,b"[..], &b"k=v"[..])
        );
    }

    #[test]
    fn the_header_names_the_key_and_time_and_carries_the_hmac() {
        let cfg = headers_config();
        let signer = AssertionSigner::new(&cfg).expect("a signer");
        assert_eq!(signer.kid(), cfg.sign_keys[0].kid);
        assert_eq!(signer.kid().len(), 8);
        let mut headers = HeaderMap::new();
        headers.insert(cfg.names.user.clone(), HeaderValue::from_static("alice"));
        signer.sign(&mut headers, "GET", "/a?b", 1_700_000_000);
        let value = headers[&cfg.names.signature].to_str().expect("ASCII");
        let prefix = format!("v1;kid={};t=1700000000;sig=", signer.kid());
        let sig = value.strip_prefix(&prefix).expect(value);
        assert_eq!(sig.len(), SIG_LEN);

        let mut mac =
            Hmac::<Sha256>::new_from_slice(b"sign-key-0123456789-abcdefghijklmnop").expect("key");
        mac.update(
            &signer
                .assertion(&headers, "GET", "/a?b", 1_700_000_000)
                .canonical(),
        );
        assert_eq!(sig, URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));

        // Another method, path or time signs differently.
        for (method, target, t) in [
            ("POST", "/a?b", 1_700_000_000),
            ("GET", "/a", 1_700_000_000),
            ("GET", "/a?b", 1_700_000_001),
        ] {
            let other = signer.value(&signer.assertion(&headers, method, target, t));
            assert!(
                !other.to_str().expect("ASCII").ends_with(sig),
                "{method} {target} {t}"
            );
        }
    }

    #[test]
    fn no_sign_key_no_signer() {
        let config: Config = minimal("").parse().expect("config");
        assert!(AssertionSigner::new(&config.headers).is_none());
    }

    #[test]
    fn the_signer_shows_its_key_id_only() {
        let signer = AssertionSigner::new(&headers_config()).expect("a signer");
        let shown = format!("{signer:?}");
        assert!(!shown.contains("sign-key"), "{shown}");
        assert!(shown.contains(signer.kid()), "{shown}");
    }
}
