//! A file the proxy reads once at start and again whenever it changes,
//! without a restart: the parsed content is swapped in whole, and readers
//! never wait for a reload.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

/// A file's content, parsed.
pub trait Parsed: Sized + Send + Sync + 'static {
    /// Why the file cannot be used.
    type Error: std::error::Error;

    /// Reads and parses the file at `path`.
    fn load(path: &Path) -> Result<Self, Self::Error>;

    /// The error for a file that cannot even be `stat`ed.
    fn unreadable(path: &Path, source: io::Error) -> Self::Error;
}

/// What `stat` said about the file when it was last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    Seen {
        modified: Option<SystemTime>,
        len: u64,
    },
    /// `stat` failed; the error has been reported once already.
    Missing,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self::Seen {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// A file's parsed content as currently loaded, replaced atomically when
/// the file changes. A reload that fails keeps the previous content.
pub struct Watched<T> {
    path: PathBuf,
    current: ArcSwap<T>,
    /// Serialises reloads, and remembers what the file looked like at the
    /// last one so that an unchanged file is not read again.
    last_seen: Mutex<Stamp>,
    /// How many times content was put in force (see [`Watched::generation`]).
    generation: AtomicU64,
}

impl<T: Parsed> Watched<T> {
    /// Loads the file at `path`; fails when it cannot be read or parsed.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, T::Error> {
        let path = path.into();
        let stamp = Stamp::of(&path).map_err(|e| T::unreadable(&path, e))?;
        let content = T::load(&path)?;
        Ok(Watched {
            path,
            current: ArcSwap::from_pointee(content),
            last_seen: Mutex::new(stamp),
            generation: AtomicU64::new(1),
        })
    }

    /// A number that changes every time new content is put in force. Read
    /// it before the content: what is learnt from content read after it
    /// may be remembered under that number, since any later content comes
    /// with a higher one.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `content` in force: the content first, then its number, so a
    /// reader that sees the new number also sees the new content.
    fn install(&self, content: T) {
        self.current.store(Arc::new(content));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The file this reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The content as currently loaded.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// A look at the current content, cheaper than [`Watched::current`]
    /// for a quick question on the request path.
    pub fn peek(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    /// Re-reads the file if its modification time or length changed since
    /// it was last read; returns whether new content was loaded.
    ///
    /// Costs one `stat` when nothing changed; call it at most about once a
    /// second. On error the previous content stays in force, and the same
    /// broken file is not reported again until it changes, so the caller can
    /// log every error without flooding the log.
    pub fn refresh_if_changed(&self) -> Result<bool, T::Error> {
        let mut last_seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = match Stamp::of(&self.path) {
            Ok(stamp) => stamp,
            Err(source) => {
                if *last_seen == Stamp::Missing {
                    return Ok(false);
                }
                *last_seen = Stamp::Missing;
                return Err(T::unreadable(&self.path, source));
            }
        };
        if stamp == *last_seen {
            return Ok(false);
        }
        // Remember the stamp taken *before* reading: if the file changes while
        // it is read, the next call sees a newer stamp and reads it again.
        *last_seen = stamp;
        self.install(T::load(&self.path)?);
        Ok(true)
    }

    /// Re-reads the file unconditionally (`SIGHUP`). On error the previous
    /// content stays in force.
    pub fn reload(&self) -> Result<(), T::Error> {
        let mut last_seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        *last_seen = Stamp::of(&self.path).unwrap_or(Stamp::Missing);
        self.install(T::load(&self.path)?);
        Ok(())
    }
}
