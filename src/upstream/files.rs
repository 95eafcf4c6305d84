//! Static files: answers GET and HEAD from a directory, for routes with
//! `upstream = "static:DIR"`.
//!
//! One request, as [`StaticFiles::serve`] reads:
//!
//! ```text
//! GET or HEAD only                                           405
//! which precompressed siblings the client takes              encoding
//! a small file kept from an earlier request, still the same  cache
//! ---- or one call on the blocking pool ----
//! the URL path below the mount point -> a file inside DIR,   resolve     404 / 301 add the slash
//!   opened, fstat; its sibling instead if there;
//!   the bytes of a small file read                           content
//! ----
//! If-Match, If-None-Match, If-Range on the entity tag        validators  412 / 304
//! If-(Un)Modified-Since, Range, content type, Last-Modified  response    200 / 206 / 304 / 412 / 416
//! ETag, Cache-Control, Vary: Accept-Encoding                 here
//! ```
//!
//! A request goes to the blocking pool once: the lookup, the open, the
//! `fstat` of the open handle and, for a file of at most 64 KiB, the read of
//! its bytes are one call (the workers are current-thread runtimes, so file
//! system calls cannot run in place). A larger file streams from the handle
//! opened then, in chunks, never read whole. A small file asked for again is
//! served from memory after a `realpath` and a `stat` on the worker's thread
//! show the same path and the same version (`cache`), with no trip at all.
//!
//! Which file may be served at all (no dot-files, nothing outside DIR even
//! through a symlink, no directory listing) is `resolve`'s; the answer's
//! HTTP semantics are those tower-http's `ServeFile` gave, built from the
//! `headers` and `http-range-header` crates (`response`).

mod cache;
mod content;
mod encoding;
mod resolve;
mod response;
mod validators;

use std::path::Path;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};

use crate::body::ResponseBody;
use crate::upstream::mount::path_in_mount;
use cache::SmallFiles;
use encoding::Encoding;
use resolve::{Found, Wanted};
use validators::{Validators, Verdict};

/// What every response says about caching on a public route: caches may
/// keep the file but must ask again each time, so a changed file is seen at
/// once while an unchanged one costs a `304` and no bytes.
const CACHE_PUBLIC: &str = "no-cache";

/// The same on a `session` or `login` route: only the visitor's own browser
/// may keep a copy, never a shared cache.
const CACHE_PRIVATE: &str = "private, no-cache";

/// The methods a static route takes, for `Allow`.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Why no file is served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StaticError {
    /// Nothing may be served at this path: missing, a dot-file, outside
    /// DIR, a directory without `index.html`, not a regular file.
    #[error("no file at this path")]
    NotFound,
    /// Files are read with GET and HEAD only.
    #[error("static files take GET and HEAD only")]
    MethodNotAllowed,
    /// The directory is unusable (at setup).
    #[error("static directory: {0}")]
    Config(String),
    /// Reading the file failed. The text is for the log only.
    #[error("reading a static file failed: {0}")]
    Io(String),
}

/// Serves the files of one directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// The canonical DIR: every file served resolves inside it.
    root: Arc<Path>,
    /// `Cache-Control` on every file response.
    cache_control: HeaderValue,
    /// The small files asked for lately, shared by every worker.
    small_files: Arc<SmallFiles>,
}

