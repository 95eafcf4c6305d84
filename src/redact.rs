//! Secrets out of what is shown: a URL's password hidden before the URL
//! reaches a log line, an error message or the `check` summary.

/// Query parameters that carry a password: the Redis client reads `pass`
/// from the query of a Unix socket URL, `redis+unix:///path?pass=...`,
/// which has no other place for one.
const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// Hides the passwords in a URL: everything between `://` and the last `@`
/// (`redis://:secret@host`) becomes `***`, and so does the value of a
/// `pass` or `password` query parameter (`redis+unix:///path?pass=secret`),
/// up to the next `&`.
pub fn redact_url(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    };
    let Some((head, query)) = url.split_once('?') else {
        return url;
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}=***"),
            _ => param.to_string(),
        })
        .collect();
    format!("{head}?{}", params.join("&"))
}

/// Whether a query parameter's name, percent-decoded as the client decodes
/// it, is one that carries a password.
fn is_secret(name: &str) -> bool {
    form_urlencoded::parse(name.as_bytes())
        .next()
        .is_some_and(|(decoded, _)| SECRET_PARAMS.contains(&&*decoded))
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

    #[test]
    fn passwords_in_the_query_are_hidden() {
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=2&pass=secret"),
            "redis+unix:///run/redis.sock?db=2&pass=***"
        );
        assert_eq!(
            redact_url("unix:///run/redis.sock?pass=secret&user=me"),
            "unix:///run/redis.sock?pass=***&user=me"
        );
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?p%61ss=secret#x"),
            "redis+unix:///run/redis.sock?p%61ss=***"
        );
        assert_eq!(
            redact_url("rediss+cluster://:pw@h1:7000,h2:7001/0?protocol=resp3"),
            "rediss+cluster://***@h1:7000,h2:7001/0?protocol=resp3"
        );
        assert_eq!(
            redact_url("redis://h:1/0?password=secret"),
            "redis://h:1/0?password=***"
        );
    }
}
