//! Request headers on the way to the backend, response headers on the way back.
//!
//! Order matters on the request side: hop-by-hop headers (and every header a
//! client names in `Connection`) go first, then every header carrying our
//! prefix in any spelling, then our own cookie; only then are the session
//! headers added. A client can therefore neither forge a session header nor
//! make us drop one we add.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HeadersConfig;
use crate::forwarded::{ClientInfo, ConnInfo, ip_header};
use crate::session::SessionId;

/// Removes hop-by-hop headers, including those named in `Connection`.
/// `TE: trailers` survives as just that: it tells the upstream that the
/// client takes trailers (gRPC needs it), and no other `TE` value does.
///
/// One pass over the names finds the hop-by-hop ones present; most requests
/// carry none, and most responses only `Connection`, so nothing else is
/// looked up or removed.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name.as_str()) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    let takes_trailers = present[TE_INDEX]
        && headers
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    // Other names the `Connection` header lists. Its usual values, `close`
    // and `keep-alive`, add nothing to remove (a `Keep-Alive` header was
    // found above), so they cost neither a parse nor an allocation.
    let listed: Vec<HeaderName> = if present[CONNECTION_INDEX] {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| !n.eq_ignore_ascii_case("close") && hop_by_hop_index(n).is_none())
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect()
    } else {
        Vec::new()
    };
    for ((_, name), _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    for name in listed {
        headers.remove(name);
    }
    if takes_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Header names that describe one connection and never travel past a proxy,
/// as text and as names. (`Trailer` is not one of them: it announces
/// end-to-end trailer fields, and hyper sends HTTP/1.1 trailers only for
/// the names it lists.) The text is what the check compares, lengths first:
/// that is what makes it cheap for the many names that are none of these.
static HOP_BY_HOP: [(&str, HeaderName); 9] = [
    ("connection", header::CONNECTION),
    ("keep-alive", HeaderName::from_static("keep-alive")),
    (
        "proxy-connection",
        HeaderName::from_static("proxy-connection"),
    ),
    ("proxy-authenticate", header::PROXY_AUTHENTICATE),
    ("proxy-authorization", header::PROXY_AUTHORIZATION),
    ("te", header::TE),
    ("transfer-encoding", header::TRANSFER_ENCODING),
    ("upgrade", header::UPGRADE),
    ("http2-settings", HeaderName::from_static("http2-settings")),
];
const CONNECTION_INDEX: usize = 0;
const TE_INDEX: usize = 5;

/// Where `name` (in any case) is in [`HOP_BY_HOP`].
fn hop_by_hop_index(name: &str) -> Option<usize> {
    HOP_BY_HOP
        .iter()
        .position(|(h, _)| h.len() == name.len() && h.eq_ignore_ascii_case(name))
}

/// Whether `name` starts with the prefix, comparing case-insensitively and
/// with `_`, `.` and `-` alike. `prefix` is already normalized.
pub fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.bytes().zip(prefix.bytes()).all(|(a, b)| {
            let a = match a {
                b'_' | b'.' => b'-',
                other => other.to_ascii_lowercase(),
            };
            a == b
        })
}

/// Removes every header whose name carries the prefix.
pub fn strip_prefixed(headers: &mut HeaderMap, prefix: &str) {
    if !headers.keys().any(|n| has_prefix(n.as_str(), prefix)) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| has_prefix(n.as_str(), prefix))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Takes our cookie out of the `Cookie` header(s); other cookies pass as they were.
pub fn strip_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let mut ours = false;
    for v in headers.get_all(header::COOKIE) {
        if v.to_str().map_or(true, |s| {
            s.split(';')
                .any(|p| p.trim().split('=').next().map(str::trim) == Some(cookie_name))
        }) {
            ours = true;
        }
    }
    if !ours {
        return;
    }
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.split('=').next().map(str::trim) != Some(cookie_name))
        .collect();
    let joined = kept.join("; ");
    headers.remove(header::COOKIE);
    if !joined.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(header::COOKIE, v);
        }
    }
}

