//! The CGI/1.1 gateway (RFC 3875): answers a request by running a script
//! from a directory, for routes with `upstream = "cgi:DIR"`.
//!
//! One request, as [`CgiGateway::serve`] reads:
//!
//! ```text
//! map the URL path to a script inside DIR                  locate       404 / 403
//! take a slot: max_concurrent, then a bounded queue                     503
//! build the environment from scratch                       environment
//! spawn in its own process group, stream the body to stdin process
//! read the header block from stdout                        output       502 / 504
//! local redirect? run the new path instead (at most 5)
//! answer; the rest of stdout streams as the body           process
//! ```
//!
//! Scripts never see the proxy's environment, never outlive their request
//! (the whole process group is killed at the end), and their stderr goes to
//! the log, never to the client.

// Shared with the FastCGI gateway, which gives scripts the same environment.
pub(crate) mod environment;
mod locate;
// Public for the fuzz targets in fuzz/ (a separate crate): the header-block
// parser reads what a script prints, and it is the only part of the gateway
// that needs no process to exercise.
pub mod output;
mod process;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

pub use process::CgiBody;

use super::signed_assertion::Resign;
use crate::config::ScriptEnv;
use environment::RequestFacts;

/// How many local redirects one request may follow (RFC 3875 section 6.2.2).
const MAX_LOCAL_REDIRECTS: usize = 5;

/// Options taken from config.
#[derive(Debug, Clone)]
pub struct CgiOptions {
    /// Limit for one script run, from spawn to its end; the header block
    /// must arrive within it too. Also the longest a request waits in the
    /// queue for a slot.
    pub timeout: Duration,
    /// Scripts that may run at once.
    pub max_concurrent: usize,
    /// Requests that may wait for a slot when all are taken; more get 503.
    pub max_queue: usize,
}

/// Per-request facts the gateway cannot see in the request itself.
#[derive(Debug, Clone)]
pub struct CgiContext {
    /// The client, already resolved through trusted proxies
    /// (`REMOTE_ADDR`, `REMOTE_PORT`).
    pub remote_addr: SocketAddr,
    /// The listener's address (`SERVER_ADDR`, `SERVER_PORT`).
    pub local_addr: SocketAddr,
    /// Whether the client's connection is HTTPS (`HTTPS=on`).
    pub https: bool,
    /// The `[[route]]` path that matched, e.g. `/` or `/cgi-bin/`.
    ///
    /// DIR is served at this path up to its last `/`, so `/cgi-bin/` maps
    /// `/cgi-bin/x.cgi` to DIR/x.cgi, and a route `/members.cgi` next to a
    /// route `/` (for one script with a stricter access level) runs
    /// DIR/members.cgi. Local redirects are followed inside the gateway only
    /// within this route.
    pub route_prefix: String,
    /// The signed-in user and how they signed in (`REMOTE_USER`,
    /// `AUTH_TYPE`); `None` for an anonymous visitor. Never taken from
    /// anything the client sent.
    pub remote_user: Option<(Arc<str>, AuthType)>,
    /// With `headers.sign_key`: signs the request of a local redirect
    /// again, for its method and path (see [`super::signed_assertion`]).
    pub resign: Option<Resign>,
}

/// How a visitor proved who they are, as a script reads it in `AUTH_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// A cookie session signed in through a login form: `Form`, the value
    /// Apache's mod_auth_form gives.
    Session,
    /// HTTP Basic credentials checked by the proxy on this request: `Basic`.
    Basic,
}

impl AuthType {
    /// The value of `AUTH_TYPE`.
    pub fn cgi_value(self) -> &'static str {
        match self {
            AuthType::Session => "Form",
            AuthType::Basic => "Basic",
        }
    }
}

/// Why the gateway could not answer with a script's response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CgiError {
    /// No script at this path, or a path that tries to leave DIR.
    #[error("no CGI script at this path")]
    NotFound,
    /// A file that may not be run (not executable, or outside DIR).
    #[error("this path may not be run as a CGI script")]
    Forbidden,
    /// Every slot is taken and the queue is full, or the wait was too long.
    #[error("too many CGI requests at once")]
    Busy,
    /// The script did not finish its header block within the timeout.
    #[error("the CGI script did not answer in time")]
    Timeout,
    /// The script failed or printed something that is not a CGI response.
    /// The text is for the log only.
    #[error("the CGI script failed: {0}")]
    BadGateway(String),
    /// The gateway's own configuration is unusable.
    #[error("CGI configuration: {0}")]
    Config(String),
}

