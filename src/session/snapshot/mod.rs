//! The memory store's snapshot file: what lets sessions survive a restart.
//! The bytes are `format.rs`'s; this module writes the file without
//! holding the store, reads it back, and puts the sessions in the store.
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

mod format;

pub use self::format::{Entry, FormatError, MAGIC, VERSION, decode, encode};

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::memory::MemoryStore;
use super::store::Policy;

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
    use super::format::tests::{bytes_of, record, sample};
    use super::*;
    use crate::session::id::SessionId;

    fn policy() -> Policy {
        Policy {
            idle_timeout: 100,
            max_lifetime: 1000,
            touch_interval: 10,
            max_data_bytes: 4096,
            max_sessions: 1000,
            remember_me: None,
        }
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
