//! Session data in its urlencoded form: `session::data::encode` / `decode`
//! and `DataChange::apply`.
//!
//! Encoding then decoding gives the pairs back (empty keys dropped, a
//! repeated key's last value in its first place); any decoded data encodes
//! to a fixed point; a change deletes then sets exactly what it says; and
//! every encoded form is a valid header value, since it is sent as one.

#![no_main]

use arbitrary::Arbitrary;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use sessiongate::session::DataChange;
use sessiongate::session::data::{decode, encode};

#[derive(Debug, Arbitrary)]
struct Input {
    pairs: Vec<(String, String)>,
    encoded: String,
    delete: Vec<String>,
    set: Vec<(String, String)>,
}

type Pairs = Vec<(String, String)>;

/// What `decode` promises: no empty key, one entry per key, the last value
/// in the first place.
fn merged(pairs: &[(String, String)]) -> Pairs {
    let mut out: Pairs = Vec::new();
    for (k, v) in pairs.iter().filter(|(k, _)| !k.is_empty()) {
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1.clone_from(v),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn assert_header_safe(encoded: &str) {
    assert!(
        encoded.bytes().all(|b| b.is_ascii_graphic()),
        "{encoded:?} is not visible ASCII"
    );
    assert!(HeaderValue::from_str(encoded).is_ok(), "{encoded:?}");
}

fuzz_target!(|input: Input| {
    let encoded = encode_pairs(&input.pairs);
    assert_header_safe(&encoded);
    assert_eq!(decode(&encoded), merged(&input.pairs), "{encoded:?}");

    let data = decode(&input.encoded);
    assert_eq!(data, merged(&data), "decode left an empty or repeated key");
    let canonical = encode_pairs(&data);
    assert_header_safe(&canonical);
    assert_eq!(decode(&canonical), data);
    assert_eq!(encode_pairs(&decode(&canonical)), canonical);

    let change = DataChange {
        delete: input.delete,
        set: input.set,
        incr: vec![],
    };
    let applied = change.apply(&input.encoded);
    assert_header_safe(&applied);
    let mut expected = data;
    expected.retain(|(k, _)| !change.delete.contains(k));
    expected.extend(change.set.iter().cloned());
    assert_eq!(decode(&applied), merged(&expected), "{change:?}");
    if change.is_empty() {
        assert_eq!(applied, canonical);
    }
});
