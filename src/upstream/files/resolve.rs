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
//! device) is 404 too, so a request never blocks on a special file.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::StaticError;

/// The file served for a directory path, e.g. `/static/` or `/static/docs/`.
pub(super) const DIRECTORY_INDEX: &str = "index.html";

/// The suffixes of the precompressed siblings the files are served with
/// (those `ServeFile` is told to look for in `files::serve_file`).
pub(super) const PRECOMPRESSED: [&str; 2] = ["gz", "br"];

/// A request path below the mount point, decoded and checked, not yet
/// looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A regular file to serve.
#[derive(Debug)]
pub(super) struct FileFound {
    /// Its canonical path, inside DIR.
    pub path: PathBuf,
    /// Its metadata (size and modification time make the entity tag).
    pub metadata: Metadata,
    /// Its content type, by the extension of the name asked for (not of
    /// a symlink's target), as nginx does.
    pub content_type: mime_guess::Mime,
    /// Whether its precompressed siblings may be served: every one that
    /// exists is a regular file inside DIR.
    pub siblings_ok: bool,
}

/// Looks `wanted` up inside the canonical directory `root`. Runs file
/// system calls: call it on the blocking pool.
///
/// `with_siblings`: whether to check the precompressed siblings (only worth
/// it when the client accepts an encoding).
pub(super) fn find(
    root: &Path,
    wanted: &Wanted,
    with_siblings: bool,
) -> Result<Found, StaticError> {
    let mut path = root.to_path_buf();
    for segment in &wanted.segments {
        path.push(OsStr::from_bytes(segment));
    }
    let (mut canonical, mut metadata) = inside(root, &path)?;
    if metadata.is_dir() {
        if !wanted.directory {
            return Ok(Found::Directory);
        }
        path.push(DIRECTORY_INDEX);
        (canonical, metadata) = inside(root, &canonical.join(DIRECTORY_INDEX))?;
    } else if wanted.directory {
        // `/style.css/` names a directory that is not there.
        return Err(StaticError::NotFound);
    }
    if !metadata.is_file() {
        tracing::debug!(target: "files", path = %path.display(), "refused: not a regular file");
        return Err(StaticError::NotFound);
    }
    let siblings_ok = !with_siblings
        || PRECOMPRESSED
            .iter()
            .all(|suffix| sibling_ok(root, &canonical, suffix));
    Ok(Found::File(Box::new(FileFound {
        content_type: mime_guess::from_path(&path).first_or_octet_stream(),
        path: canonical,
        metadata,
        siblings_ok,
    })))
}

/// Whether the precompressed sibling `file.suffix` is absent, or a regular
/// file inside `root`.
fn sibling_ok(root: &Path, file: &Path, suffix: &str) -> bool {
    let mut name = OsString::from(file.as_os_str());
    name.push(".");
    name.push(suffix);
    match inside(root, Path::new(&name)) {
        Ok((_, metadata)) => metadata.is_file(),
        Err(StaticError::NotFound) => !Path::new(&name).exists(),
        Err(_) => false,
    }
}

/// Canonicalizes `path` and checks that it is still under `root`, with no
/// dot-segment below it; then reads its metadata.
fn inside(root: &Path, path: &Path) -> Result<(PathBuf, Metadata), StaticError> {
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
    let metadata = std::fs::metadata(&canonical).map_err(|e| missing(path, &e))?;
    Ok((canonical, metadata))
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
        find(root, &Wanted::parse(rest)?, true)
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
        let plain = |rest| match look(&root, rest) {
            Ok(Found::File(f)) => f.siblings_ok,
            other => panic!("{rest}: {other:?}"),
        };
        assert!(plain("a.css"));
        std::fs::write(root.join("a.css.gz"), "gz").expect("write");
        assert!(plain("a.css"));
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("a.css.br"))
            .expect("symlink");
        assert!(!plain("a.css"));
    }
}
