//! Builds a script's environment from scratch (RFC 3875 section 4.1).
//!
//! Nothing of the proxy's own environment is passed on: the command is run
//! with a cleared environment and only the variables built here, so secrets
//! such as `SESSIONGATE_KEY` never reach a script.

use std::collections::BTreeMap;
use std::path::Path;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Version};

use super::CgiContext;
use super::locate::Script;
use crate::config::ScriptEnv;
use crate::upstream::hop_by_hop::is_hop_by_hop;

/// `PATH` for scripts: the system directories, never the proxy's own `PATH`.
const SCRIPT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Request headers that never become `HTTP_*` variables.
///
/// Content-Length and Content-Type have variables of their own. `Proxy` is
/// the httpoxy hole (`HTTP_PROXY` is read by many HTTP clients as their proxy
/// setting). Credentials are withheld, as RFC 3875 section 4.1.18 allows.
/// Hop-by-hop headers ([`crate::upstream::hop_by_hop`]) are withheld too,
/// and so is `Trailer`: they describe the client connection and its framing,
/// not the request the script sees (its stdin is the decoded body, never
/// chunked, and never followed by trailers).
const WITHHELD: [HeaderName; 6] = [
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy"),
    header::TRAILER,
];

/// The request as the script is to see it.
///
/// For a local redirect this is a GET of the new location without a body,
/// carrying the original request's headers.
pub(crate) struct RequestFacts<'a> {
    pub method: &'a Method,
    pub version: Version,
    pub headers: &'a HeaderMap,
    /// Host from the request target (HTTP/2 `:authority`), when the Host
    /// header is missing.
    pub authority_host: Option<&'a str>,
    /// Raw path, still percent-encoded.
    pub path: &'a str,
    /// Raw query, without the `?`.
    pub query: Option<&'a str>,
    /// Whether a body goes to stdin: CONTENT_LENGTH and CONTENT_TYPE are set
    /// only then.
    pub has_body: bool,
    /// The body's exact length when known without a Content-Length header.
    pub body_length: Option<u64>,
}

impl<'a> RequestFacts<'a> {
    /// The request whose head is `parts`, with its body (of exactly
    /// `body_length` bytes, when that is known without a Content-Length).
    pub(crate) fn of(parts: &'a http::request::Parts, body_length: Option<u64>) -> Self {
        RequestFacts {
            method: &parts.method,
            version: parts.version,
            headers: &parts.headers,
            authority_host: parts.uri.host(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            has_body: true,
            body_length,
        }
    }
}

/// The environment variables for one script run, sorted by name.
pub(crate) type Environment = BTreeMap<String, Vec<u8>>;

/// Where the script is, as the program that runs it sees it.
pub(crate) struct ScriptPaths<'a> {
    /// `SCRIPT_NAME`: the URL path up to and including the script, decoded.
    pub script_name: &'a [u8],
    /// `SCRIPT_FILENAME`: the script's file.
    pub filename: &'a [u8],
    /// `PATH_INFO`: the decoded rest of the URL path, maybe empty.
    pub path_info: &'a [u8],
    /// `DOCUMENT_ROOT`.
    pub document_root: &'a [u8],
}

impl<'a> ScriptPaths<'a> {
    /// The paths of a CGI script found in `dir`.
    pub(super) fn cgi(script: &'a Script, dir: &'a Path) -> Self {
        ScriptPaths {
            script_name: &script.script_name,
            filename: script.filename.as_os_str().as_encoded_bytes(),
            path_info: &script.path_info,
            document_root: dir.as_os_str().as_encoded_bytes(),
        }
    }
}

