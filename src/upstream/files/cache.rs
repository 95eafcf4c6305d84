//! Small files kept in memory, so that a file asked for again costs no trip
//! to the blocking pool: only a check, on the worker's own thread, that the
//! paths still lead where they led and the file is the same version.
//!
//! An entry is what one lookup found for one request path and one list of
//! wanted siblings: the file served (plain or precompressed), its bytes, its
//! metadata. It is used again only if, now:
//!
//! - the path looked up still canonicalizes to the same canonical path (so
//!   it is still inside DIR, with no dot-segment: that path was checked),
//!   and a `stat` of it gives the same version (below);
//! - the sibling served, if any, passes the same test, and each sibling
//!   tried before it (or all of them, for the plain file) is still missing.
//!
//! Otherwise the entry is dropped and the request looked up afresh. A
//! version is device, inode, size, modification time and status-change
//! time (`ctime`): writing, truncating, renaming, linking or `touch`ing the
//! file all set a new `ctime`, which no one can set back. A file is kept
//! only once its `ctime` is [`SETTLED`] old, so that a write in the same
//! clock tick as the read (which would leave every field as it was) cannot
//! have happened after it; git treats its "racily clean" entries the same
//! way. A lookup that met a refused sibling (there, but leading out of
//! DIR) is not kept: the refusal is logged on every request, as before.
//!
//! The calls on a hit (a `realpath`, a `stat`, one `stat` per missing
//! sibling) run on the worker thread, as nginx makes its `open` and `fstat`
//! on its own: microseconds on a local file system whose directories are
//! in the kernel's cache, which a file asked for often is.
//!
//! Memory is bounded by [`BUDGET`] per static route; past it, files are
//! served as before without being kept.

use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;

use super::content::Content;
use super::encoding::Encoding;
use super::resolve::{self, FileFound, Served, Trail, Wanted};

/// The bytes kept per static route, at most: 8 MiB, room for a legacy
/// site's stylesheets, scripts and icons (each at most 64 KiB).
pub(super) const BUDGET: usize = 8 * 1024 * 1024;

/// What an entry costs besides its bytes (key, paths, metadata), counted
/// against [`BUDGET`] with them: many empty files fill it too.
const ENTRY_COST: usize = 1024;

/// How long ago a file's `ctime` must be for it to be kept.
pub(super) const SETTLED: Duration = Duration::from_secs(2);

/// The small files of one static route, in memory.
pub(super) struct SmallFiles {
    entries: DashMap<Key, Arc<Entry>>,
    /// The bytes held by `entries`, each counted with [`ENTRY_COST`].
    held: AtomicUsize,
    /// [`SETTLED`], but for the tests.
    settled: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    wanted: Wanted,
    siblings: Vec<Encoding>,
}

/// One version of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// What a lookup found, and how to tell that it still holds.
struct Entry {
    /// The plain file.
    plain: Checked,
    /// The sibling served, if one is.
    sibling: Option<Checked>,
    trail: Trail,
    metadata: Metadata,
    content_type: mime_guess::Mime,
    encoding: Option<Encoding>,
    served_metadata: Metadata,
    bytes: Bytes,
}

/// A path looked up, the canonical path it led to, and the version there.
struct Checked {
    asked: PathBuf,
    canonical: PathBuf,
    stamp: Stamp,
}

impl Checked {
    /// Whether `asked` still canonicalizes to `canonical`, whose version is
    /// still `stamp`. Runs file system calls.
    fn still_holds(&self) -> bool {
        std::fs::canonicalize(&self.asked).is_ok_and(|now| now == self.canonical)
            && std::fs::metadata(&self.canonical).is_ok_and(|m| Stamp::of(&m) == self.stamp)
    }
}

impl Entry {
    /// Whether the paths still lead where they led, to the same versions,
    /// and the siblings missing then are still missing.
    fn still_holds(&self) -> bool {
        self.plain.still_holds()
            && self.trail.missing.iter().all(|path| !path.exists())
            && self.sibling.as_ref().is_none_or(Checked::still_holds)
    }

    /// What it counts against the budget.
    fn cost(&self) -> usize {
        self.bytes.len() + ENTRY_COST
    }

    fn found(&self) -> FileFound {
        FileFound {
            path: self.plain.canonical.clone(),
            metadata: self.metadata.clone(),
            content_type: self.content_type.clone(),
            served: Served {
                encoding: self.encoding,
                metadata: self.served_metadata.clone(),
                content: Content::Read(self.bytes.clone()),
            },
            trail: self.trail.clone(),
        }
    }
}

impl SmallFiles {
    /// An empty cache.
    pub(super) fn new() -> SmallFiles {
        SmallFiles::settled_after(SETTLED)
    }

