//! Step one: the document into the `Raw*` structs, every bad key reported.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::raw::RawConfig;
use super::report::Reporter;

/// Deserializes the document, reporting each bad key and retrying without it,
/// so that one run reports every problem rather than the first. The keys
/// taken out are noted in the reporter; what is left is returned to be
/// validated, so that its problems are reported in the same run.
pub(super) fn deserialize_collecting(text: &str, reporter: &mut Reporter<'_>) -> Option<RawConfig> {
    let (mut doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in &syntax_errors {
            reporter.toml(e);
        }
        return None;
    }
    doc.get_mut().make_owned();
    // Each round removes one key, so the loop ends; the bound is a backstop.
    for _ in 0..256 {
        let attempt = doc.clone();
        match RawConfig::deserialize(toml::de::Deserializer::from(attempt)) {
            Ok(raw) => return Some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let missing_after_removal = e.message().starts_with("missing field")
                    && reporter
                        .removed_keys()
                        .any(|k| e.message().contains(&format!("`{}`", last_segment(k))));
                let key = remove_key_at(doc.get_mut(), &span).map(|path| path.join("."));
                if !missing_after_removal {
                    let written = text.get(span.clone()).unwrap_or("");
                    let message = in_our_words(key.as_deref(), e.message().trim(), written);
                    reporter.at(span.start, message);
                }
                match key {
                    Some(key) => reporter.removed(key),
                    None => return None,
                }
            }
        }
    }
    None
}

/// The last part of a dotted key.
fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// A deserialization message with the key it is about, and serde's and
/// toml's phrasing (`invalid type: string "x", expected usize`) in the
/// config's terms. `written` is the value as it stands in the file.
fn in_our_words(key: Option<&str>, message: &str, written: &str) -> String {
    let Some(key) = key else {
        return message.to_string();
    };
    let found_expected = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split_once(", expected "));
    if let Some((found, expected)) = found_expected {
        return format!(
            "{key} must be {}, not {}",
            expected_in_our_words(expected),
            found_in_our_words(found)
        );
    }
    if message == "wanted string or table" {
        return format!("{key} must be a string, not {written}");
    }
    if let Some((found, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        return format!(
            "{key} must be one of {}, not {}",
            expected.replace('`', "\""),
            found.replace('`', "\"")
        );
    }
    // Our own messages (durations, addresses...) and toml's others: with
    // the key in front, unless they already name it.
    if message.contains(last_segment(key)) {
        message.to_string()
    } else {
        format!("{key}: {message}")
    }
}

/// What serde says a key expects, as the config's documentation says it.
fn expected_in_our_words(expected: &str) -> String {
    match expected {
        "usize" | "u8" | "u16" | "u32" | "u64" => "a whole number of 0 or more".to_string(),
        "i8" | "i16" | "i32" | "i64" => "a whole number".to_string(),
        "a sequence" => "a list, like [\"...\"]".to_string(),
        "a map" => "a table".to_string(),
        "a string" | "a boolean" => expected.to_string(),
        other if other.starts_with("struct ") => "a table".to_string(),
        other => other.to_string(),
    }
}

/// What serde says it found, without its type words.
fn found_in_our_words(found: &str) -> String {
    // `integer `-1``, `string "many"`, `boolean `true``, `sequence`, `map`
    for (prefix, name) in [
        ("integer ", "the number"),
        ("floating point ", "the number"),
        ("string ", "the string"),
        ("boolean ", ""),
    ] {
        if let Some(value) = found.strip_prefix(prefix) {
            let value = value.trim_matches('`');
            return if name.is_empty() {
                value.to_string()
            } else {
                format!("{name} {value}")
            };
        }
    }
    match found {
        "sequence" => "a list".to_string(),
        "map" => "a table".to_string(),
        other => other.to_string(),
    }
}

/// Removes the innermost key whose key or value span contains `span`, at
/// any depth (tables and arrays of tables); returns its path from the top.
fn remove_key_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<Vec<String>> {
    let contains = |outer: &Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let keys: Vec<(String, bool)> = table
        .iter()
        .map(|(k, v)| {
            let k_span = k.span();
            let v_span = v.span();
            let hit = contains(&k_span) || (contains(&v_span) && v_span != *span);
            (k.get_ref().to_string(), hit)
        })
        .collect();
    // Deeper first: a nested table may hold the key even when the parent's
    // own span does not cover it (arrays of tables are spread over the file).
    for (key, value) in table.iter_mut() {
        if let Some(mut found) = remove_in_value(value.get_mut(), span) {
            found.insert(0, key.get_ref().to_string());
            return Some(found);
        }
    }
    let exact = table
        .iter()
        .find(|(_, v)| v.span() == *span)
        .map(|(k, _)| k.get_ref().to_string());
    let key = keys
        .into_iter()
        .find(|(_, hit)| *hit)
        .map(|(k, _)| k)
        .or(exact)?;
    table.remove(key.as_str());
    Some(vec![key])
}

/// [`remove_key_at`] inside a value: in a table, or in each table of an array.
fn remove_in_value(value: &mut DeValue<'_>, span: &Range<usize>) -> Option<Vec<String>> {
    match value {
        DeValue::Table(t) => remove_key_at(t, span),
        DeValue::Array(items) => items
            .iter_mut()
            .find_map(|item| remove_in_value(item.get_mut(), span)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::testing::minimal;

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let text = minimal().replace(
            "[session]\nsecret_keys",
            "[session]\nidle_timout = \"5m\"\nsecret_keys",
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (2, 1));
        assert!(
            errs[0].message.contains("idle_timout"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn every_error_is_reported() {
        let text = "[server]\nlisten = [\"nope\"]\nbogus = 1\n\n[session]\nsecret_keys = [\"short\"]\nidle_timeout = \"5\"\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\naccess = \"maybe\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        // bogus key (3), bad duration (7), bad access (12) are found in the
        // first pass; once they are gone the remaining values are checked.
        assert!(lines.contains(&3), "{errs:?}");
        assert!(lines.contains(&7), "{errs:?}");
        assert!(lines.contains(&12), "{errs:?}");
    }

    #[test]
    fn wrong_types_and_values_are_named_by_key_in_our_words() {
        let text = minimal()
            + "access = \"maybe\"\n\n[server]\nworkers = \"four\"\nmax_header_bytes = -1\n\n[headers]\nsend_id = \"yes\"\n";
        let errs = text.parse::<Config>().unwrap_err().0;
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "route.access must be one of \"public\", \"session\", \"login\", not \"maybe\"",
                "server.workers must be a whole number of 0 or more, not the string \"four\"",
                "server.max_header_bytes must be a whole number of 0 or more, not the number -1",
                "headers.send_id must be a boolean, not the string \"yes\"",
            ]
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let errs = "[server\nlisten = 1".parse::<Config>().unwrap_err().0;
        assert_eq!(errs[0].line, 1);
    }
}
