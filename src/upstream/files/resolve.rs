//! Which file a request path names inside the static directory, if any.
//!
//! The URL path below the mount point is percent-decoded one segment at a
//! time. A segment that starts with `.` (dot-files such as `.htpasswd` and
//! `.git`, and `.`/`..` in every spelling, `%2e%2e` included) or that decodes
//! to a `/`, a backslash or a NUL names nothing.
//!
//! Symlinks are followed, but only within DIR: the path is canonicalized
//! and must stay under the canonical DIR, and no segment of the canonical
//! path below DIR may start with `.` either (a link `public -> .git` is no
//! way in). A precompressed sibling (`.gz`, `.br`) is held to the same rules;
//! when one exists but fails them, the plain file is served instead.
//!
//! A directory is served by its `index.html`; a directory without one is
//! 404 (there is no listing). Anything that is not a regular file (a FIFO, a
//! device) is 404 too.
//!
//! What was checked is what is served: the canonical path is opened (not
//! following a symlink put in its place since, and without waiting for a
//! writer should a FIFO have been), and the type, size and time come from
//! `fstat` on that open handle, whose bytes are then the ones sent. The
//! lookup, the opens, the `fstat`s and the read of a small file are one
//! call, made on the blocking pool once per request.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use nix::libc;
use percent_encoding::percent_decode_str;

use super::StaticError;
use super::content::Content;
use super::encoding::Encoding;

/// The file served for a directory path, e.g. `/static/` or `/static/docs/`.
pub(super) const DIRECTORY_INDEX: &str = "index.html";

/// A request path below the mount point, decoded and checked, not yet
/// looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Wanted {
    /// The decoded segments, empty ones dropped.
    segments: Vec<Vec<u8>>,
    /// Whether the path ends in `/` (or is the mount point itself): only a
    /// directory can answer it.
    directory: bool,
}

impl Wanted {
    /// Decodes `rest` (the still percent-encoded path below the mount
    /// point), refusing any segment that could name a dot-file or step out
    /// of the directory it is looked up in.
    pub(super) fn parse(rest: &str) -> Result<Wanted, StaticError> {
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            let decoded: Vec<u8> = percent_decode_str(raw).collect();
            let hidden = decoded.first() == Some(&b'.');
            let separator = decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0));
            if hidden || separator {
                tracing::debug!(target: "files", segment = raw, "refused path segment");
                return Err(StaticError::NotFound);
            }
            if !decoded.is_empty() {
                segments.push(decoded);
            }
        }
        Ok(Wanted {
            segments,
            directory: rest.is_empty() || rest.ends_with('/'),
        })
    }
}

/// What a request path turned out to name.
#[derive(Debug)]
pub(super) enum Found {
    /// A directory asked for without its trailing slash: the client is
    /// sent to the path with the slash, so relative links resolve.
    Directory,
    /// A regular file inside DIR.
    File(Box<FileFound>),
}

/// A regular file to serve, opened.
#[derive(Debug)]
pub(super) struct FileFound {
    /// Its canonical path, inside DIR.
    pub path: PathBuf,
    /// Its metadata (size and modification time make the entity tag, which
    /// its precompressed siblings share).
    pub metadata: Metadata,
    /// Its content type, by the extension of the name asked for (not of
    /// a symlink's target), as nginx does.
    pub content_type: mime_guess::Mime,
    /// The file whose bytes are sent: itself or a precompressed sibling.
    pub served: Served,
    /// The paths the lookup went by, for `cache` to check again.
    pub trail: Trail,
}

/// The paths a lookup went by, and what it found at each.
#[derive(Debug, Clone)]
pub(super) struct Trail {
    /// The path looked up: DIR, the segments asked for, and `index.html`
    /// for a directory.
    pub asked: PathBuf,
    /// The precompressed siblings tried before the one served (all those
    /// wanted, when the plain file is served), which were not there.
    pub missing: Vec<PathBuf>,
    /// The canonical path of the sibling served, if one is.
    pub sibling: Option<PathBuf>,
    /// A sibling was there but refused (not a regular file inside DIR).
    pub refused: bool,
}

/// The file whose bytes answer the request.
#[derive(Debug)]
pub(super) struct Served {
    /// `None` for the plain file, else the coding of the sibling.
    pub encoding: Option<Encoding>,
    /// Its `fstat` (`Last-Modified` and the date preconditions).
    pub metadata: Metadata,
    /// Its bytes, or its open handle.
    pub content: Content,
}

