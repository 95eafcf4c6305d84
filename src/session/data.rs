//! Session data: an ordered map of string keys and values, kept in its
//! `application/x-www-form-urlencoded` form (`cart=3&lang=en`).
//!
//! The encoded form is what the backend receives in the `Data` header, so
//! keeping it encoded makes the common case (a request that only reads the
//! session) free of any encoding work; only updates decode and re-encode.

/// Encodes pairs as `k=v&k2=v2`.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Decodes `k=v&k2=v2` into pairs, keeping order; later duplicates win.
pub fn decode(encoded: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(encoded.as_bytes()) {
        if k.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v.into_owned(),
            None => out.push((k.into_owned(), v.into_owned())),
        }
    }
    out
}

/// The largest counter magnitude: integers up to 2^53 - 1 are exact in the
/// Redis store's Lua (whose numbers are doubles), so both stores stop there.
pub const MAX_COUNTER: i64 = (1 << 53) - 1;

/// A change to a session's data, from the backend's control headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataChange {
    /// Keys to remove (applied first).
    pub delete: Vec<String>,
    /// Keys to set, in order.
    pub set: Vec<(String, String)>,
    /// Keys to add to, in order (applied last): the value is read as an
    /// integer (a missing or non-numeric value counts as 0), the amount
    /// added, the sum kept within ±[`MAX_COUNTER`].
    pub incr: Vec<(String, i64)>,
}

impl DataChange {
    /// Whether the change does nothing.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.set.is_empty() && self.incr.is_empty()
    }

    /// Applies the change to encoded data and returns the new encoded data.
    pub fn apply(&self, encoded: &str) -> String {
        let mut pairs = decode(encoded);
        pairs.retain(|(k, _)| !self.delete.iter().any(|d| d == k));
        for (k, v) in &self.set {
            put(&mut pairs, k, v.clone());
        }
        for (k, by) in &self.incr {
            let now = pairs
                .iter()
                .find(|(ek, _)| ek == k)
                .map_or(0, |(_, v)| counter_value(v));
            put(&mut pairs, k, add_counter(now, *by).to_string());
        }
        encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// Sets `k` to `v`: in its place when present, else last.
fn put(pairs: &mut Vec<(String, String)>, k: &str, v: String) {
    match pairs.iter_mut().find(|(ek, _)| ek == k) {
        Some(slot) => slot.1 = v,
        None => pairs.push((k.to_owned(), v)),
    }
}

/// A stored value as a counter: an optional `-` and decimal digits within
/// ±[`MAX_COUNTER`]; anything else counts as 0.
pub fn counter_value(v: &str) -> i64 {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    v.parse::<i64>()
        .ok()
        .filter(|n| n.abs() <= MAX_COUNTER)
        .unwrap_or(0)
}

/// `now + by`, kept within ±[`MAX_COUNTER`].
pub fn add_counter(now: i64, by: i64) -> i64 {
    now.saturating_add(by).clamp(-MAX_COUNTER, MAX_COUNTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_add_to_numbers_and_count_anything_else_as_zero() {
        let change = DataChange {
            incr: vec![
                ("hits".into(), 1),
                ("stock".into(), -2),
                ("new".into(), 5),
                ("word".into(), 1),
                ("hits".into(), 1),
            ],
            ..DataChange::default()
        };
        assert_eq!(
            change.apply("hits=41&stock=1&word=abc&x=y"),
            "hits=43&stock=-1&word=1&x=y&new=5"
        );
        assert_eq!(counter_value("-0012"), -12);
        for odd in [
            "",
            "-",
            "+1",
            "1.5",
            " 1",
            "1e3",
            "99999999999999999",
            "0x10",
        ] {
            assert_eq!(counter_value(odd), 0, "{odd:?}");
        }
        assert_eq!(add_counter(MAX_COUNTER, 1), MAX_COUNTER);
        assert_eq!(add_counter(-MAX_COUNTER, i64::MIN), -MAX_COUNTER);
    }

    #[test]
    fn encode_decode_round_trip() {
        let e = encode([("cart", "3"), ("lang", "en gb"), ("a&b", "c=d")]);
        assert_eq!(e, "cart=3&lang=en+gb&a%26b=c%3Dd");
        assert_eq!(
            decode(&e),
            vec![
                ("cart".into(), "3".into()),
                ("lang".into(), "en gb".into()),
                ("a&b".into(), "c=d".into())
            ]
        );
    }

    #[test]
    fn change_deletes_then_sets_in_place() {
        let change = DataChange {
            delete: vec!["lang".into()],
            set: vec![("cart".into(), "4".into()), ("new".into(), "1".into())],
            incr: vec![],
        };
        assert_eq!(change.apply("cart=3&lang=en"), "cart=4&new=1");
    }
}
