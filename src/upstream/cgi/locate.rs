//! Maps a request path to a script inside the CGI directory (RFC 3875 section 3.3).
//!
//! DIR is served at the route path up to its last `/` (see
//! [`crate::upstream::mount`]).
//! The URL path below that is percent-decoded one segment at a time and
//! walked inside DIR. The first segment that is an executable regular
//! file is the script; the segments after it are `PATH_INFO`. A path that ends
//! at a directory runs `index.cgi` from it.
//!
//! Nothing outside DIR can be reached: `.` and `..` segments are refused in
//! every spelling (`%2e%2e` included), a segment that decodes to a `/`, a
//! backslash or a NUL is refused, and every step is canonicalized and must
//! stay under the canonical DIR, so a symlink that leads out is refused too.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::CgiError;
use crate::upstream::mount::{mount_point, path_in_mount};

/// The file run for a directory path, e.g. `/` or `/guestbook/`.
const DIRECTORY_INDEX: &str = "index.cgi";

/// A script found for a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Script {
    /// Canonical path of the executable, inside DIR (`SCRIPT_FILENAME`).
    pub filename: PathBuf,
    /// URL path up to and including the script, decoded (`SCRIPT_NAME`).
    pub script_name: Vec<u8>,
    /// Decoded rest of the path after the script, maybe empty (`PATH_INFO`).
    pub path_info: Vec<u8>,
}

impl Script {
    /// `SCRIPT_NAME` for log lines.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.script_name).into_owned()
    }
}

/// Whether `path` lies within the route: under `prefix`, on a segment
/// boundary (`/app` covers `/app` and `/app/x`, not `/appx`).
pub(super) fn is_under_route(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => prefix.len() > 1 && prefix.strip_suffix('/') == Some(path),
    }
}

/// Finds the script for `path` (the raw, still percent-encoded URL path)
/// inside the canonical directory `dir`, served at the mount point of the
/// route `prefix`.
///
/// The file system walk runs on the blocking pool.
pub(super) async fn locate(dir: PathBuf, path: &str, prefix: &str) -> Result<Script, CgiError> {
    let Some(rest) = path_in_mount(path, prefix) else {
        tracing::debug!(target: "cgi", path, prefix, "path is not under the route's directory");
        return Err(CgiError::NotFound);
    };
    let segments = decode_segments(rest)?;
    let base = mount_point(prefix)
        .trim_end_matches('/')
        .as_bytes()
        .to_vec();
    tokio::task::spawn_blocking(move || walk(&dir, base, &segments))
        .await
        .map_err(|e| CgiError::BadGateway(format!("script lookup did not finish: {e}")))?
}

/// Splits the path on `/` and percent-decodes each segment, refusing any
/// segment that could step out of the directory it is looked up in.
fn decode_segments(rest: &str) -> Result<Vec<Vec<u8>>, CgiError> {
    rest.split('/')
        .map(|raw| {
            let decoded: Vec<u8> = percent_decode_str(raw).collect();
            let dot_segment = decoded == b"." || decoded == b"..";
            let separator = decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0));
            if dot_segment || separator {
                tracing::debug!(target: "cgi", segment = raw, "refused path segment");
                return Err(CgiError::NotFound);
            }
            Ok(decoded)
        })
        .collect()
}

/// Walks `segments` inside `dir`; `base` is the URL path of `dir` itself.
fn walk(dir: &Path, mut script_name: Vec<u8>, segments: &[Vec<u8>]) -> Result<Script, CgiError> {
    let mut current = dir.to_path_buf();
    for (index, segment) in segments.iter().enumerate() {
        // Empty segments (`//`, or the trailing slash of a directory) name
        // nothing; they only matter in PATH_INFO, after the script.
        if segment.is_empty() {
            continue;
        }
        let entry = inside(dir, &current.join(OsStr::from_bytes(segment)))?;
        script_name.push(b'/');
        script_name.extend_from_slice(segment);
        match entry {
            Entry::Directory(path) => current = path,
            Entry::Executable(filename) => {
                let mut path_info = Vec::new();
                for rest in &segments[index + 1..] {
                    path_info.push(b'/');
                    path_info.extend_from_slice(rest);
                }
                return Ok(Script {
                    filename,
                    script_name,
                    path_info,
                });
            }
        }
    }
    match inside(dir, &current.join(DIRECTORY_INDEX))? {
        Entry::Executable(filename) => {
            script_name.push(b'/');
            script_name.extend_from_slice(DIRECTORY_INDEX.as_bytes());
            Ok(Script {
                filename,
                script_name,
                path_info: Vec::new(),
            })
        }
        Entry::Directory(_) => Err(CgiError::NotFound),
    }
}

/// What a path inside DIR turned out to be.
enum Entry {
    Directory(PathBuf),
    Executable(PathBuf),
}

/// Canonicalizes `path`, checks that it is still under `dir`, and tells a
/// directory from an executable regular file; anything else is refused.
fn inside(dir: &Path, path: &Path) -> Result<Entry, CgiError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| refusal(path, &e))?;
    if !canonical.starts_with(dir) {
        tracing::warn!(target: "cgi", path = %path.display(), target_path = %canonical.display(),
            "refused: resolves outside the CGI directory");
        return Err(CgiError::Forbidden);
    }
    let metadata = std::fs::metadata(&canonical).map_err(|e| refusal(path, &e))?;
    if metadata.is_dir() {
        return Ok(Entry::Directory(canonical));
    }
    if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 {
        return Ok(Entry::Executable(canonical));
    }
    tracing::debug!(target: "cgi", path = %path.display(), "refused: not an executable regular file");
    Err(CgiError::Forbidden)
}

fn refusal(path: &Path, error: &io::Error) -> CgiError {
    tracing::debug!(target: "cgi", path = %path.display(), %error, "script lookup failed");
    match error.kind() {
        io::ErrorKind::PermissionDenied => CgiError::Forbidden,
        _ => CgiError::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_end_on_segment_boundaries() {
        assert!(is_under_route("/x.cgi", "/"));
        assert!(is_under_route("/cgi-bin/a", "/cgi-bin/"));
        assert!(is_under_route("/cgi-bin", "/cgi-bin/"));
        assert!(is_under_route("/app/a", "/app"));
        assert!(is_under_route("/app", "/app"));
        assert!(!is_under_route("/appx", "/app"));
        assert!(!is_under_route("/other/a", "/cgi-bin/"));
        assert!(!is_under_route("/index.cgi", "/members.cgi"));
    }

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for rest in ["..", ".", "a/../b", "%2e%2e", "%2E%2e/x", ".%2e", "%2e"] {
            assert!(decode_segments(rest).is_err(), "{rest} should be refused");
        }
    }

    #[test]
    fn encoded_separators_and_nul_are_refused() {
        for rest in ["a%2fb", "a%2Fb", "..%2f..", "a%5cb", "a\\b", "a%00b"] {
            assert!(decode_segments(rest).is_err(), "{rest} should be refused");
        }
    }

    #[test]
    fn ordinary_segments_are_decoded() {
        let segments = decode_segments("a%20b/c.cgi//x").expect("valid path");
        assert_eq!(
            segments,
            vec![b"a b".to_vec(), b"c.cgi".to_vec(), vec![], b"x".to_vec()]
        );
        assert_eq!(
            decode_segments("...").expect("three dots is a name"),
            vec![b"...".to_vec()]
        );
    }
}
