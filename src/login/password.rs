//! Password hashes for the users file: argon2id for new hashes, argon2 and
//! bcrypt (as written by `htpasswd -B`) for verification.
//!
//! The hashes come from a file the operator writes, but verification runs on
//! every login attempt, so a hash is vetted before it is used: an unknown
//! scheme, a malformed string or cost parameters large enough to exhaust the
//! machine are refused ([`check_hash`]) rather than attempted.

use argon2::password_hash::phc::{PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Memory cost of new hashes in KiB: OWASP's first recommended argon2id
/// configuration (19 MiB, 2 passes, 1 lane).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Passes over memory (time cost) of new hashes.
pub const ARGON2_PASSES: u32 = 2;
/// Lanes (parallelism) of new hashes.
pub const ARGON2_LANES: u32 = 1;

/// The most memory an argon2 hash may ask for when it is verified: 256 MiB.
/// Every concurrent login attempt allocates this much, so a bigger value is a
/// way to run the proxy out of memory rather than a stronger hash.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes an argon2 hash may ask for.
pub const MAX_ARGON2_PASSES: u32 = 16;
/// The most lanes an argon2 hash may ask for.
pub const MAX_ARGON2_LANES: u32 = 16;
/// The highest bcrypt cost accepted: `htpasswd -C` allows 4 to 17, and each
/// step doubles the work (cost 17 already takes seconds per attempt).
pub const MAX_BCRYPT_COST: u32 = 17;
/// The lowest bcrypt cost accepted (the algorithm's own minimum).
pub const MIN_BCRYPT_COST: u32 = 4;

const OWASP_PARAMS: Params = match Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
{
    Ok(params) => params,
    Err(_) => panic!("the argon2 parameters above are out of range"),
};

/// Hashing a new password failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The operating system's random number generator or the hash function
    /// itself failed.
    #[error("could not hash the password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// A stored hash that sessiongate cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    /// The password hash is missing.
    #[error("missing password hash")]
    Empty,
    /// A scheme that is recognised but deliberately not supported.
    #[error(
        "unsupported hash scheme {scheme}; use argon2id (sessiongate hash-password) or bcrypt (htpasswd -B)"
    )]
    Unsupported {
        /// A short name of the scheme, such as `MD5 ($apr1$)`.
        scheme: &'static str,
    },
    /// Not a hash format sessiongate knows.
    #[error(
        "unknown hash format; expected argon2 ($argon2id$...) or bcrypt ($2y$...), as written by sessiongate hash-password"
    )]
    Unknown,
    /// The right scheme, but the string does not parse.
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        /// `argon2` or `bcrypt`.
        scheme: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Cost parameters beyond the limits in this module.
    #[error("{0}")]
    TooCostly(String),
}

/// Hashes `password` with argon2id, OWASP's recommended parameters and a
/// random 16-byte salt from the operating system, as a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let hash = owasp_argon2id()
        .hash_password(password.as_bytes())
        .map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// Hashes `password` with the same parameters as [`hash_password`] but a
/// caller-chosen salt (at least 8 bytes). Only for values that must be
/// reproducible, such as the dummy hash that unknown users are checked
/// against.
pub(crate) fn hash_password_with_salt(
    password: &str,
    salt: &[u8],
) -> Result<String, PasswordError> {
    let hash = owasp_argon2id()
        .hash_password_with_salt(password.as_bytes(), salt)
        .map_err(PasswordError::Hash)?;
    Ok(hash.to_string())
}

/// Tells whether `password` matches `hash`, an argon2 PHC string (argon2id,
/// argon2i or argon2d) or a bcrypt `$2y$`/`$2b$`/`$2a$` hash.
///
/// Returns `false`, without panicking, for a hash that [`check_hash`] refuses.
/// bcrypt only looks at the first 72 bytes of a password.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match parse(hash) {
        Ok(Parsed::Argon2(parsed)) => Argon2::default()
            .verify_password(password.as_bytes(), &*parsed)
            .is_ok(),
        Ok(Parsed::Bcrypt) => bcrypt::verify(password.as_bytes(), hash).unwrap_or(false),
        Err(_) => false,
    }
}

/// Checks that `hash` is a hash [`verify_password`] can use: a well-formed
/// argon2 or bcrypt hash within this module's cost limits.
pub fn check_hash(hash: &str) -> Result<(), HashFormatError> {
    parse(hash).map(|_| ())
}

fn owasp_argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, OWASP_PARAMS)
}

enum Parsed {
    // Boxed only to keep the enum small; the allocation is nothing next to
    // the memory argon2 itself takes.
    Argon2(Box<PasswordHash>),
    Bcrypt,
}