    fn settled_after(settled: Duration) -> SmallFiles {
        SmallFiles {
            entries: DashMap::new(),
            held: AtomicUsize::new(0),
            settled,
        }
    }

    /// The file kept for `wanted` with `siblings`, if there is one and it
    /// still holds (see the module's comment). Runs file system calls on
    /// the calling thread.
    pub(super) fn get(&self, wanted: &Wanted, siblings: &[Encoding]) -> Option<FileFound> {
        let key = Key {
            wanted: wanted.clone(),
            siblings: siblings.to_vec(),
        };
        let entry = Arc::clone(self.entries.get(&key)?.value());
        if entry.still_holds() {
            return Some(entry.found());
        }
        if let Some((_, gone)) = self.entries.remove_if(&key, |_, e| Arc::ptr_eq(e, &entry)) {
            self.held.fetch_sub(gone.cost(), Ordering::Relaxed);
        }
        None
    }

    /// Keeps what a lookup of `wanted` with `siblings` found, if its bytes
    /// were read, it has settled, and the budget has room.
    pub(super) fn keep(&self, wanted: Wanted, siblings: Vec<Encoding>, file: &FileFound) {
        let Content::Read(bytes) = &file.served.content else {
            return;
        };
        if file.trail.refused
            || !self.has_settled(&file.metadata)
            || !self.has_settled(&file.served.metadata)
        {
            return;
        }
        let cost = bytes.len() + ENTRY_COST;
        if self.held.fetch_add(cost, Ordering::Relaxed) + cost > BUDGET {
            self.held.fetch_sub(cost, Ordering::Relaxed);
            return;
        }
        let sibling = match (&file.trail.sibling, file.served.encoding) {
            (Some(canonical), Some(encoding)) => Some(Checked {
                asked: resolve::sibling_name(&file.path, encoding),
                canonical: canonical.clone(),
                stamp: Stamp::of(&file.served.metadata),
            }),
            _ => None,
        };
        let entry = Entry {
            plain: Checked {
                asked: file.trail.asked.clone(),
                canonical: file.path.clone(),
                stamp: Stamp::of(&file.metadata),
            },
            sibling,
            trail: file.trail.clone(),
            metadata: file.metadata.clone(),
            content_type: file.content_type.clone(),
            encoding: file.served.encoding,
            served_metadata: file.served.metadata.clone(),
            bytes: bytes.clone(),
        };
        let key = Key { wanted, siblings };
        if let Some(replaced) = self.entries.insert(key, Arc::new(entry)) {
            self.held.fetch_sub(replaced.cost(), Ordering::Relaxed);
        }
    }

    /// Whether the file's last change is older than the settling time.
    fn has_settled(&self, metadata: &Metadata) -> bool {
        let Ok(ctime_nsec) = u32::try_from(metadata.ctime_nsec()) else {
            return false;
        };
        let Ok(ctime_sec) = u64::try_from(metadata.ctime()) else {
            return false;
        };
        let changed = UNIX_EPOCH + Duration::new(ctime_sec, ctime_nsec);
        SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= self.settled)
    }
}

