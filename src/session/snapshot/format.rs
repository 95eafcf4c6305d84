//! The snapshot's bytes: what [`encode`] writes and [`decode`] checks as a
//! whole before a single session is taken from it. Binary, little endian:
//!
//! ```text
//! header   magic "SGSNAP\r\n" (8) | version u32 (4) | record count u64 (8)
//! record   id (32) | created u64 | last_seen u64 | flags u8
//!          | ip (4 bytes if flags has IPV4, 16 if IPV6)
//!          | user length u32 + bytes (if flags has USER)
//!          | data length u32 + bytes
//!          | groups length u32 + bytes (if flags has GROUPS)
//!          | remember u64 (if flags has REMEMBER)
//!          | browser length u32 + bytes (if flags has BROWSER)
//! trailer  SHA-256 of everything before it (32)
//! ```
//!
//! The `\r\n` in the magic catches a file mangled by a text-mode copy. The
//! version comes before the checksum so that a file from a newer release is
//! refused for what it is, not reported as damaged. Fields added since
//! version 1 (groups, remember, browser) come with flags of their own, so every
//! version-1 file is read as it was written.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::session::browser::capped;
use crate::session::id::{ID_LEN, SessionId};
use crate::session::store::SessionRecord;

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"SGSNAP\r\n";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

const HEADER_LEN: usize = MAGIC.len() + 4 + 8;
const CHECKSUM_LEN: usize = 32;
/// The smallest record: no ip, no user, empty data.
const MIN_RECORD_LEN: usize = ID_LEN + 8 + 8 + 1 + 4;

const FLAG_USER: u8 = 0b0001;
const FLAG_IPV4: u8 = 0b0010;
const FLAG_IPV6: u8 = 0b0100;
const FLAG_GROUPS: u8 = 0b1000;
const FLAG_REMEMBER: u8 = 0b1_0000;
const FLAG_BROWSER: u8 = 0b10_0000;
const KNOWN_FLAGS: u8 =
    FLAG_USER | FLAG_IPV4 | FLAG_IPV6 | FLAG_GROUPS | FLAG_REMEMBER | FLAG_BROWSER;

/// One session as the snapshot holds it.
pub type Entry = (SessionId, SessionRecord);

/// What is wrong with the bytes of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The file does not start with [`MAGIC`].
    #[error("not a sessiongate snapshot")]
    NotASnapshot,
    /// Written by a release with another format.
    #[error("format version {0} is not supported (this release reads version {VERSION})")]
    Version(u32),
    /// Too short to hold even a header and a checksum.
    #[error("the file is truncated")]
    Truncated,
    /// The content does not match its checksum.
    #[error("checksum mismatch: the file is damaged or truncated")]
    Checksum,
    /// A record that cannot be right (only possible in a file written by
    /// something else, since the checksum matched).
    #[error("record {index}: {what}")]
    Record {
        /// Position of the record, from 0.
        index: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// Bytes left over after the records the header announced.
    #[error("{0} unexpected bytes after the last record")]
    TrailingBytes(usize),
}