fn parse(hash: &str) -> Result<Parsed, HashFormatError> {
    if hash.is_empty() {
        return Err(HashFormatError::Empty);
    }
    if hash.starts_with("$argon2") {
        return parse_argon2(hash).map(|parsed| Parsed::Argon2(Box::new(parsed)));
    }
    if hash.starts_with("$2") {
        return parse_bcrypt(hash).map(|()| Parsed::Bcrypt);
    }
    Err(
        unsupported_scheme(hash).map_or(HashFormatError::Unknown, |scheme| {
            HashFormatError::Unsupported { scheme }
        }),
    )
}

/// Names the schemes an operator may meet in an existing htpasswd or shadow
/// file, so the error says what to do instead of only "unknown".
fn unsupported_scheme(hash: &str) -> Option<&'static str> {
    const PREFIXES: [(&str, &str); 6] = [
        ("$apr1$", "MD5 ($apr1$, htpasswd -m)"),
        ("{SHA}", "SHA-1 ({SHA}, htpasswd -s)"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("$y$", "yescrypt ($y$)"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| hash.starts_with(prefix))
        .map(|(_, name)| *name)
}

fn parse_argon2(hash: &str) -> Result<PasswordHash, HashFormatError> {
    let malformed = |reason: String| HashFormatError::Malformed {
        scheme: "argon2",
        reason,
    };
    let parsed = PasswordHash::new(hash).map_err(|e| malformed(e.to_string()))?;
    Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| malformed(e.to_string()))?;
    if let Some(version) = parsed.version {
        Version::try_from(version).map_err(|e| malformed(e.to_string()))?;
    }
    let params = Params::try_from(&parsed).map_err(|e| malformed(e.to_string()))?;
    if !params.keyid().is_empty() || !params.data().is_empty() {
        // A key id means the hash was made with a secret (pepper) we do not have.
        return Err(malformed(
            "keyid and data parameters are not supported".into(),
        ));
    }
    let salt = parsed
        .salt
        .as_ref()
        .ok_or_else(|| malformed("no salt".into()))?;
    if salt.as_ref().len() < Salt::MIN_LENGTH {
        return Err(malformed("salt too short".into()));
    }
    if parsed.hash.is_none() {
        return Err(malformed("no hash output".into()));
    }
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
        return Err(HashFormatError::TooCostly(format!(
            "argon2 memory cost m={} is above the limit of {MAX_ARGON2_MEMORY_KIB} KiB",
            params.m_cost()
        )));
    }
    if params.t_cost() > MAX_ARGON2_PASSES {
        return Err(HashFormatError::TooCostly(format!(
            "argon2 time cost t={} is above the limit of {MAX_ARGON2_PASSES}",
            params.t_cost()
        )));
    }
    if params.p_cost() > MAX_ARGON2_LANES {
        return Err(HashFormatError::TooCostly(format!(
            "argon2 parallelism p={} is above the limit of {MAX_ARGON2_LANES}",
            params.p_cost()
        )));
    }
    Ok(parsed)
}

