//! Secrets out of what is shown: a URL's password hidden before the URL
//! reaches a log line, an error message or the `check` summary.

/// Hides a password in a URL like `redis://:secret@host`: everything
/// between `://` and the last `@` becomes `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("redis://:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host"), "redis://host");
    }
}