/// Builds the CGI/1.1 environment for running the script at `script`.
pub(crate) fn build(
    request: &RequestFacts<'_>,
    script: &ScriptPaths<'_>,
    ctx: &CgiContext,
) -> Environment {
    let mut env = Environment::new();
    let mut set = |name: &str, value: &[u8]| {
        env.insert(name.to_owned(), value.to_vec());
    };
    let document_root = script.document_root;

    set("PATH", SCRIPT_PATH.as_bytes());
    set("GATEWAY_INTERFACE", b"CGI/1.1");
    set(
        "SERVER_SOFTWARE",
        concat!("sessiongate/", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    set(
        "SERVER_PROTOCOL",
        format!("{:?}", request.version).as_bytes(),
    );
    set("SERVER_NAME", server_name(request, ctx).as_bytes());
    set("SERVER_PORT", ctx.local_addr.port().to_string().as_bytes());
    set(
        "SERVER_ADDR",
        ctx.local_addr.ip().to_canonical().to_string().as_bytes(),
    );
    set(
        "REMOTE_ADDR",
        ctx.remote_addr.ip().to_canonical().to_string().as_bytes(),
    );
    set("REMOTE_PORT", ctx.remote_addr.port().to_string().as_bytes());
    set("REQUEST_SCHEME", if ctx.https { b"https" } else { b"http" });
    if ctx.https {
        set("HTTPS", b"on");
    }
    // As Apache sets them after its own authentication: from the session
    // alone. A client's `Remote-User` header is only ever HTTP_REMOTE_USER.
    if let Some((user, auth_type)) = &ctx.remote_user {
        set("REMOTE_USER", user.as_bytes());
        set("AUTH_TYPE", auth_type.cgi_value().as_bytes());
    }
    set("REQUEST_METHOD", request.method.as_str().as_bytes());
    let request_uri = match request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.to_owned(),
    };
    set("REQUEST_URI", request_uri.as_bytes());
    set("QUERY_STRING", request.query.unwrap_or("").as_bytes());
    set("DOCUMENT_ROOT", document_root);
    set("SCRIPT_NAME", script.script_name);
    set("SCRIPT_FILENAME", script.filename);
    set("PATH_INFO", script.path_info);
    if !script.path_info.is_empty() {
        set(
            "PATH_TRANSLATED",
            &[document_root, script.path_info].concat(),
        );
    }
    if request.has_body {
        let length = match request.headers.get(header::CONTENT_LENGTH) {
            Some(value) => Some(value.as_bytes().to_vec()),
            None => request
                .body_length
                .filter(|&n| n > 0)
                .map(|n| n.to_string().into_bytes()),
        };
        if let Some(length) = length {
            set("CONTENT_LENGTH", &length);
        }
        if let Some(content_type) = request.headers.get(header::CONTENT_TYPE) {
            set("CONTENT_TYPE", content_type.as_bytes());
        }
    }
    for name in request.headers.keys() {
        if let Some(variable) = variable_name(name) {
            let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
            let values: Vec<&[u8]> = request
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            env.insert(variable, values.join(separator));
        }
    }
    env
}

/// Adds a route's `env` settings: a variable the gateway has set keeps its
/// value (`check` refuses such names; this holds even if it did not).
pub(crate) fn add_settings(env: &mut Environment, settings: &ScriptEnv) {
    for (name, value) in settings.iter() {
        env.entry(name.to_owned())
            .or_insert_with(|| value.as_bytes().to_vec());
    }
}

/// `HTTP_` + the header name uppercased with `-` as `_`, or `None` for a
/// header the script must not see.
///
/// A name with any character but letters, digits and `-` is dropped, as
/// Apache httpd does: `X_Session_User` or `X.Session.User` would otherwise
/// arrive as `HTTP_X_SESSION_USER`, the variable sessiongate sets itself.
fn variable_name(name: &HeaderName) -> Option<String> {
    if WITHHELD.contains(name) || is_hop_by_hop(name.as_str()) {
        return None;
    }
    let name = name.as_str();
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        tracing::debug!(target: "cgi", header = name, "header not passed to the script: unusual characters in its name");
        return None;
    }
    Some(format!(
        "HTTP_{}",
        name.to_ascii_uppercase().replace('-', "_")
    ))
}

/// `SERVER_NAME`: the Host the client asked for, without its port.
fn server_name(request: &RequestFacts<'_>, ctx: &CgiContext) -> String {
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or(request.authority_host)
        .map(without_port)
        .filter(|host| !host.is_empty());
    match host {
        Some(host) => host.to_owned(),
        None => ctx.local_addr.ip().to_canonical().to_string(),
    }
}

/// `example.org:8080` -> `example.org`, `[::1]:8080` -> `[::1]`.
fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, _port)) => name,
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_taken_off_host_names() {
        assert_eq!(without_port("example.org:8080"), "example.org");
        assert_eq!(without_port("example.org"), "example.org");
        assert_eq!(without_port("[::1]:8080"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn route_settings_cannot_name_what_the_gateway_sets() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        headers.insert(header::CONTENT_LENGTH, "1".parse().expect("value"));
        headers.insert("remote-user", "mallory".parse().expect("value"));
        let request = RequestFacts {
            method: &Method::POST,
            version: Version::HTTP_11,
            headers: &headers,
            authority_host: None,
            path: "/x.cgi/more",
            query: Some("a=1"),
            has_body: true,
            body_length: None,
        };
        let paths = ScriptPaths {
            script_name: b"/x.cgi",
            filename: b"/srv/x.cgi",
            path_info: b"/more",
            document_root: b"/srv",
        };
        let ctx = CgiContext {
            remote_addr: "192.0.2.1:5000".parse().expect("address"),
            local_addr: "127.0.0.1:8080".parse().expect("address"),
            https: true,
            route_prefix: "/".to_owned(),
            remote_user: Some(("alice".into(), super::super::AuthType::Session)),
            resign: None,
        };
        let mut env = build(&request, &paths, &ctx);
        assert_eq!(env["REMOTE_USER"], b"alice");
        assert_eq!(env["AUTH_TYPE"], b"Form");
        assert_eq!(env["HTTP_REMOTE_USER"], b"mallory");
        // Every variable the gateway sets is one `env` may not name
        // (FastCGI adds REDIRECT_STATUS, reserved too).
        for name in env.keys() {
            assert!(
                name.starts_with("HTTP_")
                    || crate::config::RESERVED_SCRIPT_VARIABLES.contains(&name.as_str()),
                "{name} is set by the gateway but not reserved"
            );
        }
        // And a setting never replaces one of them.
        let settings = ScriptEnv::new(
            [("REMOTE_USER", "root"), ("APP", "1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        );
        add_settings(&mut env, &settings);
        assert_eq!(env["REMOTE_USER"], b"alice");
        assert_eq!(env["APP"], b"1");
    }

    #[test]
    fn header_names_become_http_variables() {
        let name = |s: &'static str| HeaderName::from_static(s);
        assert_eq!(
            variable_name(&name("x-session-user")).as_deref(),
            Some("HTTP_X_SESSION_USER")
        );
        assert_eq!(
            variable_name(&header::ACCEPT_LANGUAGE).as_deref(),
            Some("HTTP_ACCEPT_LANGUAGE")
        );
        assert_eq!(variable_name(&name("proxy")), None);
        assert_eq!(variable_name(&header::AUTHORIZATION), None);
        assert_eq!(variable_name(&header::CONTENT_LENGTH), None);
        assert_eq!(variable_name(&header::TRANSFER_ENCODING), None);
        assert_eq!(variable_name(&name("x_session_user")), None);
        assert_eq!(variable_name(&name("x.session.user")), None);
    }
}