/// Writes `entries` in the snapshot format, checksum included.
pub fn encode(entries: &[Entry], out: impl Write) -> io::Result<()> {
    let mut out = Hashing {
        inner: out,
        hasher: Sha256::new(),
    };
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&(entries.len() as u64).to_le_bytes())?;
    for (id, r) in entries {
        out.write_all(id.as_bytes())?;
        out.write_all(&r.created.to_le_bytes())?;
        out.write_all(&r.last_seen.to_le_bytes())?;
        let mut flags = 0;
        if r.user.is_some() {
            flags |= FLAG_USER;
        }
        match r.ip {
            Some(IpAddr::V4(_)) => flags |= FLAG_IPV4,
            Some(IpAddr::V6(_)) => flags |= FLAG_IPV6,
            None => {}
        }
        if r.groups.is_some() {
            flags |= FLAG_GROUPS;
        }
        if r.remember.is_some() {
            flags |= FLAG_REMEMBER;
        }
        if r.browser.is_some() {
            flags |= FLAG_BROWSER;
        }
        out.write_all(&[flags])?;
        match r.ip {
            Some(IpAddr::V4(ip)) => out.write_all(&ip.octets())?,
            Some(IpAddr::V6(ip)) => out.write_all(&ip.octets())?,
            None => {}
        }
        if let Some(user) = &r.user {
            write_bytes(&mut out, user.as_bytes())?;
        }
        write_bytes(&mut out, r.data.as_bytes())?;
        if let Some(groups) = &r.groups {
            write_bytes(&mut out, groups.as_bytes())?;
        }
        if let Some(remember) = r.remember {
            out.write_all(&remember.to_le_bytes())?;
        }
        if let Some(browser) = &r.browser {
            write_bytes(&mut out, browser.as_bytes())?;
        }
    }
    let digest = out.hasher.finalize();
    out.inner.write_all(&digest)
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a session field over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Parses a whole snapshot. Nothing is returned unless every byte checks out.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, FormatError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(if MAGIC.starts_with(bytes) {
            FormatError::Truncated
        } else {
            FormatError::NotASnapshot
        });
    }
    let mut cur = Cursor {
        rest: &bytes[MAGIC.len()..],
    };
    let version = cur.u32().ok_or(FormatError::Truncated)?;
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(FormatError::Truncated);
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Sha256::digest(content).as_slice() != checksum {
        return Err(FormatError::Checksum);
    }
    let mut cur = Cursor {
        rest: &content[MAGIC.len() + 4..],
    };
    let count = cur.u64().ok_or(FormatError::Truncated)?;
    // The count is only trusted as far as the bytes can back it.
    let room = cur.rest.len() / MIN_RECORD_LEN;
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(usize::MAX).min(room));
    for index in 0..count {
        let bad = |what| FormatError::Record { index, what };
        let short = || bad("cut short");
        let id: [u8; ID_LEN] = cur.array().ok_or_else(short)?;
        let created = cur.u64().ok_or_else(short)?;
        let last_seen = cur.u64().ok_or_else(short)?;
        let [flags] = cur.array().ok_or_else(short)?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(bad("unknown flags"));
        }
        let ip = match (flags & FLAG_IPV4 != 0, flags & FLAG_IPV6 != 0) {
            (false, false) => None,
            (true, false) => Some(IpAddr::V4(Ipv4Addr::from(
                cur.array::<4>().ok_or_else(short)?,
            ))),
            (false, true) => Some(IpAddr::V6(Ipv6Addr::from(
                cur.array::<16>().ok_or_else(short)?,
            ))),
            (true, true) => return Err(bad("both IPv4 and IPv6")),
        };
        let user = if flags & FLAG_USER != 0 {
            let user = cur.text().ok_or_else(short)?;
            Some(Arc::from(user.map_err(|_| bad("user is not UTF-8"))?))
        } else {
            None
        };
        let data = cur.text().ok_or_else(short)?;
        let data = Arc::from(data.map_err(|_| bad("data is not UTF-8"))?);
        let groups = if flags & FLAG_GROUPS != 0 {
            let groups = cur.text().ok_or_else(short)?;
            Some(Arc::from(groups.map_err(|_| bad("groups are not UTF-8"))?))
        } else {
            None
        };
        let remember = if flags & FLAG_REMEMBER != 0 {
            Some(cur.u64().ok_or_else(short)?)
        } else {
            None
        };
        let browser = if flags & FLAG_BROWSER != 0 {
            let browser = cur.text().ok_or_else(short)?;
            let browser = browser.map_err(|_| bad("browser is not UTF-8"))?;
            Some(Arc::from(capped(browser)))
        } else {
            None
        };
        entries.push((
            SessionId::from_bytes(id),
            SessionRecord {
                created,
                last_seen,
                user,
                data,
                ip,
                groups,
                remember,
                browser,
            },
        ));
    }
    if !cur.rest.is_empty() {
        return Err(FormatError::TrailingBytes(cur.rest.len()));
    }
    Ok(entries)
}

/// Reads fields off the front of a byte slice; `None` when too short.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A length-prefixed string; the inner result says whether it is UTF-8.
    fn text(&mut self) -> Option<Result<&'a str, std::str::Utf8Error>> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len).map(std::str::from_utf8)
    }
}

