//! What travels between the store and Redis: a data change and a
//! session's limits on their way into a script's arguments, and the
//! session hash's fields and the scripts' replies on their way back into a
//! [`SessionRecord`] or a typed [`StoreError`].
//!
//! Anything Redis answers is parsed without panicking: a reply that is not
//! what the scripts return is [`StoreError::Corrupt`].

use std::net::IpAddr;
use std::sync::Arc;

use redis::{ScriptInvocation, Value};

use crate::session::data::{DataChange, MAX_COUNTER};
use crate::session::store::{Lookup, Policy, SessionRecord, StoreError};

/// The fields of a session key that hold a session, in the order
/// [`record_from_fields`] reads them: created, last_seen, data, user, ip,
/// groups, remember, browser.
pub(super) const RECORD_FIELDS: [&str; 8] = ["c", "s", "d", "u", "i", "g", "k", "b"];
/// The field of a session key that holds the mark of a moved id: the time
/// of the login that moved it.
pub(super) const MARK_FIELD: &str = "r";

/// Appends the arguments most scripts open with: now, idle_timeout,
/// max_lifetime, max_data_bytes.
pub(super) fn push_limits(inv: &mut ScriptInvocation<'_>, now: u64, policy: &Policy) {
    inv.arg(now)
        .arg(policy.idle_timeout)
        .arg(policy.max_lifetime)
        .arg(policy.max_data_bytes);
}

/// Appends a data change to a script's arguments: the number of keys to
/// delete, those keys, the number of keys to set, then key, value pairs,
/// the number of keys to add to, then key, amount pairs; every key and
/// value urlencoded as the stored data is.
pub(super) fn push_change(inv: &mut ScriptInvocation<'_>, change: &DataChange) {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    inv.arg(change.delete.len());
    for k in &change.delete {
        inv.arg(enc(k));
    }
    inv.arg(change.set.len());
    for (k, v) in &change.set {
        inv.arg(enc(k)).arg(enc(v));
    }
    inv.arg(change.incr.len());
    for (k, by) in &change.incr {
        inv.arg(enc(k)).arg(by.clamp(&-MAX_COUNTER, &MAX_COUNTER));
    }
}

/// A client IP as a script argument: empty for none.
pub(super) fn ip_arg(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// Reads the load script's reply: nothing, `{"rotated"}`, or a record.
pub(super) fn parse_lookup(reply: Value) -> Result<Lookup, StoreError> {
    match &reply {
        Value::Nil => Ok(Lookup::Absent),
        Value::Array(fields)
            if fields.len() == 1 && text(fields[0].clone()).as_deref() == Some("rotated") =>
        {
            Ok(Lookup::Rotated)
        }
        _ => parse_record(reply).map(Lookup::Live),
    }
}

/// Reads `{status, ...}` replies: `{"ok", created, last_seen, data, user|nil,
/// ip|nil, groups|nil, remember|nil, browser|nil}`, `{"gone"}` or `{"too_large", size}`.
pub(super) fn parse_record(reply: Value) -> Result<SessionRecord, StoreError> {
    complete_record(status_fields(reply)?)
}

/// Reads the reply of step 2 of a cluster login: `{"ok", data, ip|nil}`.
pub(super) fn parse_taken(reply: Value) -> Result<(String, Option<String>), StoreError> {
    let mut it = status_fields(reply)?.into_iter();
    let data = it.next().and_then(text).unwrap_or_default();
    Ok((data, it.next().and_then(text)))
}

/// A record from fields that must hold one, read as [`record_from_fields`]
/// reads them.
pub(super) fn complete_record(fields: Vec<Value>) -> Result<SessionRecord, StoreError> {
    record_from_fields(fields)?.ok_or_else(|| malformed("created"))
}

/// A record from the values of [`RECORD_FIELDS`], in that order; `None`
/// when the session does not exist.
pub(super) fn record_from_fields(fields: Vec<Value>) -> Result<Option<SessionRecord>, StoreError> {
    let mut it = fields.into_iter();
    let (Some(created), Some(last_seen)) = (it.next().and_then(number), it.next().and_then(number))
    else {
        return Ok(None);
    };
    let data = it.next().and_then(text).unwrap_or_default();
    let user = it.next().and_then(text).map(Arc::from);
    let ip = match it.next().and_then(text) {
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| malformed("ip"))?),
        None => None,
    };
    let groups = it.next().and_then(text).map(Arc::from);
    let remember = match it.next() {
        None | Some(Value::Nil) => None,
        Some(v) => Some(number(v).ok_or_else(|| malformed("remember"))?),
    };
    let browser = it
        .next()
        .and_then(text)
        .map(|b| Arc::from(crate::session::browser::capped(&b)));
    Ok(Some(SessionRecord {
        created,
        last_seen,
        user,
        data: Arc::from(data),
        ip,
        groups,
        remember,
        browser,
    }))
}

