//! Control headers: what a backend asks of the session in its response
//! (`X-Session-Set`, `-Delete`, `-Incr`, `-Login`, `-Groups`, `-Logout`,
//! `-Login-Failed`), read and then removed
//! with everything else of the session machinery, so none of it reaches the
//! client.

use http::header::{self, HeaderMap, HeaderValue};

use super::hop_by_hop::HopByHop;
use super::request_headers::{has_prefix, strip_prefixed};
use crate::config::HeadersConfig;
use crate::login::groups::parse_session_groups;
use crate::session::SessionChange;
use crate::session::data::MAX_COUNTER;
use crate::session::user::valid_user;

/// What the backend asked of the session, as read from its control headers.
pub type ControlHeaders = SessionChange;

/// Reads the control headers from a backend response, then removes every
/// prefixed header, hop-by-hop headers, and any `Set-Cookie` of our cookie,
/// so nothing of the session machinery reaches the client.
pub fn take_control(
    headers: &mut HeaderMap,
    cfg: &HeadersConfig,
    cookie_name: &str,
) -> ControlHeaders {
    let mut control = ControlHeaders::default();
    // One pass over the fields says what is there. Most responses carry
    // no control header and no cookie of ours, and their only hop-by-hop
    // field is `Connection`: nothing else is looked up.
    let mut hop = HopByHop::default();
    let (mut prefixed, mut set_cookie) = (false, false);
    for (name, value) in headers.iter() {
        let n = name.as_str();
        hop.note(n, value);
        prefixed |= has_prefix(n, &cfg.match_prefix);
        set_cookie |= *name == header::SET_COOKIE;
    }
    // First, as on the way in: a field `Connection` names is gone before
    // it could be read as a control header.
    hop.remove_from(headers);
    if prefixed {
        read_control(headers, cfg, &mut control);
        strip_prefixed(headers, &cfg.match_prefix);
    }
    if set_cookie {
        drop_their_session_cookie(headers, cookie_name);
    }
    control
}

/// The single-valued control headers of a response (the first of each).
#[derive(Default)]
struct Singles<'h> {
    login: Option<&'h HeaderValue>,
    groups: Option<&'h HeaderValue>,
    login_failed: Option<&'h HeaderValue>,
    logout: Option<&'h HeaderValue>,
}

/// Reads every control header in one pass over the response's headers
/// (in the order the map keeps a name's values, as `get_all` gives them),
/// rather than looking up each of the seven names.
fn read_control(headers: &HeaderMap, cfg: &HeadersConfig, control: &mut ControlHeaders) {
    let n = &cfg.names;
    let mut singles = Singles::default();
    for (name, v) in headers {
        if *name == n.set {
            read_set(v, control);
        } else if *name == n.delete {
            read_delete(v, control);
        } else if *name == n.incr {
            read_incr(v, control);
        } else if *name == n.login {
            singles.login.get_or_insert(v);
        } else if *name == n.groups {
            singles.groups.get_or_insert(v);
        } else if *name == n.login_failed {
            singles.login_failed.get_or_insert(v);
        } else if *name == n.logout {
            singles.logout.get_or_insert(v);
        }
    }
    read_singles(&singles, control);
}

fn read_set(v: &HeaderValue, control: &mut ControlHeaders) {
    for (k, val) in form_urlencoded::parse(v.as_bytes()) {
        if k.is_empty() {
            control.rejected.push("empty key in Set".into());
            continue;
        }
        control.set.push((k.into_owned(), val.into_owned()));
    }
}