impl fmt::Debug for SmallFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmallFiles")
            .field("files", &self.entries.len())
            .field("bytes", &self.held.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::upstream::files::resolve::Found;

    /// A site with `a.css`, and a cache that keeps files at once (the
    /// changes below all change a size, a time or an inode).
    fn site() -> (tempfile::TempDir, PathBuf, SmallFiles) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("site");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::write(root.join("a.css"), "a{}").expect("write");
        std::fs::write(root.join("docs/index.html"), "<p>docs</p>").expect("write");
        std::fs::write(tmp.path().join("secret.css"), "s{}").expect("write");
        let root = std::fs::canonicalize(root).expect("canonical");
        (tmp, root, SmallFiles::settled_after(Duration::ZERO))
    }

    /// A lookup as `serve` makes it on a miss, kept.
    fn look_up(cache: &SmallFiles, root: &Path, rest: &str, siblings: &[Encoding]) {
        let wanted = Wanted::parse(rest).expect("path");
        match resolve::open(root, &wanted, siblings, true) {
            Ok(Found::File(file)) => cache.keep(wanted, siblings.to_vec(), &file),
            other => panic!("{rest}: {other:?}"),
        }
    }

    fn kept(cache: &SmallFiles, rest: &str, siblings: &[Encoding]) -> Option<Bytes> {
        let file = cache.get(&Wanted::parse(rest).expect("path"), siblings)?;
        match file.served.content {
            Content::Read(bytes) => Some(bytes),
            Content::Open(..) => panic!("a kept file has its bytes"),
        }
    }

    #[test]
    fn a_file_is_served_from_memory_until_it_changes() {
        let (_tmp, root, cache) = site();
        assert_eq!(kept(&cache, "a.css", &[]), None);
        look_up(&cache, &root, "a.css", &[]);
        assert_eq!(kept(&cache, "a.css", &[]).as_deref(), Some(&b"a{}"[..]));
        assert_eq!(
            kept(&cache, "a.css", &[Encoding::Gzip]),
            None,
            "another key"
        );

        // Another size.
        std::fs::write(root.join("a.css"), "a{b:c}").expect("write");
        assert_eq!(kept(&cache, "a.css", &[]), None);
        assert_eq!(cache.held.load(Ordering::Relaxed), 0, "dropped");

        // The same size, another time.
        look_up(&cache, &root, "a.css", &[]);
        std::fs::write(root.join("a.css"), "a{b:d}").expect("write");
        std::fs::File::options()
            .write(true)
            .open(root.join("a.css"))
            .expect("open")
            .set_modified(SystemTime::now() + Duration::from_secs(9))
            .expect("set_modified");
        assert_eq!(kept(&cache, "a.css", &[]), None);

        // Another file renamed over it.
        look_up(&cache, &root, "a.css", &[]);
        std::fs::write(root.join("new.css"), "a{b:e}").expect("write");
        std::fs::rename(root.join("new.css"), root.join("a.css")).expect("rename");
        assert_eq!(kept(&cache, "a.css", &[]), None);
        look_up(&cache, &root, "a.css", &[]);
        assert_eq!(kept(&cache, "a.css", &[]).as_deref(), Some(&b"a{b:e}"[..]));
    }

    #[test]
    fn a_path_that_now_leads_elsewhere_is_looked_up_again() {
        let (tmp, root, cache) = site();
        look_up(&cache, &root, "docs/", &[]);
        assert!(kept(&cache, "docs/", &[]).is_some());
        // The directory moved out of DIR, a link to it in its place: the
        // same file, but outside now.
        let outside = tmp.path().join("docs");
        std::fs::rename(root.join("docs"), &outside).expect("rename");
        std::os::unix::fs::symlink(&outside, root.join("docs")).expect("symlink");
        assert_eq!(kept(&cache, "docs/", &[]), None);
        assert!(matches!(
            resolve::open(&root, &Wanted::parse("docs/").expect("path"), &[], true),
            Err(crate::upstream::files::StaticError::NotFound)
        ));
    }

    #[test]
    fn a_sibling_is_checked_too_and_one_that_appears_ends_the_plain_entry() {
        let (_tmp, root, cache) = site();
        let gzip = [Encoding::Gzip];
        look_up(&cache, &root, "a.css", &gzip);
        assert_eq!(kept(&cache, "a.css", &gzip).as_deref(), Some(&b"a{}"[..]));
        std::fs::write(root.join("a.css.gz"), "gz").expect("write");
        assert_eq!(kept(&cache, "a.css", &gzip), None, "a sibling came");

        look_up(&cache, &root, "a.css", &gzip);
        let file = cache
            .get(&Wanted::parse("a.css").expect("path"), &gzip)
            .expect("kept");
        assert_eq!(file.served.encoding, Some(Encoding::Gzip));
        assert!(matches!(file.served.content, Content::Read(b) if b == "gz"));
        std::fs::write(root.join("a.css.gz"), "gzip").expect("write");
        assert_eq!(kept(&cache, "a.css", &gzip), None, "the sibling changed");
    }

    #[test]
    fn a_file_changed_just_now_is_not_kept_nor_a_large_one() {
        let (_tmp, root, _) = site();
        let cache = SmallFiles::new();
        look_up(&cache, &root, "a.css", &[]);
        assert_eq!(kept(&cache, "a.css", &[]), None, "not settled");

        let cache = SmallFiles::settled_after(Duration::ZERO);
        let large = vec![b'x'; super::super::content::SMALL_FILE as usize + 1];
        std::fs::write(root.join("large.js"), large).expect("write");
        look_up(&cache, &root, "large.js", &[]);
        assert!(
            cache
                .get(&Wanted::parse("large.js").expect("path"), &[])
                .is_none()
        );
        assert_eq!(cache.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_empty_file_counts_against_the_budget_too() {
        let (_tmp, root, _) = site();
        let cache = SmallFiles::settled_after(Duration::ZERO);
        std::fs::write(root.join("empty.txt"), "").expect("write");
        look_up(&cache, &root, "empty.txt", &[]);
        assert!(kept(&cache, "empty.txt", &[]).is_some());
        assert_eq!(cache.held.load(Ordering::Relaxed), ENTRY_COST);
    }
}