/// Whether `name` (lower case, as [`HeaderName`] keeps it) is a header that
/// says who the client is or how it connected (`X-Forwarded-*`, `X-Real-IP`,
/// `Forwarded`), in any spelling a CGI gateway or framework would fold into
/// it: `X_Forwarded_For` and `X.Forwarded.Proto` are `X-Forwarded-For` and
/// `X-Forwarded-Proto` to a script that sees `HTTP_X_FORWARDED_*`.
pub fn is_forwarding(name: &str) -> bool {
    let first = name.as_bytes().first();
    (first == Some(&b'x') || first == Some(&b'f'))
        && (has_prefix(name, "x-forwarded-")
            || name.len() == "x-real-ip".len() && has_prefix(name, "x-real-ip")
            || name.len() == "forwarded".len() && has_prefix(name, "forwarded"))
}

/// Removes forwarding headers a client may have forged: every spelling but
/// the canonical one always, and the canonical ones too unless the peer is a
/// trusted proxy (whose chain [`set_forwarded`] then extends).
fn strip_forwarding(headers: &mut HeaderMap, peer_trusted: bool) {
    let forged = |n: &HeaderName| {
        let n = n.as_str();
        is_forwarding(n) && (!peer_trusted || n.bytes().any(|b| b == b'_' || b == b'.'))
    };
    if !headers.keys().any(forged) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(|n| forged(n)).cloned().collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// Fields that have no business in a trailer section (RFC 9110 section
/// 6.5.1): framing, routing, authentication and cookies. A backend could
/// take any of them for the header of the same name.
static NOT_IN_TRAILERS: [HeaderName; 8] = [
    header::HOST,
    header::COOKIE,
    header::AUTHORIZATION,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::TRAILER,
    header::EXPECT,
];

/// Cleans a request's trailers as its headers were cleaned: hop-by-hop
/// fields, every spelling of the session prefix and of the forwarding
/// headers, and the fields a trailer must not carry all go. What is left is
/// what a trailer is for (checksums, gRPC status and the like).
pub fn strip_trailers(trailers: &mut HeaderMap, prefix: &str) {
    let doomed: Vec<HeaderName> = trailers
        .keys()
        .filter(|n| {
            let s = n.as_str();
            hop_by_hop_index(s).is_some()
                || has_prefix(s, prefix)
                || is_forwarding(s)
                || NOT_IN_TRAILERS.contains(n)
        })
        .cloned()
        .collect();
    for name in doomed {
        trailers.remove(name);
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` (and `X-Real-IP`): appended to when
/// the peer is a trusted proxy, replaced otherwise. Forwarding headers the
/// client sent in other spellings, or at all when it is not a trusted proxy,
/// are removed first.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    conn: &ConnInfo,
    host: Option<&HeaderValue>,
) {
    // Prebuilt names: a &str name is parsed on every use.
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    strip_forwarding(headers, client.peer_trusted);
    let proto = HeaderValue::from_static(if client.https { "https" } else { "http" });
    if client.peer_trusted {
        let prior: Vec<String> = headers
            .get_all(XFF)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let mut chain = prior.join(", ");
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(conn.peer_header.to_str().unwrap_or("unknown"));
        if let Ok(v) = HeaderValue::from_str(&chain) {
            headers.insert(XFF, v);
        }
        if !headers.contains_key(XFP) {
            headers.insert(XFP, proto);
        }
        if !headers.contains_key(XFH) {
            if let Some(h) = host {
                headers.insert(XFH, h.clone());
            }
        }
        headers.insert(X_REAL_IP, ip_header(client.ip));
    } else {
        // Untrusted: the peer is the client.
        let peer_value = conn.peer_header.clone();
        headers.insert(X_REAL_IP, peer_value.clone());
        headers.insert(XFF, peer_value);
        headers.insert(XFP, proto);
        match host {
            Some(h) => {
                headers.insert(XFH, h.clone());
            }
            None => {
                headers.remove(XFH);
            }
        }
    }
}

/// The session facts injected into a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    /// Logged-in user.
    pub user: Option<&'a str>,
    /// Data, urlencoded.
    pub data: &'a str,
    /// Creation time, unix seconds.
    pub created: u64,
    /// End of the session if untouched, unix seconds.
    pub expires: u64,
    /// This request created the session.
    pub new: bool,
    /// The id, when `send_id` is on.
    pub id: Option<&'a SessionId>,
}

/// Adds the session headers.
pub fn inject(headers: &mut HeaderMap, cfg: &HeadersConfig, s: &Injection<'_>) {
    let n = &cfg.names;
    if let Some(user) = s.user {
        // from_bytes: user names may be UTF-8 (sent as obs-text octets).
        if let Ok(v) = HeaderValue::from_bytes(user.as_bytes()) {
            headers.insert(n.user.clone(), v);
        }
    }
    if let Ok(v) = HeaderValue::from_bytes(s.data.as_bytes()) {
        headers.insert(n.data.clone(), v);
    }
    headers.insert(n.created.clone(), HeaderValue::from(s.created));
    headers.insert(n.expires.clone(), HeaderValue::from(s.expires));
    if s.new {
        headers.insert(n.new.clone(), HeaderValue::from_static("1"));
    }
    if let Some(id) = s.id {
        if let Ok(v) = HeaderValue::from_str(&id.to_base64()) {
            headers.insert(n.id.clone(), v);
        }
    }
}

/// What the backend asked of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlHeaders {
    /// Keys to set (`Set: k=v&k2=v2`, may repeat).
    pub set: Vec<(String, String)>,
    /// Keys to delete (`Delete: k1, k2`).
    pub delete: Vec<String>,
    /// Log in as this user, with a new session id.
    pub login: Option<String>,
    /// Destroy the session.
    pub logout: bool,
    /// Problems found, for the log (a bad user name, say).
    pub rejected: Vec<String>,
}

impl ControlHeaders {
    /// Whether the backend asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty() && self.login.is_none() && !self.logout
    }
}

/// Longest user name accepted from `Login`.
pub const MAX_USER_LEN: usize = 256;

/// Reads the control headers from a backend response, then removes every
/// prefixed header, hop-by-hop headers, and any `Set-Cookie` of our cookie,
/// so nothing of the session machinery reaches the client.
pub fn take_control(
    headers: &mut HeaderMap,
    cfg: &HeadersConfig,
    cookie_name: &str,
) -> ControlHeaders {
    let mut control = ControlHeaders::default();
    remove_hop_by_hop(headers);
    // Most responses carry no control header at all: one pass over the
    // names says so, and the four lookups below are skipped.
    if headers
        .keys()
        .any(|k| has_prefix(k.as_str(), &cfg.match_prefix))
    {
        read_control(headers, cfg, &mut control);
        strip_prefixed(headers, &cfg.match_prefix);
    }
    if headers.contains_key(header::SET_COOKIE) {
        drop_their_session_cookie(headers, cookie_name);
    }
    control
}

fn read_control(headers: &HeaderMap, cfg: &HeadersConfig, control: &mut ControlHeaders) {
    let n = &cfg.names;
    for v in headers.get_all(&n.set) {
        for (k, val) in form_urlencoded::parse(v.as_bytes()) {
            if k.is_empty() {
                control.rejected.push("empty key in Set".into());
                continue;
            }
            control.set.push((k.into_owned(), val.into_owned()));
        }
    }
    for v in headers.get_all(&n.delete) {
        match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => control.delete.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
            ),
            Err(_) => control.rejected.push("Delete is not UTF-8".into()),
        }
    }
    if let Some(v) = headers.get(&n.login) {
        match std::str::from_utf8(v.as_bytes()).map(str::trim) {
            Ok(user) if valid_user(user) => control.login = Some(user.to_string()),
            _ => control.rejected.push("Login names no valid user".into()),
        }
    }
    if let Some(v) = headers.get(&n.logout) {
        let s = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
        control.logout = !matches!(s.as_str(), "" | "0" | "false" | "no" | "off");
    }
}

/// A backend never sets the session cookie: only the proxy does.
fn drop_their_session_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let theirs: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !sets_cookie(v, cookie_name))
        .cloned()
        .collect();
    if theirs.len() != headers.get_all(header::SET_COOKIE).iter().count() {
        headers.remove(header::SET_COOKIE);
        for v in theirs {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

fn sets_cookie(v: &HeaderValue, cookie_name: &str) -> bool {
    let s = String::from_utf8_lossy(v.as_bytes());
    s.split(';')
        .next()
        .and_then(|p| p.split('=').next())
        .map(str::trim)
        .is_some_and(|n| n.eq_ignore_ascii_case(cookie_name))
}

/// A user name the proxy accepts: 1 to 256 bytes, no control characters.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cfg() -> HeadersConfig {
        let c: Config = "[session]\nsecret_keys=[\"0123456789abcdef0123456789abcdef\"]\n[[route]]\npath=\"/\"\nupstream=\"http://127.0.0.1:1\"\n"
            .parse()
            .unwrap();
        c.headers
    }

    #[test]
    fn the_hop_by_hop_table_knows_every_name_in_any_case() {
        for name in [
            "connection",
            "Keep-Alive",
            "proxy-connection",
            "Proxy-Authenticate",
            "proxy-authorization",
            "tE",
            "transfer-encoding",
            "UPGRADE",
            "http2-settings",
        ] {
            assert!(hop_by_hop_index(name).is_some(), "{name}");
        }
        for name in ["host", "cookie", "trailer", "connection-x", "keep"] {
            assert!(hop_by_hop_index(name).is_none(), "{name}");
        }
        for (text, name) in &HOP_BY_HOP {
            assert_eq!(name.as_str(), *text);
        }
        assert_eq!(HOP_BY_HOP[CONNECTION_INDEX].1, header::CONNECTION);
        assert_eq!(HOP_BY_HOP[TE_INDEX].1, header::TE);
    }

    #[test]
    fn usual_connection_values_and_listed_names_all_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Keep-Alive, close".parse().unwrap());
        h.append("connection", "X-Private, TE".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-fine", "1".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-fine"));
    }

    #[test]
    fn prefix_matches_every_spelling() {
        for name in [
            "x-session-user",
            "x_session_user",
            "x.session.user",
            "x-session_user",
            "X_SESSION-DATA",
        ] {
            assert!(has_prefix(name, "x-session-"), "{name}");
        }
        assert!(!has_prefix("x-sessions", "x-session-"));
        assert!(!has_prefix("x-other", "x-session-"));
    }

    #[test]
    fn connection_named_headers_go_first() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-keep-me-not".parse().unwrap());
        h.insert("x-keep-me-not", "1".parse().unwrap());
        h.insert("x-fine", "1".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("http2-settings", "AAA".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-fine"));
    }

    #[test]
    fn te_trailers_and_trailer_pass() {
        let mut h = HeaderMap::new();
        h.insert("connection", "te".parse().unwrap());
        h.insert("te", "gzip, trailers;q=1".parse().unwrap());
        h.insert("trailer", "grpc-status".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
        assert_eq!(h.get("trailer").unwrap(), "grpc-status");
        let mut h = HeaderMap::new();
        h.insert("te", "gzip".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn our_cookie_is_removed_others_kept() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; sg_session=xyz; b=2".parse().unwrap());
        h.append("cookie", "sg_session=abc".parse().unwrap());
        strip_cookie(&mut h, "sg_session");
        assert_eq!(h.get("cookie").unwrap(), "a=1; b=2");
        let mut h = HeaderMap::new();
        h.append("cookie", "sg_session=xyz".parse().unwrap());
        strip_cookie(&mut h, "sg_session");
        assert!(h.get("cookie").is_none());
    }

    #[test]
    fn control_headers_are_read_and_removed() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.append("x-session-set", "a=1&b=two+words".parse().unwrap());
        h.append("x-session-set", "c=%26".parse().unwrap());
        h.insert("x-session-delete", "d, e".parse().unwrap());
        h.insert("x-session-login", "alice".parse().unwrap());
        h.insert("x-session-logout", "1".parse().unwrap());
        h.insert("x_session_other", "leak".parse().unwrap());
        h.append("set-cookie", "sg_session=forged; Path=/".parse().unwrap());
        h.append("set-cookie", "theirs=1".parse().unwrap());
        h.insert("content-type", "text/html".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(
            ctl.set,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "&".into())
            ]
        );
        assert_eq!(ctl.delete, vec!["d".to_string(), "e".to_string()]);
        assert_eq!(ctl.login.as_deref(), Some("alice"));
        assert!(ctl.logout);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h.get("set-cookie").unwrap(), "theirs=1");
    }

    #[test]
    fn bad_login_names_are_rejected() {
        assert!(!valid_user(""));
        assert!(!valid_user("a\u{7}b"));
        assert!(!valid_user(&"a".repeat(300)));
        assert!(valid_user("alice@example.org"));
    }
}
