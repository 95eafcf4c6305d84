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

/// A change to a session's data, from the backend's control headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataChange {
    /// Keys to remove (applied first).
    pub delete: Vec<String>,
    /// Keys to set, in order.
    pub set: Vec<(String, String)>,
}

impl DataChange {
    /// Whether the change does nothing.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.set.is_empty()
    }

    /// Applies the change to encoded data and returns the new encoded data.
    pub fn apply(&self, encoded: &str) -> String {
        let mut pairs = decode(encoded);
        pairs.retain(|(k, _)| !self.delete.iter().any(|d| d == k));
        for (k, v) in &self.set {
            match pairs.iter_mut().find(|(ek, _)| ek == k) {
                Some(slot) => slot.1.clone_from(v),
                None => pairs.push((k.clone(), v.clone())),
            }
        }
        encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        assert_eq!(change.apply("cart=3&lang=en"), "cart=4&new=1");
    }
}