/// The fields after an `"ok"` status, or the error the status stands for.
fn status_fields(reply: Value) -> Result<Vec<Value>, StoreError> {
    let Value::Array(mut fields) = reply else {
        return Err(malformed("reply"));
    };
    if fields.is_empty() {
        return Err(malformed("reply"));
    }
    let status = text(fields.remove(0)).unwrap_or_default();
    match status.as_str() {
        "ok" => Ok(fields),
        "gone" => Err(StoreError::Gone),
        "too_large" => {
            let mut it = fields.into_iter().map(|v| {
                number(v).map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
            });
            Err(StoreError::TooLarge {
                size: it.next().unwrap_or(usize::MAX),
                limit: it.next().unwrap_or(0),
            })
        }
        _ => Err(malformed("status")),
    }
}

/// The error for a reply whose `what` is not what the scripts return.
fn malformed(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} in a Redis reply"))
}

/// A reply value as text, if it is a string.
fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// A reply value as a whole number, from an integer or its text.
pub(super) fn number(v: Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(n).ok(),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_or_fail_typed() {
        let ok = Value::Array(vec![
            Value::BulkString(b"ok".to_vec()),
            Value::Int(10),
            Value::BulkString(b"12".to_vec()),
            Value::BulkString(b"a=1".to_vec()),
            Value::Nil,
            Value::BulkString(b"192.0.2.1".to_vec()),
        ]);
        let r = parse_record(ok).unwrap();
        assert_eq!((r.created, r.last_seen, &*r.data), (10, 12, "a=1"));
        assert_eq!(r.user, None);
        assert_eq!(r.ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            parse_record(Value::Array(vec![Value::SimpleString("gone".into())])),
            Err(StoreError::Gone)
        );
        assert!(matches!(
            parse_record(Value::Array(vec![
                Value::SimpleString("too_large".into()),
                Value::Int(5000)
            ])),
            Err(StoreError::TooLarge { size: 5000, .. })
        ));
        assert_eq!(parse_lookup(Value::Nil), Ok(Lookup::Absent));
        assert_eq!(
            parse_lookup(Value::Array(vec![Value::BulkString(b"rotated".to_vec())])),
            Ok(Lookup::Rotated)
        );
        assert!(matches!(
            parse_lookup(Value::Array(vec![
                Value::SimpleString("ok".into()),
                Value::Int(1),
                Value::Int(2),
                Value::Nil,
                Value::Nil,
                Value::Nil,
            ])),
            Ok(Lookup::Live(_))
        ));
        for junk in [
            Value::Nil,
            Value::Int(3),
            Value::Array(vec![]),
            Value::Array(vec![Value::SimpleString("what".into())]),
            Value::Array(vec![Value::SimpleString("ok".into()), Value::Nil]),
        ] {
            assert!(matches!(parse_record(junk), Err(StoreError::Corrupt(_))));
        }
    }
}
