//! The form interrupted by a sign-in, kept and sent on once after it.
//!
//! A `POST` (or `PUT`, `PATCH`) of a form to a `login` route without a
//! signed-in session is kept in the session store ([`KeptRequest`], under
//! a fresh random id, for `login.replay_ttl`), and the browser gets a
//! one-time cookie ([`Ticket`]) naming it and the address it was sent to,
//! with the usual redirect to the login page. When that browser, signed in
//! now, comes back to the same address with a `GET` (the login's `next`),
//! the kept request is taken from the store (once: read and deleted in one
//! step) and sent to the backend in the `GET`'s place, through the
//! ordinary stages: the new session's headers, `REMOTE_USER` and the
//! signature are those of any request.
//!
//! Why so: the browser, not the proxy, makes the request that carries the
//! backend's answer back, so cookies the backend sets and its redirects
//! land where they would have. The cookie names the address (a digest of
//! it) so that a visit elsewhere leaves the kept request alone, and takes
//! nothing from the store. Over HTTPS the cookie is `__Host-` prefixed, so
//! a sibling subdomain cannot plant one (cookie tossing); over plain HTTP
//! it can (see the docs).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use sha2::{Digest as _, Sha256};

use crate::session::SessionId;
use crate::session::cookie::cookie_values;

/// The one-time cookie's name over HTTPS: `__Host-`, so that only this
/// host, over HTTPS, can set it.
pub const COOKIE_SECURE: &str = "__Host-sg_kept";
/// The one-time cookie's name where it cannot be Secure (plain HTTP).
pub const COOKIE_PLAIN: &str = "sg_kept";

/// The encoding's version byte; a kept request of another version is
/// dropped (nothing to replay), never misread.
const VERSION: u8 = 1;

/// Bytes of the address's SHA-256 kept in the cookie: enough that a visit
/// to another address never matches by chance.
const TARGET_TAG_BYTES: usize = 12;

/// What the login page tells a visitor about the form they sent (the
/// `replay` query parameter of the login redirect; the `{prefix}Replay`
/// header to an application's own login page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The form is kept, and will be sent after the sign-in.
    Kept,
    /// The form was not kept (too large, or no room): send it again.
    TooLarge,
}

impl Notice {
    /// The query parameter's (and the header's) value.
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Kept => "kept",
            Notice::TooLarge => "too-large",
        }
    }

    /// The notice a login page's query names, if any: `kept` only when the
    /// browser holds the one-time cookie (a link cannot claim a form).
    pub fn from_query(query: Option<&str>, headers: &HeaderMap, secure: bool) -> Option<Self> {
        let query = query?;
        if !query.contains("replay=") {
            return None;
        }
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "replay")
            .map(|(_, v)| v)?;
        match &*value {
            "kept" if Ticket::find(headers, secure).is_some() => Some(Notice::Kept),
            "too-large" => Some(Notice::TooLarge),
            _ => None,
        }
    }

    /// The sentence the built-in login page shows.
    pub fn message(self) -> &'static str {
        match self {
            Notice::Kept => "The form you sent will be sent again after you sign in.",
            Notice::TooLarge => {
                "The form you sent could not be kept while you sign in: please send it again afterwards."
            }
        }
    }
}

/// Whether a request is one to keep: a state-changing method carrying a
/// form a browser sends without JavaScript.
pub fn keepable(method: &Method, headers: &HeaderMap) -> bool {
    let changes = *method == Method::POST || *method == Method::PUT || *method == Method::PATCH;
    changes && headers.get(header::CONTENT_TYPE).is_some_and(is_form)
}

/// `application/x-www-form-urlencoded` or `multipart/form-data`.
fn is_form(content_type: &HeaderValue) -> bool {
    let Ok(value) = content_type.to_str() else {
        return false;
    };
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        || media.eq_ignore_ascii_case("multipart/form-data")
}

/// The body, if it is at most `max` bytes; `None` when it is larger (its
/// `Content-Length` says so, or reading passes the limit) or cut off.
pub async fn read_body<B>(headers: &HeaderMap, body: B, max: usize) -> Option<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return None;
    }
    Limited::new(body, max)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// A request kept across a sign-in: what the backend needs of it, and no
/// more (no cookies, no credentials: the replay carries the new session's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRequest {
    /// `POST`, `PUT` or `PATCH`.
    pub method: Method,
    /// The path and query it was sent to (normalised).
    pub target: String,
    /// Its `Content-Type` (with a multipart body's boundary).
    pub content_type: HeaderValue,
    /// Its body.
    pub body: Bytes,
}

/// Why stored bytes are no kept request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Another version's encoding.
    #[error("a kept request of version {0}, not {VERSION}")]
    Version(u8),
    /// Cut short, or a field that is not what it must be.
    #[error("a malformed kept request")]
    Malformed,
}

