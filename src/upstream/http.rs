//! Forwarding to HTTP and HTTPS upstreams over a pooled hyper-util client.
//!
//! Upstreams always get HTTP/1.1, whatever the client spoke. `https://`
//! upstreams are reached through rustls (hyper-rustls), with SNI and
//! certificate verification for the upstream's host name.

use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::respond::Reject;

/// How long an idle pooled upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a TCP connect to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled client shared by every request (keep-alive to each upstream).
#[derive(Clone)]
pub struct HttpUpstream {
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
}

impl HttpUpstream {
    /// Builds the client; `tls` says whom `https://` upstreams are trusted
    /// by (see [`crate::tls::upstream_client_config`]).
    pub fn new(tls: rustls::ClientConfig) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(Duration::from_secs(60)));
        // The TLS layer on top decides by the URI's scheme.
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(256)
            .set_host(false)
            .build(connector);
        HttpUpstream { client }
    }

    /// Sends the request to `scheme://authority` with its own path and query,
    /// and waits at most `timeout` for the response head.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        scheme: &Scheme,
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Reject> {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| Reject::BadRequest("The request target is invalid."))?;
        *req.uri_mut() = uri;
        // Upstreams speak HTTP/1.1 whatever the client spoke.
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Err(_) => Err(Reject::GatewayTimeout),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %authority, error = %error_chain(&e), "upstream request failed");
                Err(Reject::BadGateway)
            }
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
