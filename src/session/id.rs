//! Session ids: 32 bytes from the operating system's CSPRNG.

use std::cell::{Cell, RefCell};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of a session id in bytes.
pub const ID_LEN: usize = 32;

/// Ids whose bytes one read of the OS CSPRNG provides.
const IDS_PER_BATCH: usize = 16;

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
        // One system call fetches the bytes of several ids; each id's bytes
        // are handed out once and wiped from the batch as they go.
        thread_local! {
            static BATCH: RefCell<([u8; ID_LEN * IDS_PER_BATCH], usize)> =
                const { RefCell::new(([0; ID_LEN * IDS_PER_BATCH], IDS_PER_BATCH)) };
        }
        BATCH.with_borrow_mut(|(bytes, used)| {
            if *used == IDS_PER_BATCH {
                // Failing to read the OS CSPRNG is unrecoverable: issuing a
                // guessable id would be worse than stopping.
                getrandom::fill(bytes).expect("the operating system's random source failed");
                *used = 0;
            }
            let slot = &mut bytes[*used * ID_LEN..(*used + 1) * ID_LEN];
            let mut id = [0u8; ID_LEN];
            id.copy_from_slice(slot);
            slot.fill(0);
            *used += 1;
            SessionId(id)
        })
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
    /// the first 6 bytes of its SHA-256, hex (12 digits).
    pub fn log_hash(&self) -> String {
        self.log_tag().to_string()
    }

    /// The tag [`SessionId::log_hash`] shows, as bytes.
    ///
    /// The last id's tag is kept per thread: a signed-in user's requests
    /// come one after another on a connection, and each would otherwise
    /// hash the same id again for its log line. (The id kept is one the
    /// store holds anyway while the session lives.)
    pub fn log_tag(&self) -> LogTag {
        thread_local! {
            static LAST: Cell<Option<(SessionId, LogTag)>> = const { Cell::new(None) };
        }
        LAST.with(|last| match last.get() {
            Some((id, tag)) if id == *self => tag,
            _ => {
                let tag = self.hash_tag();
                last.set(Some((*self, tag)));
                tag
            }
        })
    }

    fn hash_tag(&self) -> LogTag {
        let digest = Sha256::digest(self.0);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        LogTag(tag)
    }
}

/// Bytes of a [`LogTag`].
pub const TAG_LEN: usize = 6;

/// The short tag of a session id that logs, the audit log and the admin
/// API show in its place: the first 6 bytes of the id's SHA-256, written
/// as 12 lowercase hex digits. It names a session without giving anything
/// that could act as it. Two sessions may share a tag (48 bits), which
/// every user of tags allows for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogTag([u8; TAG_LEN]);

impl LogTag {
    /// Reads a tag as [`SessionId::log_hash`] writes it: exactly 12 hex
    /// digits (either case). Anything else is `None`.
    pub fn parse(text: &str) -> Option<LogTag> {
        let digits = text.as_bytes();
        if digits.len() != 2 * TAG_LEN {
            return None;
        }
        let nibble = |c: u8| {
            char::from(c)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        };
        let mut tag = [0u8; TAG_LEN];
        for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(LogTag(tag))
    }

    /// The tag as its 12 lowercase hex digits.
    pub fn hex(&self) -> [u8; 2 * TAG_LEN] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 2 * TAG_LEN];
        for (pair, b) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        text
    }

    /// Appends the tag's hex digits to `out`.
    pub fn push_to(&self, out: &mut String) {
        // Hex digits are ASCII.
        out.extend(self.hex().map(char::from));
    }

    /// The tag as a number, for maps keyed by it.
    pub fn as_u64(&self) -> u64 {
        let mut wide = [0u8; 8];
        wide[..TAG_LEN].copy_from_slice(&self.0);
        u64::from_le_bytes(wide)
    }
}

impl fmt::Display for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogTag({self})")
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
    fn ids_across_batches_are_all_distinct_and_never_zero() {
        let ids: std::collections::HashSet<[u8; ID_LEN]> = (0..IDS_PER_BATCH * 5)
            .map(|_| *SessionId::generate().as_bytes())
            .collect();
        assert_eq!(ids.len(), IDS_PER_BATCH * 5);
        assert!(!ids.contains(&[0; ID_LEN]));
    }

    #[test]
    fn the_log_tag_is_the_start_of_the_sha256_in_hex() {
        // SHA-256 of 32 zero bytes: 66687aadf862bd77...
        assert_eq!(SessionId([0; 32]).log_hash(), "66687aadf862");
    }

    #[test]
    fn log_tags_are_12_hex_digits_and_parse_back() {
        for _ in 0..50 {
            let id = SessionId::generate();
            let text = id.log_hash();
            assert_eq!(text.len(), 12);
            assert!(
                text.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            assert_eq!(LogTag::parse(&text), Some(id.log_tag()));
            assert_eq!(LogTag::parse(&text.to_uppercase()), Some(id.log_tag()));
        }
        for bad in [
            "",
            "66687aadf86",
            "66687aadf8622",
            "66687aadf86g",
            "+6687aadf862",
            "66687aadf8\u{e9}",
        ] {
            assert_eq!(LogTag::parse(bad), None, "{bad:?}");
        }
    }
}