// The samples are shared with the file tests in mod.rs.
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record created at `created` and seen five seconds later.
    pub(crate) fn record(
        created: u64,
        user: Option<&str>,
        data: &str,
        ip: Option<&str>,
    ) -> SessionRecord {
        SessionRecord {
            created,
            last_seen: created + 5,
            user: user.map(Arc::from),
            data: Arc::from(data),
            ip: ip.map(|i| i.parse().unwrap()),
            groups: None,
            remember: None,
            browser: None,
        }
    }

    /// Sessions with and without a user, IPv4, IPv6 and no IP.
    pub(crate) fn sample() -> Vec<Entry> {
        vec![
            (
                SessionId::generate(),
                record(100, Some("alice"), "cart=3&lang=en", Some("192.0.2.7")),
            ),
            (SessionId::generate(), record(200, None, "n=1", None)),
            (
                SessionId::generate(),
                record(300, Some("bob é"), "", Some("2001:db8::1")),
            ),
            (
                SessionId::generate(),
                SessionRecord {
                    groups: Some(Arc::from("admins,staff")),
                    remember: Some(30 * 86_400),
                    browser: Some(Arc::from("Firefox on Linux")),
                    ..record(400, Some("carol"), "a=1", None)
                },
            ),
        ]
    }

    /// `entries` encoded.
    pub(crate) fn bytes_of(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(entries, &mut out).unwrap();
        out
    }

    /// A file written before groups and "remember me" existed reads as it
    /// was written: the new fields have flags of their own.
    #[test]
    fn version_1_files_without_the_new_fields_still_read() {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&[7; ID_LEN]);
        out.extend_from_slice(&10u64.to_le_bytes());
        out.extend_from_slice(&15u64.to_le_bytes());
        out.push(FLAG_USER);
        out.extend_from_slice(&5u32.to_le_bytes());
        out.extend_from_slice(b"alice");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"a=1");
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        let entries = decode(&out).unwrap();
        assert_eq!(entries[0].1, record(10, Some("alice"), "a=1", None));
    }

    /// A description longer than any this build writes (a file from
    /// another program) is cut to the cap as it loads.
    #[test]
    fn an_overlong_browser_is_capped_on_load() {
        let long = "x".repeat(500);
        let entries = vec![(
            SessionId::generate(),
            SessionRecord {
                browser: Some(Arc::from(long.as_str())),
                ..record(1, Some("dave"), "", None)
            },
        )];
        let loaded = decode(&bytes_of(&entries)).unwrap();
        let browser = loaded[0].1.browser.as_deref().unwrap();
        assert_eq!(browser, &long[..crate::session::browser::MAX_BROWSER_BYTES]);
    }

    #[test]
    fn round_trip() {
        let entries = sample();
        assert_eq!(decode(&bytes_of(&entries)).unwrap(), entries);
        assert_eq!(decode(&bytes_of(&[])).unwrap(), vec![]);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = bytes_of(&sample());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(decode(&damaged).is_err(), "bit {bit} of byte {i}");
            }
        }
        let mut damaged = bytes.clone();
        damaged[HEADER_LEN + 40] ^= 0x10;
        assert_eq!(decode(&damaged), Err(FormatError::Checksum));
    }

    #[test]
    fn every_truncation_is_caught() {
        let bytes = bytes_of(&sample());
        for len in 0..bytes.len() {
            let err = decode(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated | FormatError::Checksum),
                "{len}: {err:?}"
            );
        }
    }

    #[test]
    fn other_versions_are_refused_by_name() {
        let mut bytes = bytes_of(&sample());
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(decode(&bytes), Err(FormatError::Version(2)));
    }

    #[test]
    fn garbage_is_not_a_snapshot() {
        assert_eq!(
            decode(b"hello, this is some text\n"),
            Err(FormatError::NotASnapshot)
        );
        assert_eq!(decode(&[0xff; 4096]), Err(FormatError::NotASnapshot));
        assert_eq!(decode(b"SGSN"), Err(FormatError::Truncated));
    }

    /// A file with a valid checksum over invalid content (as only another
    /// program could write) is refused too, and never trusted for sizes.
    #[test]
    fn checksummed_nonsense_is_refused() {
        let seal = |mut content: Vec<u8>| {
            let digest = Sha256::digest(&content);
            content.extend_from_slice(&digest);
            content
        };
        let header = |count: u64| {
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&VERSION.to_le_bytes());
            h.extend_from_slice(&count.to_le_bytes());
            h
        };
        assert!(matches!(
            decode(&seal(header(u64::MAX))),
            Err(FormatError::Record { index: 0, .. })
        ));
        let mut one = header(1);
        one.extend_from_slice(&[7; ID_LEN]);
        one.extend_from_slice(&1u64.to_le_bytes());
        one.extend_from_slice(&2u64.to_le_bytes());
        one.push(0);
        one.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&seal(one.clone())),
            Err(FormatError::Record { index: 0, .. })
        ));
        let mut extra = bytes_of(&[]);
        extra.truncate(extra.len() - CHECKSUM_LEN);
        extra.push(0);
        assert_eq!(decode(&seal(extra)), Err(FormatError::TrailingBytes(1)));
    }
}