/// Runs CGI scripts from one directory. Cheap to clone; clones share the
/// concurrency limit.
#[derive(Clone)]
pub struct CgiGateway {
    shared: Arc<Shared>,
    redirect_check: Option<Arc<RedirectCheck>>,
    /// The route's `env` settings, added to every script's environment.
    settings: Arc<ScriptEnv>,
}

/// See [`CgiGateway::with_local_redirect_check`].
type RedirectCheck = dyn Fn(&str, &CgiContext) -> bool + Send + Sync;

impl std::fmt::Debug for CgiGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CgiGateway")
            .field("dir", &self.shared.dir)
            .field("options", &self.shared.options)
            .field("redirect_check", &self.redirect_check.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Debug)]
struct Shared {
    /// Canonical DIR: every script must resolve inside it.
    dir: PathBuf,
    options: CgiOptions,
    slots: Arc<Semaphore>,
    /// Requests waiting for a slot right now.
    queued: AtomicUsize,
}

impl CgiGateway {
    /// A gateway for the scripts in `dir`, which must exist and be a
    /// directory.
    pub fn new(dir: &Path, options: CgiOptions) -> Result<Self, CgiError> {
        if options.max_concurrent == 0 || options.max_concurrent > Semaphore::MAX_PERMITS {
            return Err(CgiError::Config(format!(
                "max_concurrent must be 1 to {}",
                Semaphore::MAX_PERMITS
            )));
        }
        if options.timeout.is_zero() {
            return Err(CgiError::Config(
                "the CGI timeout must be above zero".to_owned(),
            ));
        }
        let canonical = std::fs::canonicalize(dir)
            .map_err(|e| CgiError::Config(format!("{}: {e}", dir.display())))?;
        if !canonical.is_dir() {
            return Err(CgiError::Config(format!(
                "{}: not a directory",
                dir.display()
            )));
        }
        Ok(CgiGateway {
            shared: Arc::new(Shared {
                dir: canonical,
                slots: Arc::new(Semaphore::new(options.max_concurrent)),
                options,
                queued: AtomicUsize::new(0),
            }),
            redirect_check: None,
            settings: Arc::default(),
        })
    }

    /// Adds `settings` to every script's environment (a route's `env`, as
    /// Apache's `SetEnv`). They never replace a variable the gateway sets.
    pub fn with_settings(mut self, settings: ScriptEnv) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// Narrows which local redirects the gateway follows itself.
    ///
    /// A local redirect (`Location: /path` and nothing else) is run inside
    /// the gateway, so the proxy's route and access decision is not made
    /// again for the new path. By default it is followed when the path lies
    /// within `route_prefix`; but a longer route with a stricter access
    /// level inside it (`/members.cgi`, `access = "login"`, inside `/`) is
    /// invisible here. `check` gets the new path (without its query) and the
    /// request's context, and should answer whether the proxy would serve
    /// that path through the same route. When it says no, the client gets a
    /// 302 to the location and comes back through the proxy.
    pub fn with_local_redirect_check<F>(mut self, check: F) -> Self
    where
        F: Fn(&str, &CgiContext) -> bool + Send + Sync + 'static,
    {
        self.redirect_check = Some(Arc::new(check));
        self
    }

    /// The canonical directory scripts are run from.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Scripts running right now (or being reaped), for metrics.
    pub fn running(&self) -> usize {
        self.shared.options.max_concurrent - self.shared.slots.available_permits()
    }

