//! Step one: the document into the `Raw*` structs, every bad key reported.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::raw::RawConfig;
use super::report::Reporter;

/// Deserializes the document, reporting each bad key and retrying without it,
/// so that one run reports every problem rather than the first.
pub(super) fn deserialize_collecting(text: &str, reporter: &mut Reporter<'_>) -> Option<RawConfig> {
    let (mut doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in &syntax_errors {
            reporter.toml(e);
        }
        return None;
    }
    doc.get_mut().make_owned();
    let mut removed: Vec<String> = Vec::new();
    // Each round removes one key, so the loop ends; the bound is a backstop.
    for _ in 0..256 {
        let attempt = doc.clone();
        match RawConfig::deserialize(toml::de::Deserializer::from(attempt)) {
            Ok(raw) => return reporter.is_clean().then_some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let missing_after_removal = e.message().starts_with("missing field")
                    && removed
                        .iter()
                        .any(|k| e.message().contains(&format!("`{k}`")));
                if !missing_after_removal {
                    reporter.toml(&e);
                }
                match remove_key_at(doc.get_mut(), &span) {
                    Some(key) => removed.push(key),
                    None => return None,
                }
            }
        }
    }
    None
}

/// Removes the innermost key whose key or value span contains `span`, at
/// any depth (tables and arrays of tables); returns its name.
fn remove_key_at(table: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
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
        let _ = key;
        if let Some(found) = remove_in_value(value.get_mut(), span) {
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
    Some(key)
}

/// [`remove_key_at`] inside a value: in a table, or in each table of an array.
fn remove_in_value(value: &mut DeValue<'_>, span: &Range<usize>) -> Option<String> {
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
    fn syntax_error_has_position() {
        let errs = "[server\nlisten = 1".parse::<Config>().unwrap_err().0;
        assert_eq!(errs[0].line, 1);
    }
}
