//! The forward stage: a route's target (an HTTP upstream, the CGI gateway,
//! a directory of static files, or a FastCGI server) answers the prepared request.
//!
//! Failures come back as the targets' own error types and become statuses
//! in [`crate::respond`]; a failure caused by the client's own body (broken
//! chunked framing) is the client's `400`, never the backend's `502`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

use crate::body::ResponseBody;
use crate::forwarded::{ClientInfo, ConnInfo};
use crate::respond::{BAD_BODY, Reject};
use crate::upstream::cgi::{AuthType, CgiContext, CgiGateway};
use crate::upstream::fastcgi::FastCgiUpstream;
use crate::upstream::files::StaticFiles;
use crate::upstream::http::HttpUpstream;
use crate::upstream::request_body::{ClientBodyFailure, RequestBody};
use crate::upstream::signed_assertion::{AssertionSigner, Resign};

/// Where a route sends its requests, prepared once per config.
pub enum Target {
    /// An `http://` or `https://` upstream (its connection pool).
    Http(HttpUpstream),
    /// A `cgi:DIR` directory.
    Cgi(CgiGateway),
    /// A `static:DIR` directory.
    Static(StaticFiles),
    /// A FastCGI server (`fastcgi://`, `fastcgi:unix:`) and a route's root.
    FastCgi(FastCgiUpstream),
}

/// What a target needs to know of the exchange besides the request.
pub struct Hop<'a> {
    /// Who the client is.
    pub client: &'a ClientInfo,
    /// The connection it came on.
    pub conn: &'a ConnInfo,
    /// The matched route's path (the CGI gateway and static files mount
    /// DIR there).
    pub route_path: &'a str,
    /// How long an upstream may take to answer.
    pub timeout: Duration,
    /// Says whether the client's body broke while it was read.
    pub body_failure: &'a ClientBodyFailure,
    /// The signed-in user and how they signed in: `REMOTE_USER` and
    /// `AUTH_TYPE` for scripts; `None` for anyone else.
    pub remote_user: Option<(&'a str, AuthType)>,
    /// With `headers.sign_key`: the signer and the request's `t`, for a
    /// CGI local redirect to be signed again (borrowed: only a script
    /// gateway takes a share of it).
    pub resign: Option<(&'a Arc<AssertionSigner>, u64)>,
}

impl Target {
    /// Whether a WebSocket handshake can go to this target.
    pub fn takes_upgrades(&self) -> bool {
        matches!(self, Target::Http(_))
    }

    /// Sends `req` and returns the response head with its streaming body.
    pub async fn forward(
        &self,
        req: Request<RequestBody>,
        hop: &Hop<'_>,
    ) -> Result<Response<ResponseBody>, Reject> {
        match self {
            Target::Http(upstream) => Ok(upstream
                .forward(req, hop.timeout, &hop.conn.upstream_timer)
                .await?
                .map(ResponseBody::upstream)),
            Target::Cgi(gateway) => {
                match Box::pin(gateway.serve(req, &script_context(hop))).await {
                    Ok(resp) => Ok(resp.map(ResponseBody::stream)),
                    // The script failed because the client's body broke.
                    Err(_) if hop.body_failure.happened() => Err(Reject::BadRequest(BAD_BODY)),
                    Err(e) => Err(e.into()),
                }
            }
            Target::Static(files) => Ok(files.serve(req, hop.route_path).await?),
            Target::FastCgi(upstream) => {
                let ctx = script_context(hop);
                match Box::pin(upstream.serve(req, &ctx, hop.timeout)).await {
                    Ok(resp) => Ok(resp.map(ResponseBody::stream)),
                    Err(_) if hop.body_failure.happened() => Err(Reject::BadRequest(BAD_BODY)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// What a script learns of the exchange besides the request (CGI and
/// FastCGI alike).
fn script_context(hop: &Hop<'_>) -> CgiContext {
    CgiContext {
        remote_addr: SocketAddr::new(hop.client.ip, hop.conn.peer.port()),
        local_addr: hop.conn.local,
        https: hop.client.https,
        route_prefix: hop.route_path.to_owned(),
        remote_user: hop.remote_user.map(|(user, how)| (user.into(), how)),
        resign: hop.resign.map(|(signer, t)| Resign {
            signer: Arc::clone(signer),
            t,
        }),
    }
}