impl KeptRequest {
    /// The stored form: a version byte, then method, target and content
    /// type each with a 4-byte big-endian length, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let fields = [
            self.method.as_str().as_bytes(),
            self.target.as_bytes(),
            self.content_type.as_bytes(),
        ];
        let len = 1 + fields.iter().map(|f| 4 + f.len()).sum::<usize>() + self.body.len();
        let mut out = Vec::with_capacity(len);
        out.push(VERSION);
        for field in fields {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads what [`KeptRequest::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&version, mut rest) = bytes.split_first().ok_or(DecodeError::Malformed)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut field = || -> Result<&[u8], DecodeError> {
            let (len, tail) = rest
                .split_first_chunk::<4>()
                .ok_or(DecodeError::Malformed)?;
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(DecodeError::Malformed);
            }
            let (value, tail) = tail.split_at(len);
            rest = tail;
            Ok(value)
        };
        let method = Method::from_bytes(field()?).map_err(|_| DecodeError::Malformed)?;
        let target = std::str::from_utf8(field()?)
            .map_err(|_| DecodeError::Malformed)?
            .to_owned();
        let content_type = HeaderValue::from_bytes(field()?).map_err(|_| DecodeError::Malformed)?;
        let body = Bytes::copy_from_slice(rest);
        let kept = KeptRequest {
            method,
            target,
            content_type,
            body,
        };
        let methods = [Method::POST, Method::PUT, Method::PATCH];
        if !methods.contains(&kept.method) || !kept.target.starts_with('/') {
            return Err(DecodeError::Malformed);
        }
        Ok(kept)
    }
}

/// The one-time cookie's content: the kept request's id, and a digest of
/// the address it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The kept request's id in the store.
    pub id: SessionId,
    tag: String,
}

impl Ticket {
    /// A ticket for a request kept under `id`, sent to `target`.
    pub fn new(id: SessionId, target: &str) -> Self {
        Ticket {
            id,
            tag: target_tag(target),
        }
    }

    /// The ticket the request's cookie holds, if any (the `__Host-` one
    /// when `secure`, the plain one otherwise).
    pub fn find(headers: &HeaderMap, secure: bool) -> Option<Self> {
        let name = cookie_name(secure);
        // Asked on every signed-in GET of a login route, and almost always
        // absent: a plain substring search (UTF-8's ASCII fast path, then
        // a vectorised search) first, the cookie parse only on a hit.
        let mentioned = headers
            .get_all(header::COOKIE)
            .iter()
            .any(|v| std::str::from_utf8(v.as_bytes()).is_ok_and(|text| text.contains(name)));
        if !mentioned {
            return None;
        }
        cookie_values(headers, name).find_map(Ticket::parse)
    }

    fn parse(value: &str) -> Option<Self> {
        let (id, tag) = value.split_once('.')?;
        let id = SessionId::from_base64(id)?;
        (tag.len() == 16
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Ticket {
            id,
            tag: tag.to_owned(),
        })
    }

    /// Whether the ticket waits for `target` (a path and query).
    pub fn is_for(&self, target: &str) -> bool {
        self.tag == target_tag(target)
    }

    /// `Set-Cookie` for the ticket, for `ttl` seconds.
    pub fn set_cookie(&self, secure: bool, ttl: u64) -> HeaderValue {
        let value = format!(
            "{}={}.{}{}; Max-Age={ttl}",
            cookie_name(secure),
            self.id.to_base64(),
            self.tag,
            attributes(secure)
        );
        // Base64url, digits and fixed attributes: always a valid value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// `Set-Cookie` that removes the one-time cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let value = format!(
        "{}={}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        cookie_name(secure),
        attributes(secure)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_name(secure: bool) -> &'static str {
    if secure { COOKIE_SECURE } else { COOKIE_PLAIN }
}

/// Path=/ and no Domain, as `__Host-` requires; Lax, so that the
/// top-level navigation back from the login page carries it.
fn attributes(secure: bool) -> &'static str {
    if secure {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

/// Base64url of the first bytes of the address's SHA-256.
fn target_tag(target: &str) -> String {
    let digest = Sha256::digest(target.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..TARGET_TAG_BYTES])
}

/// The login page's address with `next` (the kept request's address),
/// `expired=1` when the session ended by expiry, and the notice.
pub fn login_url(login_page: &str, target: &str, expired: bool, notice: Notice) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("next", target);
    if expired {
        q.append_pair("expired", "1");
    }
    q.append_pair("replay", notice.as_str());
    let sep = if login_page.contains('?') { '&' } else { '?' };
    format!("{login_page}{sep}{}", q.finish())
}

/// The status of the redirect to the login page: `303`, so that the
/// browser follows it with a `GET` whatever the method it was sent.
pub const REDIRECT: StatusCode = StatusCode::SEE_OTHER;

/// What came of kept requests, since the process started:
/// `sessiongate_replays_total{outcome}`.
#[derive(Debug, Default)]
pub struct ReplayCounters {
    kept: AtomicU64,
    not_kept: AtomicU64,
    replayed: AtomicU64,
    missing: AtomicU64,
}

/// One outcome of [`ReplayCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A form kept.
    Kept,
    /// A form not kept: over the limit, or the store had no room.
    NotKept,
    /// A kept form sent on to the backend.
    Replayed,
    /// A cookie came back for a kept form no longer there (its time
    /// over, already taken, unreadable, or the store failed).
    Missing,
}

impl ReplayCounters {
    /// Counts one `outcome`.
    pub fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Kept => &self.kept,
            Outcome::NotKept => &self.not_kept,
            Outcome::Replayed => &self.replayed,
            Outcome::Missing => &self.missing,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every outcome's label and count.
    pub fn all(&self) -> [(&'static str, u64); 4] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("kept", get(&self.kept)),
            ("not_kept", get(&self.not_kept)),
            ("replayed", get(&self.replayed)),
            ("missing", get(&self.missing)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> KeptRequest {
        KeptRequest {
            method: Method::POST,
            target: "/app/save.cgi?id=7".into(),
            content_type: HeaderValue::from_static("multipart/form-data; boundary=xyz"),
            body: Bytes::from_static(b"--xyz\r\n\0binary\xff--xyz--\r\n"),
        }
    }

    #[test]
    fn a_kept_request_reads_back_as_written() {
        let k = kept();
        assert_eq!(KeptRequest::decode(&k.encode()), Ok(k.clone()));
        let empty = KeptRequest {
            body: Bytes::new(),
            ..k
        };
        assert_eq!(KeptRequest::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn damaged_or_foreign_bytes_are_nothing_to_replay() {
        let bytes = kept().encode();
        assert_eq!(KeptRequest::decode(&[]), Err(DecodeError::Malformed));
        assert_eq!(KeptRequest::decode(&[2, 0]), Err(DecodeError::Version(2)));
        for cut in 1..30 {
            assert!(KeptRequest::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let get = KeptRequest {
            method: Method::GET,
            ..kept()
        };
        assert_eq!(
            KeptRequest::decode(&get.encode()),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn only_forms_sent_to_change_something_are_kept() {
        let mut h = HeaderMap::new();
        assert!(!keepable(&Method::POST, &h));
        for (ct, keep) in [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded; charset=UTF-8", true),
            ("multipart/form-data; boundary=a", true),
            ("application/json", false),
            ("text/plain", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(keepable(&Method::POST, &h), keep, "{ct}");
            assert_eq!(keepable(&Method::PATCH, &h), keep, "{ct}");
        }
        assert!(!keepable(&Method::GET, &h));
        assert!(!keepable(&Method::DELETE, &h));
    }

    #[test]
    fn the_ticket_names_its_address_and_round_trips_through_the_cookie() {
        let id = SessionId::generate();
        let ticket = Ticket::new(id, "/a/form?x=1");
        assert!(ticket.is_for("/a/form?x=1"));
        assert!(!ticket.is_for("/a/form"));
        assert!(!ticket.is_for("/a/other?x=1"));
        for secure in [true, false] {
            let set = ticket.set_cookie(secure, 600);
            let set = set.to_str().unwrap();
            assert!(set.ends_with("; Max-Age=600"), "{set}");
            assert!(set.contains("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
            assert_eq!(set.starts_with("__Host-"), secure, "{set}");
            assert_eq!(set.contains("; Secure"), secure, "{set}");
            let pair = set.split(';').next().unwrap();
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("a=b; {pair}")).unwrap(),
            );
            assert_eq!(Ticket::find(&h, secure), Some(ticket.clone()));
            // Over HTTPS, only the __Host- cookie counts.
            assert_eq!(Ticket::find(&h, !secure), None);
        }
        let clear = clear_cookie(true);
        assert!(
            clear
                .to_str()
                .unwrap()
                .starts_with("__Host-sg_kept=; Path=/;")
        );
    }

    #[test]
    fn a_kept_notice_needs_the_cookie_and_a_too_large_one_does_not() {
        let mut h = HeaderMap::new();
        let q = Some("next=%2Fx&replay=kept");
        assert_eq!(Notice::from_query(q, &h, false), None);
        let ticket = Ticket::new(SessionId::generate(), "/x");
        let set = ticket.set_cookie(false, 60);
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        assert_eq!(Notice::from_query(q, &h, false), Some(Notice::Kept));
        assert_eq!(
            Notice::from_query(Some("replay=too-large"), &HeaderMap::new(), true),
            Some(Notice::TooLarge)
        );
        assert_eq!(Notice::from_query(Some("replay=other"), &h, false), None);
        assert_eq!(
            login_url("/login.cgi", "/a?b=c", false, Notice::Kept),
            "/login.cgi?next=%2Fa%3Fb%3Dc&replay=kept"
        );
        assert_eq!(
            login_url("/l?x=1", "/", true, Notice::TooLarge),
            "/l?x=1&next=%2F&expired=1&replay=too-large"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_read_into_memory() {
        use http_body_util::Full;
        let body = || Full::new(Bytes::from_static(b"0123456789"));
        let mut h = HeaderMap::new();
        assert_eq!(
            read_body(&h, body(), 10).await.as_deref(),
            Some(&b"0123456789"[..])
        );
        assert_eq!(read_body(&h, body(), 9).await, None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(read_body(&h, body(), 10).await, None);
    }
}
