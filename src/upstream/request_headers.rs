//! Request headers on the way to the backend: strip, then set.
//!
//! Order matters: hop-by-hop headers (and every header a client names in
//! `Connection`) go first ([`super::hop_by_hop`]), then every header carrying
//! our prefix in any spelling, then our own cookie, then forged forwarding
//! headers; only then are the forwarding and session headers added. A client
//! can therefore neither forge a session header nor make us drop one we add.
//! Request trailers are cleaned by the same rules as they pass
//! ([`super::request_body`]).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::hop_by_hop::{HopByHop, hop_by_hop_index};
use super::signed_assertion::AssertionSigner;
use crate::config::HeadersConfig;
use crate::forwarded::{ClientInfo, ConnInfo, ip_header};
use crate::session::SessionId;
use crate::session::cookie::cookie_pairs;

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
    // One name at a time: there are seldom more than a few, and no list
    // of them is allocated.
    while let Some(name) = headers
        .keys()
        .find(|n| has_prefix(n.as_str(), prefix))
        .cloned()
    {
        headers.remove(name);
    }
}

/// Takes our cookie out of the `Cookie` header(s); other cookies pass as they were.
///
/// Split as bytes, as the session lookup splits them
/// ([`crate::session::cookie::cookie_values`]): a pair is ours when its name,
/// trimmed, is ours (a pair without `=` is all name). A value with bytes
/// beyond ASCII goes whole when ours goes (fail closed: what is forwarded
/// is visible ASCII).
pub fn strip_cookie(headers: &mut HeaderMap, cookie_name: &str) {
    let name = cookie_name.as_bytes();
    let mut ours = false;
    let mut only_ours = true;
    for v in headers.get_all(header::COOKIE) {
        if !v.as_bytes().is_ascii() {
            ours = true;
            continue;
        }
        for p in cookie_pairs(v.as_bytes()) {
            let p = p.trim_ascii();
            let mine = cookie_pair_name(p) == name;
            ours |= mine;
            only_ours &= mine || p.is_empty();
        }
    }
    if !ours {
        return;
    }
    // A browser with no other cookie for the site sends ours alone: the
    // header goes without a value built to replace it.
    if only_ours {
        headers.remove(header::COOKIE);
        return;
    }
    let mut kept = Vec::new();
    for v in headers
        .get_all(header::COOKIE)
        .iter()
        .filter(|v| v.as_bytes().is_ascii())
    {
        for p in cookie_pairs(v.as_bytes()).map(<[u8]>::trim_ascii) {
            if !p.is_empty() && cookie_pair_name(p) != name {
                if !kept.is_empty() {
                    kept.extend_from_slice(b"; ");
                }
                kept.extend_from_slice(p);
            }
        }
    }
    headers.remove(header::COOKIE);
    // The bytes came from header values, so they make one; an empty
    // `Cookie` is never sent.
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_bytes(&kept)
    {
        headers.insert(header::COOKIE, v);
    }
}

/// The name of one `name=value` pair of a `Cookie` header (already
/// trimmed), trimmed.
fn cookie_pair_name(pair: &[u8]) -> &[u8] {
    let name = match memchr::memchr(b'=', pair) {
        Some(eq) => &pair[..eq],
        None => pair,
    };
    name.trim_ascii()
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

/// Whether `name` is a forwarding header a client may have forged: every
/// spelling but the canonical one always, and the canonical ones too
/// unless the peer is a trusted proxy (whose chain [`set_forwarded`] then
/// extends).
fn forged(name: &str, peer_trusted: bool) -> bool {
    is_forwarding(name) && (!peer_trusted || name.bytes().any(|b| b == b'_' || b == b'.'))
}

/// Removes the forwarding headers a client may have forged ([`forged`]).
fn strip_forwarding(headers: &mut HeaderMap, peer_trusted: bool) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| forged(n.as_str(), peer_trusted))
        .cloned()
        .collect();
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
/// the peer is a trusted proxy, replaced otherwise. [`rewrite`] removes the
/// forged ones first.
fn set_forwarded(
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

/// Everything the request headers are rewritten with.
pub struct Rewrite<'a> {
    /// The `[headers]` settings (prefix and names).
    pub config: &'a HeadersConfig,
    /// Our cookie's name, taken out of `Cookie`.
    pub cookie_name: &'a str,
    /// Who the client is.
    pub client: &'a ClientInfo,
    /// The connection it came on.
    pub conn: &'a ConnInfo,
    /// The host the request is for.
    pub host: Option<&'a HeaderValue>,
    /// Who the backend is told the request comes from.
    pub subject: Subject<'a>,
    /// A request to the application's login page whose visitor's session
    /// has ended: `{prefix}Expired: 1` (see [`crate::login::backend_page`]).
    pub expired: bool,
    /// With `headers.sign_key`: the signer and the request line it signs.
    pub signing: Option<Signing<'a>>,
}

/// What `{prefix}Signature` is made with, besides the session headers
/// (see [`super::signed_assertion`]).
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    /// The signer of the config in force.
    pub signer: &'a AssertionSigner,
    /// The request method.
    pub method: &'a str,
    /// The normalised path and query, as forwarded.
    pub target: &'a str,
    /// Now, unix seconds.
    pub now: u64,
}