impl StaticFiles {
    /// Files from `dir`, which must exist and be a directory. `private`:
    /// the route needs a session, so no shared cache may keep its files.
    pub fn new(dir: &Path, private: bool) -> Result<Self, StaticError> {
        let canonical = std::fs::canonicalize(dir)
            .map_err(|e| StaticError::Config(format!("{}: {e}", dir.display())))?;
        if !canonical.is_dir() {
            return Err(StaticError::Config(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        Ok(StaticFiles {
            root: Arc::from(canonical),
            cache_control: HeaderValue::from_static(if private {
                CACHE_PRIVATE
            } else {
                CACHE_PUBLIC
            }),
            small_files: Arc::new(SmallFiles::new()),
        })
    }

    /// The canonical directory files are served from.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Answers `req` with the file its path names, DIR being mounted at the
    /// route path `route_prefix` up to its last `/`. The request's body, if
    /// any, is not read.
    pub async fn serve<B>(
        &self,
        req: Request<B>,
        route_prefix: &str,
    ) -> Result<Response<ResponseBody>, StaticError> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(StaticError::MethodNotAllowed);
        }
        let rest = path_in_mount(req.uri().path(), route_prefix).ok_or(StaticError::NotFound)?;
        let wanted = Wanted::parse(rest)?;
        let siblings = encoding::wanted(req.headers());
        let file = match self.small_files.get(&wanted, &siblings) {
            Some(file) => Box::new(file),
            None => match self
                .look_up(wanted, siblings, req.method() == Method::GET)
                .await?
            {
                Found::Directory => return add_slash(req.uri()),
                Found::File(file) => file,
            },
        };
        let (mut parts, _body) = req.into_parts();
        let validators = Validators::of(&file.metadata);
        match validators::evaluate(&mut parts.headers, &validators) {
            Verdict::Serve => {}
            Verdict::NotModified => {
                return Ok(self.finish(status_only(StatusCode::NOT_MODIFIED), &validators));
            }
            Verdict::PreconditionFailed => {
                return Ok(self.finish(status_only(StatusCode::PRECONDITION_FAILED), &validators));
            }
        }
        let resolve::FileFound {
            path,
            content_type,
            served,
            ..
        } = *file;
        let response = response::answer(&parts.method, &parts.headers, &content_type, served)
            .await
            .map_err(|e| StaticError::Io(format!("{}: {e}", path.display())))?;
        Ok(self.finish(response, &validators))
    }

    /// Looks `wanted` up in one call on the blocking pool, and keeps a
    /// small file found (`read_small`: for a GET, its bytes are read).
    async fn look_up(
        &self,
        wanted: Wanted,
        siblings: Vec<Encoding>,
        read_small: bool,
    ) -> Result<Found, StaticError> {
        let root = Arc::clone(&self.root);
        let small_files = Arc::clone(&self.small_files);
        tokio::task::spawn_blocking(move || {
            let found = resolve::open(&root, &wanted, &siblings, read_small)?;
            if let Found::File(file) = &found {
                small_files.keep(wanted, siblings, file);
            }
            Ok(found)
        })
        .await
        .map_err(|e| StaticError::Io(format!("file lookup did not finish: {e}")))?
    }

    /// Adds the headers every answer carries: the entity tag, caching.
    fn finish(
        &self,
        mut response: Response<ResponseBody>,
        validators: &Validators,
    ) -> Response<ResponseBody> {
        let status = response.status();
        let headers = response.headers_mut();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            headers.insert(header::ETAG, validators.tag_value.clone());
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        // The body depends on Accept-Encoding whenever a sibling might be
        // served, including the plain answer to a client that took none.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        response
    }
}

/// `301` to the same path with a slash added, the query kept: a directory
/// is served at its path with the slash, so that its relative links resolve.
fn add_slash(uri: &Uri) -> Result<Response<ResponseBody>, StaticError> {
    let path = uri.path();
    // The path is normalised (runs of `/` merged), so this is only a guard:
    // a Location starting `//` would send the browser to another host.
    if path.starts_with("//") || !path.starts_with('/') {
        return Err(StaticError::NotFound);
    }
    let location = match uri.query() {
        Some(query) => format!("{path}/?{query}"),
        None => format!("{path}/"),
    };
    let location = HeaderValue::from_str(&location).map_err(|_| StaticError::NotFound)?;
    let mut response = status_only(StatusCode::MOVED_PERMANENTLY);
    response.headers_mut().insert(header::LOCATION, location);
    Ok(response)
}

fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_redirect_keeps_the_query() {
        let to = |uri: &str| {
            let uri: Uri = uri.parse().expect("uri");
            add_slash(&uri).map(|r| {
                r.headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned)
            })
        };
        assert_eq!(
            to("/static/docs").ok().flatten().as_deref(),
            Some("/static/docs/")
        );
        assert_eq!(
            to("/static/docs?a=1&b").ok().flatten().as_deref(),
            Some("/static/docs/?a=1&b")
        );
        assert!(to("//evil.example/docs").is_err());
    }

    #[test]
    fn a_missing_directory_is_refused_at_setup() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(StaticFiles::new(&tmp.path().join("missing"), false).is_err());
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(StaticFiles::new(&file, false).is_err());
        assert!(StaticFiles::new(tmp.path(), false).is_ok());
    }
}