fn read_delete(v: &HeaderValue, control: &mut ControlHeaders) {
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

fn read_incr(v: &HeaderValue, control: &mut ControlHeaders) {
    for (k, amount) in form_urlencoded::parse(v.as_bytes()) {
        match parse_amount(&amount) {
            Some(by) if !k.is_empty() => control.incr.push((k.into_owned(), by)),
            _ => control
                .rejected
                .push(format!("Incr {k}={amount}: not a key and a whole number")),
        }
    }
}

/// Login, Groups, Login-Failed and Logout, which depend on each other.
fn read_singles(singles: &Singles<'_>, control: &mut ControlHeaders) {
    if let Some(v) = singles.login {
        match std::str::from_utf8(v.as_bytes()).map(str::trim) {
            Ok(user) if valid_user(user) => control.login = Some(user.to_string()),
            _ => control.rejected.push("Login names no valid user".into()),
        }
    }
    if let Some(v) = singles.groups {
        let groups = std::str::from_utf8(v.as_bytes())
            .map_err(|_| "not UTF-8".to_string())
            .and_then(parse_session_groups);
        match groups {
            Ok(_) if control.login.is_none() => control
                .rejected
                .push("Groups without Login is ignored (groups are set at sign-in)".into()),
            Ok(groups) => control.groups = Some(groups),
            Err(e) => control.rejected.push(format!("Groups refused: {e}")),
        }
    }
    if let Some(v) = singles.login_failed {
        match std::str::from_utf8(v.as_bytes()).map(str::trim) {
            Ok(_) if control.login.is_some() => control
                .rejected
                .push("Login-Failed beside Login is ignored (the login happens)".into()),
            Ok(user) if valid_user(user) => control.login_failed = Some(user.to_string()),
            _ => control
                .rejected
                .push("Login-Failed names no valid user".into()),
        }
    }
    if let Some(v) = singles.logout {
        let s = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
        control.logout = !matches!(s.as_str(), "" | "0" | "false" | "no" | "off");
    }
}

/// An `Incr` amount: an optional sign and decimal digits, within the
/// counters' range ([`MAX_COUNTER`]).
fn parse_amount(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|n| n.abs() <= MAX_COUNTER)
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
    fn control_headers_are_read_and_removed() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.append("x-session-set", "a=1&b=two+words".parse().unwrap());
        h.append("x-session-set", "c=%26".parse().unwrap());
        h.insert("x-session-delete", "d, e".parse().unwrap());
        h.append("x-session-incr", "hits=1&stock=-2".parse().unwrap());
        h.append(
            "x-session-incr",
            "hits=%2B3&bad=x&big=99999999999999999".parse().unwrap(),
        );
        h.insert("x-session-login", "alice".parse().unwrap());
        h.insert("x-session-groups", "staff, admins ,staff".parse().unwrap());
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
        assert_eq!(
            ctl.incr,
            vec![("hits".into(), 1), ("stock".into(), -2), ("hits".into(), 3)]
        );
        assert_eq!(ctl.rejected.len(), 2, "{:?}", ctl.rejected);
        assert_eq!(ctl.login.as_deref(), Some("alice"));
        assert_eq!(ctl.groups.as_deref(), Some("staff,admins"));
        assert!(ctl.logout);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h.get("set-cookie").unwrap(), "theirs=1");
    }

    #[test]
    fn a_failed_login_names_a_valid_user_and_never_comes_with_a_login() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.insert("x-session-login-failed", " mallory ".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(ctl.login_failed.as_deref(), Some("mallory"));
        assert!(!ctl.is_empty());
        assert!(h.is_empty());

        let mut h = HeaderMap::new();
        h.insert("x-session-login-failed", "a\tb".parse().unwrap());
        h.insert("x_session_login_failed", "bob".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(ctl.login_failed, None);
        assert_eq!(ctl.rejected.len(), 1, "{:?}", ctl.rejected);
        assert!(h.is_empty(), "every spelling is stripped");

        let mut h = HeaderMap::new();
        h.insert("x-session-login", "alice".parse().unwrap());
        h.insert("x-session-login-failed", "alice".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(ctl.login.as_deref(), Some("alice"));
        assert_eq!(ctl.login_failed, None);
        assert_eq!(ctl.rejected.len(), 1);
    }

    #[test]
    fn groups_come_only_with_a_login_and_only_valid() {
        let c = cfg();
        let mut h = HeaderMap::new();
        h.insert("x-session-groups", "admins".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(ctl.groups, None);
        assert_eq!(ctl.rejected.len(), 1);
        assert!(ctl.is_empty());
        let mut h = HeaderMap::new();
        h.insert("x-session-login", "bob".parse().unwrap());
        h.insert("x-session-groups", "ok, not ok".parse().unwrap());
        let ctl = take_control(&mut h, &c, "sg_session");
        assert_eq!(ctl.login.as_deref(), Some("bob"));
        assert_eq!(ctl.groups, None);
        assert_eq!(ctl.rejected.len(), 1);
        assert!(h.is_empty());
    }
}
