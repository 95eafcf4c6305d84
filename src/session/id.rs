//! Session ids: 32 bytes from the operating system's CSPRNG.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of a session id in bytes.
pub const ID_LEN: usize = 32;

/// A session id. It is the store key; it never appears in a log
/// (`Debug` and [`SessionId::log_hash`] show a short hash instead).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A new id from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system cannot supply random bytes, which leaves
    /// no safe way to go on.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_LEN];
        // Failing to read the OS CSPRNG is unrecoverable: issuing a guessable
        // id would be worse than stopping.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        SessionId(bytes)
    }

    /// Wraps raw bytes (from a verified cookie or a snapshot).
    pub fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        SessionId(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The id as base64url text (for the `Id` header and store keys).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the base64url form.
    pub fn from_base64(s: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        bytes.try_into().ok().map(SessionId)
    }

    /// A short, non-reversible tag of the id for logs and the admin API:
    /// the first 6 bytes of its SHA-256, hex.
    pub fn log_hash(&self) -> String {
        let digest = Sha256::digest(self.0);
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::hash::Hash for SessionId {
    // Ids are uniformly random and never chosen by a client (a cookie must
    // verify before its id is looked up), so eight of their bytes are already
    // a perfect hash; see [`IdHasher`].
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// A hasher for maps keyed by [`SessionId`]: passes the id's random bits through.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than SessionId; fold them FNV-style.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`IdHasher`]s.
pub type IdHashBuilder = std::hash::BuildHasherDefault<IdHasher>;

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.log_hash())
    }
}

/// A new random secret key: 32 bytes from the OS CSPRNG, base64url (43 characters).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_round_trip() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::from_base64(&a.to_base64()), Some(a));
        assert!(!format!("{a:?}").contains(&a.to_base64()));
        assert_eq!(a.log_hash().len(), 12);
    }

    #[test]
    fn generated_keys_have_43_characters() {
        assert_eq!(generate_key().len(), 43);
    }
}