/// Checks the layout `$2y$NN$` + 22 characters of salt + 31 of hash, in
/// bcrypt's own base64 alphabet. `$2x$` (the hashes of a buggy 2011
/// implementation) is refused.
fn parse_bcrypt(hash: &str) -> Result<(), HashFormatError> {
    let malformed = |reason: &str| HashFormatError::Malformed {
        scheme: "bcrypt",
        reason: reason.to_owned(),
    };
    let bytes = hash.as_bytes();
    if !matches!(bytes.get(..4), Some(b"$2y$" | b"$2b$" | b"$2a$")) {
        return Err(malformed("expected a $2y$, $2b$ or $2a$ prefix"));
    }
    if bytes.len() != 60 {
        return Err(malformed("expected 60 characters"));
    }
    let (cost, rest) = (&bytes[4..6], &bytes[6..]);
    if !cost.iter().all(u8::is_ascii_digit) || rest[0] != b'$' {
        return Err(malformed("expected a two-digit cost such as $2y$10$"));
    }
    let cost = u32::from(cost[0] - b'0') * 10 + u32::from(cost[1] - b'0');
    if !rest[1..]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/'))
    {
        return Err(malformed("invalid character in salt or hash"));
    }
    if cost < MIN_BCRYPT_COST {
        return Err(malformed("cost below 4"));
    }
    if cost > MAX_BCRYPT_COST {
        return Err(HashFormatError::TooCostly(format!(
            "bcrypt cost {cost} is above the limit of {MAX_BCRYPT_COST}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `htpasswd -bnB -C 5 alice 'correct horse'` (apache2-utils 2.4).
    const HTPASSWD_2Y: &str = "$2y$05$8GZGcB76O/vrMDfbnLsspuETEb.ZaPA/atHhCzSgQhhJyk31FFTzC";
    /// `htpasswd -bnB -C 4 carol ''`: an empty password.
    const HTPASSWD_EMPTY: &str = "$2y$04$dC/j11llKO4uVqK/AbX.SuRvKIL3thPtTrs8zQ2HRfS3ygY9XKyFW";

    #[test]
    fn new_hash_is_argon2id_with_owasp_params_and_verifies() {
        let hash = hash_password("s3cret pässword").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "s3cret pässword"));
        assert!(!verify_password(&hash, "s3cret password"));
        assert!(!verify_password(&hash, ""));
        assert_eq!(check_hash(&hash), Ok(()));
    }

    #[test]
    fn salts_are_random() {
        assert_ne!(
            hash_password("same").unwrap(),
            hash_password("same").unwrap()
        );
    }

    #[test]
    fn htpasswd_bcrypt_verifies() {
        assert!(verify_password(HTPASSWD_2Y, "correct horse"));
        assert!(!verify_password(HTPASSWD_2Y, "correct horse "));
        assert!(!verify_password(HTPASSWD_2Y, "Correct horse"));
        assert!(verify_password(HTPASSWD_EMPTY, ""));
        assert!(!verify_password(HTPASSWD_EMPTY, "x"));
    }

    #[test]
    fn bcrypt_2b_and_2a_prefixes_verify() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(verify_password(&hash, "pw"));
        let as_2a = hash.replacen("$2b$", "$2a$", 1);
        assert!(verify_password(&as_2a, "pw"));
        let as_2x = hash.replacen("$2b$", "$2x$", 1);
        assert!(!verify_password(&as_2x, "pw"));
    }

    #[test]
    fn argon2i_and_argon2d_verify() {
        let salt = b"0123456789abcdef";
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let params = Params::new(64, 1, 1, None).unwrap();
            let hash = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password_with_salt(b"pw", salt)
                .unwrap()
                .to_string();
            assert!(verify_password(&hash, "pw"), "{hash}");
            assert!(!verify_password(&hash, "pW"), "{hash}");
        }
    }

    #[test]
    fn malformed_hashes_are_false_not_panics() {
        let good = hash_password("pw").unwrap();
        let cases = [
            String::new(),
            "$".into(),
            "$argon2id".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ".into(),
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2xx$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAA$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            // 41 base64 characters cannot encode whole bytes, whatever they are.
            good[..good.len() - 2].to_owned(),
            format!("{good}$extra"),
            good.replace("$argon2id$", "$argon2id$$"),
            "$2y$".into(),
            "$2y$05$".into(),
            HTPASSWD_2Y[..59].to_owned(),
            format!("{HTPASSWD_2Y}x"),
            HTPASSWD_2Y.replace("$05$", "$+5$"),
            HTPASSWD_2Y.replace("$05$", "$00$"),
            HTPASSWD_2Y.replacen('8', "é", 1),
            HTPASSWD_2Y.replacen('8', "!", 1),
            "$apr1$anq.MDed$fnFcum0t/gZW.HRIKZeSj1".into(),
            "{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=".into(),
            "plain-text-password".into(),
            "\u{0}\u{0}".into(),
        ];
        for hash in &cases {
            assert!(!verify_password(hash, "pw"), "{hash:?} verified");
            assert!(check_hash(hash).is_err(), "{hash:?} passed the check");
        }
    }

    #[test]
    fn costly_hashes_are_refused_before_any_work() {
        let huge_memory = "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        assert!(matches!(
            check_hash(huge_memory),
            Err(HashFormatError::TooCostly(_))
        ));
        assert!(!verify_password(huge_memory, "pw"));
        let many_passes = "$argon2id$v=19$m=19456,t=4000000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
        assert!(matches!(
            check_hash(many_passes),
            Err(HashFormatError::TooCostly(_))
        ));
        let bcrypt_31 = HTPASSWD_2Y.replace("$05$", "$31$");
        assert!(matches!(
            check_hash(&bcrypt_31),
            Err(HashFormatError::TooCostly(_))
        ));
        assert!(!verify_password(&bcrypt_31, "correct horse"));
    }

    #[test]
    fn known_foreign_schemes_get_a_helpful_error() {
        let err = check_hash("$apr1$anq.MDed$fnFcum0t/gZW.HRIKZeSj1").unwrap_err();
        assert!(err.to_string().contains("htpasswd -m"), "{err}");
        assert!(err.to_string().contains("htpasswd -B"), "{err}");
        assert_eq!(check_hash("nonsense"), Err(HashFormatError::Unknown));
        assert_eq!(check_hash(""), Err(HashFormatError::Empty));
    }

    #[test]
    fn bcrypt_uses_only_the_first_72_bytes() {
        // A property of bcrypt every htpasswd user inherits; pinned so that a
        // change of crate behaviour is noticed.
        let long = "x".repeat(72);
        let hash = bcrypt::hash(&long, 4).unwrap();
        assert!(verify_password(&hash, &format!("{long}tail")));
    }

    #[test]
    fn salted_hash_is_reproducible() {
        let a = hash_password_with_salt("pw", b"fixed salt 16 by").unwrap();
        let b = hash_password_with_salt("pw", b"fixed salt 16 by").unwrap();
        assert_eq!(a, b);
        assert!(verify_password(&a, "pw"));
    }
}
