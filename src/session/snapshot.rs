//! The memory store's snapshot file: what lets sessions survive a restart.
//!
//! The file is binary, little endian, and checked as a whole before a single
//! session is taken from it:
//!
//! ```text
//! header   magic "SGSNAP\r\n" (8) | version u32 (4) | record count u64 (8)
//! record   id (32) | created u64 | last_seen u64 | flags u8
//!          | ip (4 bytes if flags has IPV4, 16 if IPV6)
//!          | user length u32 + bytes (if flags has USER)
//!          | data length u32 + bytes
//! trailer  SHA-256 of everything before it (32)
//! ```
//!
//! The `\r\n` in the magic catches a file mangled by a text-mode copy. The
//! version comes before the checksum so that a file from a newer release is
//! refused for what it is, not reported as damaged.
//!
//! Writing never holds the store: [`MemoryStore::entries`] copies one shard
//! at a time, and serializing and writing happen on a blocking thread, into a
//! temporary file in the same directory that is fsynced, renamed over the
//! old snapshot, and followed by an fsync of the directory. A crash at any
//! point leaves either the old snapshot or the new one, never half of one.
//!
//! The file holds session ids (which, with the signing key, make valid
//! cookies) and session data (which may be private): it is created
//! readable by its owner only, in a directory created likewise.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::id::{ID_LEN, SessionId};
use super::memory::MemoryStore;
use super::store::{Policy, SessionRecord};

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

/// One session as the snapshot holds it.
pub type Entry = (SessionId, SessionRecord);

/// Why a snapshot could not be read or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file exists but could not be read.
    #[error("cannot read snapshot {}: {source}", path.display())]
    Read {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file was read but is not a usable snapshot; it is left in place.
    #[error(
        "snapshot {} is unusable: {reason}; it was left in place (move it away to start without the saved sessions)",
        path.display()
    )]
    Invalid {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        reason: FormatError,
    },
    /// The snapshot could not be written; the previous one, if any, is intact.
    #[error("cannot write snapshot {}: {source}", path.display())]
    Write {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

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

/// How a snapshot load went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// Sessions put back in the store.
    pub loaded: usize,
    /// Sessions that had expired while the proxy was down.
    pub expired: usize,
    /// Sessions left out because the file held more than `max_sessions`.
    pub over_limit: usize,
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
        if flags & !(FLAG_USER | FLAG_IPV4 | FLAG_IPV6) != 0 {
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
        entries.push((
            SessionId::from_bytes(id),
            SessionRecord {
                created,
                last_seen,
                user,
                data,
                ip,
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

/// Reads a snapshot file. A missing file is `Ok(None)`: the first start.
pub fn read_file(path: &Path) -> Result<Option<Vec<Entry>>, SnapshotError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| SnapshotError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
}

/// Writes a snapshot file atomically: temporary file, fsync, rename, fsync
/// of the directory. Creates the directory when it is missing.
pub fn write_file(path: &Path, entries: &[Entry]) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = write_synced(&tmp, entries).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    // The rename is durable only once the directory entry is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
}

fn write_synced(tmp: &Path, entries: &[Entry]) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    encode(entries, &mut out)?;
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()
}

/// Saves the store to `path` without holding it: shards are copied one at
/// a time and the file is written on a blocking thread. Returns how many
/// sessions were written.
pub async fn save(store: Arc<MemoryStore>, path: PathBuf) -> Result<usize, SnapshotError> {
    let target = path.clone();
    tokio::task::spawn_blocking(move || {
        let entries = store.entries();
        write_file(&target, &entries).map(|()| entries.len())
    })
    .await
    .unwrap_or_else(|e| {
        Err(SnapshotError::Write {
            path,
            source: io::Error::other(format!("the snapshot task failed: {e}")),
        })
    })
}

/// Loads a snapshot into `store`, leaving out sessions that expired while
/// the proxy was down. When the file holds more than `max_sessions`, the
/// most valuable are kept (logged-in first, latest expiry first), the same
/// order the store evicts in.
pub fn restore(
    store: &MemoryStore,
    path: &Path,
    now: u64,
    policy: &Policy,
) -> Result<Restored, SnapshotError> {
    let Some(mut entries) = read_file(path)? else {
        return Ok(Restored::default());
    };
    let total = entries.len();
    entries.retain(|(_, r)| !r.is_expired(now, policy));
    let mut restored = Restored {
        expired: total - entries.len(),
        ..Restored::default()
    };
    if entries.len() > policy.max_sessions {
        entries.sort_unstable_by_key(|(_, r)| {
            std::cmp::Reverse((r.user.is_some(), r.expires_at(policy)))
        });
        restored.over_limit = entries.len() - policy.max_sessions;
        entries.truncate(policy.max_sessions);
    }
    restored.loaded = entries.len();
    for (id, record) in entries {
        store.insert(id, record);
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created: u64, user: Option<&str>, data: &str, ip: Option<&str>) -> SessionRecord {
        SessionRecord {
            created,
            last_seen: created + 5,
            user: user.map(Arc::from),
            data: Arc::from(data),
            ip: ip.map(|i| i.parse().unwrap()),
        }
    }

    fn sample() -> Vec<Entry> {
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
        ]
    }

    fn bytes_of(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(entries, &mut out).unwrap();
        out
    }

    fn policy() -> Policy {
        Policy {
            idle_timeout: 100,
            max_lifetime: 1000,
            touch_interval: 10,
            max_data_bytes: 4096,
            max_sessions: 1000,
        }
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

    #[test]
    fn file_round_trip_creates_the_directory_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/sessions.snapshot");
        assert!(read_file(&path).unwrap().is_none(), "missing is fine");
        let entries = sample();
        write_file(&path, &entries).unwrap();
        assert_eq!(read_file(&path).unwrap().unwrap(), entries);
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
            0,
            "only the owner may read it"
        );
        write_file(&path, &entries[..1]).unwrap();
        assert_eq!(read_file(&path).unwrap().unwrap(), entries[..1]);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sessions.snapshot"], "no temporary file left");
    }

    #[test]
    fn an_unusable_file_names_itself_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.snapshot");
        let mut bytes = bytes_of(&sample());
        bytes.truncate(bytes.len() - 3);
        fs::write(&path, &bytes).unwrap();
        let err = read_file(&path).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn restore_drops_expired_and_keeps_the_best_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let p = Policy {
            max_sessions: 2,
            ..policy()
        };
        let live_user = (SessionId::generate(), record(1000, Some("u"), "", None));
        let live_anon_late = (SessionId::generate(), record(1050, None, "a=1", None));
        let live_anon_early = (SessionId::generate(), record(1000, None, "a=2", None));
        let expired = (SessionId::generate(), record(0, Some("old"), "", None));
        let entries = vec![
            live_anon_early.clone(),
            expired,
            live_user.clone(),
            live_anon_late.clone(),
        ];
        write_file(&path, &entries).unwrap();
        let store = MemoryStore::new();
        let restored = restore(&store, &path, 1010, &p).unwrap();
        assert_eq!(
            restored,
            Restored {
                loaded: 2,
                expired: 1,
                over_limit: 1
            }
        );
        let mut kept = store.entries();
        kept.sort_by_key(|(_, r)| r.created);
        assert_eq!(kept, vec![live_user, live_anon_late]);
    }

    #[test]
    fn restore_without_a_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        let restored = restore(&store, &dir.path().join("none"), 0, &policy()).unwrap();
        assert_eq!(restored, Restored::default());
        assert!(store.is_empty());
    }
}