    /// Requests waiting for a slot right now, for metrics.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Answers `req` by running the script its path names.
    ///
    /// The request body streams to the script's stdin; the response body
    /// streams from its stdout. Errors carry the status to answer with
    /// (see `crate::respond::Reject`); their details are for the log.
    pub async fn serve<B>(
        &self,
        req: Request<B>,
        ctx: &CgiContext,
    ) -> Result<Response<CgiBody>, CgiError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let body_length = body.size_hint().exact();
        let mut body = Some(body);
        // Set by a local redirect: the path and query to run next, as a GET.
        let mut redirect: Option<(String, Option<String>)> = None;
        // The headers of that GET, when their signature had to be made again.
        let mut resigned: Option<http::HeaderMap> = None;
        let mut slot = None;
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            let request = match &redirect {
                None => RequestFacts::of(&parts, body_length),
                Some((path, query)) => RequestFacts {
                    method: &Method::GET,
                    version: parts.version,
                    headers: resigned.as_ref().unwrap_or(&parts.headers),
                    authority_host: parts.uri.host(),
                    path,
                    query: query.as_deref(),
                    has_body: false,
                    body_length: None,
                },
            };
            let script =
                locate::locate(self.shared.dir.clone(), request.path, &ctx.route_prefix).await?;
            let slot = match &slot {
                Some(slot) => Arc::clone(slot),
                None => Arc::clone(slot.insert(Arc::new(self.take_slot().await?))),
            };
            let paths = environment::ScriptPaths::cgi(&script, &self.shared.dir);
            let mut env = environment::build(&request, &paths, ctx);
            environment::add_settings(&mut env, &self.settings);
            let mut run = process::spawn(
                &script,
                &env,
                body.take(),
                slot,
                self.shared.options.timeout,
            )?;
            let (head, rest) = run.read_head().await?;
            let Some(location) = head.local_redirect().map(str::to_owned) else {
                return Ok(respond(head, run.into_body(rest)));
            };
            // Only a redirect without a body is local; with one, the client
            // gets the script's answer as it is.
            let first = run.first_body_bytes(rest).await?;
            if !first.is_empty() {
                return Ok(respond(head, run.into_body(first)));
            }
            run.finish();
            let (path, query) = split_location(&location);
            if !self.may_follow(path, ctx) {
                tracing::debug!(target: "cgi", %location, "local redirect leaves the route: sent to the client");
                return Ok(client_redirect(&location));
            }
            if let Some(resign) = &ctx.resign {
                // The script run next must be able to verify what it gets:
                // a GET of its own path, not the request first signed.
                let target = match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path.to_owned(),
                };
                let mut headers = parts.headers.clone();
                resign.sign(&mut headers, Method::GET.as_str(), &target);
                resigned = Some(headers);
            }
            redirect = Some((path.to_owned(), query.map(str::to_owned)));
        }
        Err(CgiError::BadGateway(format!(
            "more than {MAX_LOCAL_REDIRECTS} local redirects"
        )))
    }

    /// Whether a local redirect to `path` may be run here.
    fn may_follow(&self, path: &str, ctx: &CgiContext) -> bool {
        locate::is_under_route(path, &ctx.route_prefix)
            && self
                .redirect_check
                .as_ref()
                .is_none_or(|check| check(path, ctx))
    }

    /// Waits for a script slot: at once when one is free, else in the queue
    /// when it has room, for at most the timeout.
    async fn take_slot(&self) -> Result<OwnedSemaphorePermit, CgiError> {
        let shared = &self.shared;
        match Arc::clone(&shared.slots).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(CgiError::Busy),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _place =
            QueuePlace::take(&shared.queued, shared.options.max_queue).ok_or(CgiError::Busy)?;
        match tokio::time::timeout(
            shared.options.timeout,
            Arc::clone(&shared.slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(CgiError::Busy),
            Err(_elapsed) => {
                tracing::warn!(target: "cgi", "no CGI slot came free within the timeout");
                Err(CgiError::Busy)
            }
        }
    }
}

/// A place in the queue for a slot, given back when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<Self> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(QueuePlace(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `/path?query#fragment` -> (`/path`, `Some("query")`).
fn split_location(location: &str) -> (&str, Option<&str>) {
    let without_fragment = location
        .split_once('#')
        .map_or(location, |(before, _)| before);
    match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    }
}

/// The script's response: its status, its headers, the rest of its stdout.
fn respond(head: output::ScriptHead, body: CgiBody) -> Response<CgiBody> {
    let status = head.status();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = head.headers;
    if let Some(location) = head.location {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// 302 to a local redirect that leaves the route, for the client to follow.
fn client_redirect(location: &str) -> Response<CgiBody> {
    let mut response = Response::new(CgiBody::empty());
    *response.status_mut() = StatusCode::FOUND;
    // The location came from a HeaderValue, so it still is one.
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_path_and_query() {
        assert_eq!(split_location("/a.cgi"), ("/a.cgi", None));
        assert_eq!(split_location("/a.cgi?x=1"), ("/a.cgi", Some("x=1")));
        assert_eq!(split_location("/a.cgi?x=1#top"), ("/a.cgi", Some("x=1")));
        assert_eq!(split_location("/a.cgi#top"), ("/a.cgi", None));
    }

    #[test]
    fn the_queue_has_a_bound() {
        let queued = AtomicUsize::new(0);
        let first = QueuePlace::take(&queued, 2);
        let second = QueuePlace::take(&queued, 2);
        assert!(first.is_some() && second.is_some());
        assert!(QueuePlace::take(&queued, 2).is_none());
        drop(first);
        assert!(QueuePlace::take(&queued, 2).is_some());
        assert!(QueuePlace::take(&queued, 0).is_none());
    }
}