/// What the backend is told of who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Nothing: the request has no session.
    Nobody,
    /// The session's facts.
    Session(Injection<'a>),
    /// Only the user and their groups: HTTP Basic credentials were
    /// checked, and there is no session to tell of (no data, creation or
    /// expiry time, no id).
    User {
        /// The user.
        user: &'a str,
        /// Their groups, joined by commas.
        groups: Option<&'a str>,
    },
}

/// Rewrites the headers of a request for the backend: strip, then set.
pub fn rewrite(headers: &mut HeaderMap, r: &Rewrite<'_>) {
    let prefix = &r.config.match_prefix;
    let (hop, present) = Present::scan(headers, prefix, r.client.peer_trusted);
    let names_others = hop.names_others();
    hop.remove_from(headers);
    if present.prefixed {
        strip_prefixed(headers, prefix);
    }
    if present.cookie {
        strip_cookie(headers, r.cookie_name);
    }
    if present.forged {
        strip_forwarding(headers, r.client.peer_trusted);
    }
    set_forwarded(headers, r.client, r.conn, r.host);
    // A field `Connection` named may have been `Host`.
    let has_host = present.host && (!names_others || headers.contains_key(header::HOST));
    if !has_host {
        if let Some(h) = r.host {
            headers.insert(header::HOST, h.clone());
        }
    }
    match &r.subject {
        Subject::Nobody => {}
        Subject::Session(session) => inject(headers, r.config, session),
        Subject::User { user, groups } => inject_user(headers, r.config, user, *groups),
    }
    if r.expired {
        headers.insert(
            r.config.names.expired.clone(),
            HeaderValue::from_static("1"),
        );
    }
    // Last: it signs the values just set, exactly as they go.
    if let Some(s) = &r.signing {
        s.signer.sign(headers, s.method, s.target, s.now);
    }
}

/// What one pass over a request's fields found that the rewrite acts on:
/// a stage whose fields are absent costs no lookup and no further pass.
/// The hop-by-hop fields come apart ([`HopByHop`]), as they go first.
#[derive(Default)]
struct Present {
    /// A field with the session prefix, in any spelling.
    prefixed: bool,
    /// A forwarding header the client may have forged ([`forged`]).
    forged: bool,
    /// A `Cookie` header.
    cookie: bool,
    /// A `Host` header none of the above removes.
    host: bool,
}

impl Present {
    fn scan(headers: &HeaderMap, prefix: &str, peer_trusted: bool) -> (HopByHop, Present) {
        let mut hop = HopByHop::default();
        let mut present = Present::default();
        for (name, value) in headers {
            let n = name.as_str();
            hop.note(n, value);
            let prefixed = has_prefix(n, prefix);
            let forged = forged(n, peer_trusted);
            present.prefixed |= prefixed;
            present.forged |= forged;
            if !prefixed && !forged {
                present.cookie |= *name == header::COOKIE;
                present.host |= *name == header::HOST;
            }
        }
        (hop, present)
    }
}

/// Adds the user's headers: who, and in which groups.
fn inject_user(headers: &mut HeaderMap, cfg: &HeadersConfig, user: &str, groups: Option<&str>) {
    // from_bytes: user names may be UTF-8 (sent as obs-text octets).
    if let Ok(v) = HeaderValue::from_bytes(user.as_bytes()) {
        headers.insert(cfg.names.user.clone(), v);
    }
    if let Some(v) = groups.and_then(|g| HeaderValue::from_bytes(g.as_bytes()).ok()) {
        headers.insert(cfg.names.groups.clone(), v);
    }
}

/// The session facts injected into a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    /// Logged-in user.
    pub user: Option<&'a str>,
    /// The user's groups, joined by commas.
    pub groups: Option<&'a str>,
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
        inject_user(headers, cfg, user, s.groups);
    }
    if let Ok(v) = HeaderValue::from_bytes(s.data.as_bytes()) {
        headers.insert(n.data.clone(), v);
    }
    headers.insert(n.created.clone(), number(Number::Created, s.created));
    headers.insert(n.expires.clone(), number(Number::Expires, s.expires));
    if s.new {
        headers.insert(n.new.clone(), HeaderValue::from_static("1"));
    }
    if let Some(id) = s.id {
        if let Ok(v) = HeaderValue::from_str(&id.to_base64()) {
            headers.insert(n.id.clone(), v);
        }
    }
}

/// The numbers [`inject`] sends, each with a value of its own remembered.
#[derive(Clone, Copy)]
enum Number {
    Created = 0,
    Expires = 1,
}

/// `n` as a header value. The last value of each [`Number`] is kept per
/// thread: a session's requests send the same times until its idle deadline
/// moves, and a kept value is shared (a reference count) rather than
/// formatted and allocated again.
fn number(which: Number, n: u64) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<[Option<(u64, HeaderValue)>; 2]> =
            const { std::cell::RefCell::new([None, None]) };
    }
    LAST.with_borrow_mut(|last| match &last[which as usize] {
        Some((kept, v)) if *kept == n => v.clone(),
        _ => {
            let v = HeaderValue::from(n);
            last[which as usize] = Some((n, v.clone()));
            v
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn spellings_of_ours_go_and_a_value_beyond_ascii_goes_whole() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            "a=1; sg_session =xyz;sg_session; b".parse().unwrap(),
        );
        strip_cookie(&mut h, "sg_session");
        assert_eq!(h.get("cookie").unwrap(), "a=1; b");
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append(
            "cookie",
            HeaderValue::from_bytes(b"c=\xe9; sg_session=x").unwrap(),
        );
        strip_cookie(&mut h, "sg_session");
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1"]);
    }
}