/// Looks `wanted` up inside the canonical directory `root` and opens it.
/// Runs file system calls: call it on the blocking pool.
///
/// `siblings`: the precompressed siblings the client takes, best first
/// (see `encoding::wanted`); the first one there is served instead of the
/// file. `read_small`: read the file served whole if it is small (for a
/// GET; a HEAD needs no bytes).
pub(super) fn open(
    root: &Path,
    wanted: &Wanted,
    siblings: &[Encoding],
    read_small: bool,
) -> Result<Found, StaticError> {
    let mut path = root.to_path_buf();
    for segment in &wanted.segments {
        path.push(OsStr::from_bytes(segment));
    }
    let (mut canonical, mut file, mut metadata) = open_inside(root, &path)?;
    if metadata.is_dir() {
        if !wanted.directory {
            return Ok(Found::Directory);
        }
        path.push(DIRECTORY_INDEX);
        (canonical, file, metadata) = open_inside(root, &canonical.join(DIRECTORY_INDEX))?;
    } else if wanted.directory {
        // `/style.css/` names a directory that is not there.
        return Err(StaticError::NotFound);
    }
    if !metadata.is_file() {
        tracing::debug!(target: "files", path = %path.display(), "refused: not a regular file");
        return Err(StaticError::NotFound);
    }
    let mut trail = Trail {
        asked: path,
        missing: Vec::new(),
        sibling: None,
        refused: false,
    };
    let (encoding, file, served_metadata) = match sibling(root, &canonical, siblings, &mut trail) {
        Some((encoding, sibling, sibling_metadata)) => (Some(encoding), sibling, sibling_metadata),
        None => (None, file, metadata.clone()),
    };
    let content = Content::of(file, &served_metadata, read_small)
        .map_err(|e| StaticError::Io(format!("{}: {e}", canonical.display())))?;
    Ok(Found::File(Box::new(FileFound {
        content_type: mime_guess::from_path(&trail.asked).first_or_octet_stream(),
        path: canonical,
        metadata,
        served: Served {
            encoding,
            metadata: served_metadata,
            content,
        },
        trail,
    })))
}

/// The name of the precompressed sibling of `file` in `encoding`.
pub(super) fn sibling_name(file: &Path, encoding: Encoding) -> PathBuf {
    let mut name = OsString::from(file.as_os_str());
    name.push(".");
    name.push(encoding.suffix());
    PathBuf::from(name)
}

/// The first of the precompressed siblings `wanted` of `file` that is
/// there, opened. A missing one is skipped; one that is there but is no
/// regular file inside `root` ends the search with none, so the plain file
/// is served (fail closed: it is a link somebody made, not a missing file).
/// What was found is noted in `trail`.
fn sibling(
    root: &Path,
    file: &Path,
    wanted: &[Encoding],
    trail: &mut Trail,
) -> Option<(Encoding, File, Metadata)> {
    for &encoding in wanted {
        let name = sibling_name(file, encoding);
        match open_inside(root, &name) {
            Ok((canonical, handle, metadata)) if metadata.is_file() => {
                trail.sibling = Some(canonical);
                return Some((encoding, handle, metadata));
            }
            Err(StaticError::NotFound) if !name.exists() => trail.missing.push(name),
            _ => {
                tracing::warn!(target: "files", path = %name.display(),
                    "precompressed sibling is not a regular file inside the static directory; serving the plain file");
                trail.refused = true;
                return None;
            }
        }
    }
    None
}

/// Canonicalizes `path` and checks that it is still under `root`, with no
/// dot-segment below it; then opens it and reads the metadata of what was
/// opened.
fn open_inside(root: &Path, path: &Path) -> Result<(PathBuf, File, Metadata), StaticError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| missing(path, &e))?;
    let Ok(below) = canonical.strip_prefix(root) else {
        tracing::warn!(target: "files", path = %path.display(), target_path = %canonical.display(),
            "refused: resolves outside the static directory");
        return Err(StaticError::NotFound);
    };
    let hidden = below.components().any(|c| match c {
        Component::Normal(name) => name.as_bytes().first() == Some(&b'.'),
        _ => true,
    });
    if hidden {
        tracing::warn!(target: "files", path = %path.display(), target_path = %canonical.display(),
            "refused: resolves to a dot-file");
        return Err(StaticError::NotFound);
    }
    // O_NOFOLLOW: a symlink swapped in since the check is not followed.
    // O_NONBLOCK: a FIFO swapped in does not hold the thread waiting for a
    // writer (no effect on regular files, whose reads never wait).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&canonical)
        .map_err(|e| missing(path, &e))?;
    let metadata = file.metadata().map_err(|e| missing(path, &e))?;
    Ok((canonical, file, metadata))
}

/// A failed lookup is a 404 whatever the reason (missing, unreadable, a
/// file used as a directory): the client learns nothing about DIR.
fn missing(path: &Path, error: &io::Error) -> StaticError {
    tracing::debug!(target: "files", path = %path.display(), %error, "file lookup failed");
    StaticError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_and_dot_files_are_refused_in_every_spelling() {
        for rest in [
            "..",
            ".",
            "a/../b",
            "%2e%2e",
            "%2E%2e/x",
            ".%2e",
            "%2e",
            ".htpasswd",
            ".git/config",
            "a/.hidden/b.css",
            "%2ehtaccess",
            "...",
        ] {
            assert!(Wanted::parse(rest).is_err(), "{rest} should be refused");
        }
    }

    #[test]
    fn encoded_separators_and_nul_are_refused() {
        for rest in ["a%2fb", "a%2Fb", "..%2f..", "a%5cb", "a\\b", "a%00b"] {
            assert!(Wanted::parse(rest).is_err(), "{rest} should be refused");
        }
    }

    #[test]
    fn ordinary_segments_are_decoded_and_empty_ones_dropped() {
        let wanted = Wanted::parse("a%20b//c.css").expect("valid path");
        assert_eq!(wanted.segments, vec![b"a b".to_vec(), b"c.css".to_vec()]);
        assert!(!wanted.directory);
        assert!(Wanted::parse("docs/").expect("valid path").directory);
        assert!(Wanted::parse("").expect("the mount point").directory);
        assert!(
            Wanted::parse("a.b.c/x%2Ey")
                .expect("inner dots are fine")
                .segments
                .contains(&b"x.y".to_vec())
        );
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("site");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::create_dir_all(root.join("empty")).expect("mkdir");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::write(root.join("docs/index.html"), "<p>docs</p>").expect("write");
        std::fs::write(root.join("a.css"), "a{}").expect("write");
        std::fs::write(root.join(".git/config"), "[core]").expect("write");
        std::fs::write(tmp.path().join("secret.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("out.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(root.join(".git"), root.join("public")).expect("symlink");
        std::os::unix::fs::symlink(root.join("a.css"), root.join("b.css")).expect("symlink");
        let root = std::fs::canonicalize(root).expect("canonical");
        (tmp, root)
    }

    fn look(root: &Path, rest: &str) -> Result<Found, StaticError> {
        open(
            root,
            &Wanted::parse(rest)?,
            &[Encoding::Brotli, Encoding::Gzip],
            true,
        )
    }

    #[test]
    fn files_directories_and_indexes_are_found() {
        let (_tmp, root) = tree();
        assert!(matches!(look(&root, "a.css"), Ok(Found::File(f)) if f.path == root.join("a.css")));
        assert!(
            matches!(look(&root, "docs/"), Ok(Found::File(f)) if f.path == root.join("docs/index.html"))
        );
        assert!(matches!(look(&root, "docs"), Ok(Found::Directory)));
        assert!(matches!(look(&root, "empty/"), Err(StaticError::NotFound)));
        assert!(matches!(look(&root, "a.css/"), Err(StaticError::NotFound)));
        assert!(matches!(look(&root, "a.css/x"), Err(StaticError::NotFound)));
        assert!(matches!(look(&root, "missing"), Err(StaticError::NotFound)));
    }

    #[test]
    fn symlinks_are_followed_only_within_the_directory() {
        let (_tmp, root) = tree();
        assert!(matches!(look(&root, "b.css"), Ok(Found::File(f)) if f.path == root.join("a.css")));
        assert!(matches!(look(&root, "out.txt"), Err(StaticError::NotFound)));
        assert!(matches!(
            look(&root, "public/config"),
            Err(StaticError::NotFound)
        ));
    }

    #[test]
    fn a_sibling_leading_out_turns_precompression_off() {
        let (tmp, root) = tree();
        let served = |rest| match look(&root, rest) {
            Ok(Found::File(f)) => (f.served.encoding, f.served.content),
            other => panic!("{rest}: {other:?}"),
        };
        assert_eq!(served("a.css").0, None);
        std::fs::write(root.join("a.css.gz"), "gz").expect("write");
        assert!(
            matches!(served("a.css"), (Some(Encoding::Gzip), Content::Read(b)) if b == "gz"),
            "the missing .br is skipped"
        );
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("a.css.br"))
            .expect("symlink");
        assert!(
            matches!(served("a.css"), (None, Content::Read(b)) if b == "a{}"),
            "a .br leading out is no reason to try the .gz"
        );
    }

    #[test]
    fn what_is_served_is_the_file_opened_and_fstat_is_its_own() {
        use std::os::unix::fs::MetadataExt as _;
        let (_tmp, root) = tree();
        let Ok(Found::File(f)) = look(&root, "b.css") else {
            panic!("b.css is a link to a.css")
        };
        let on_disk = std::fs::metadata(root.join("a.css")).expect("metadata");
        assert_eq!(
            (f.metadata.dev(), f.metadata.ino()),
            (on_disk.dev(), on_disk.ino())
        );
        assert!(matches!(f.served.content, Content::Read(b) if b == "a{}"));
        let head = open(&root, &Wanted::parse("a.css").expect("path"), &[], false);
        assert!(
            matches!(head, Ok(Found::File(f)) if matches!(f.served.content, Content::Open(_, 3))),
            "a HEAD reads nothing"
        );
    }

    #[test]
    fn a_fifo_is_not_waited_on() {
        let (_tmp, root) = tree();
        let fifo = root.join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo");
        assert!(matches!(look(&root, "pipe"), Err(StaticError::NotFound)));
    }
}
