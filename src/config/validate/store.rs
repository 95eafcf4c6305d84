//! `[store]`: memory or Redis.

use std::path::PathBuf;

use super::Section;
use crate::config::raw::RawStore;
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_SESSIONS, DEFAULT_SNAPSHOT_INTERVAL, StoreConfig, StoreKind,
};

/// The URL schemes the Redis client connects with.
const REDIS_SCHEMES: [&str; 6] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+unix://",
    "unix://",
];

/// Checks `[store]`.
pub(super) fn validate_store(raw: RawStore, r: &mut Reporter<'_>) -> Option<StoreConfig> {
    let mut s = Section::new(r);
    let kind = raw
        .kind
        .as_ref()
        .map_or(StoreKind::Memory, |k| *k.get_ref());
    if let Some(written) = &raw.kind
        && kind == StoreKind::Redis
        && raw.url.is_none()
    {
        s.error(
            written,
            "store.kind = \"redis\" needs store.url, e.g. url = \"redis://127.0.0.1:6379/0\"",
        );
    }
    let url = raw.url.map(|url| {
        s.checked(
            url,
            |url| REDIS_SCHEMES.iter().any(|scheme| url.starts_with(scheme)),
            "store.url must start with redis://, rediss:// or redis+cluster://",
        )
    });
    let snapshot_interval = s.seconds(
        raw.snapshot_interval,
        DEFAULT_SNAPSHOT_INTERVAL,
        "snapshot_interval",
    );
    let max_sessions = s
        .at_least(raw.max_sessions, 1, "max_sessions")
        .unwrap_or(DEFAULT_MAX_SESSIONS);
    s.finish(|| StoreConfig {
        kind,
        snapshot: raw.snapshot.filter(|s| !s.is_empty()).map(PathBuf::from),
        snapshot_interval,
        max_sessions,
        url,
        key_prefix: raw
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::testing::minimal;

    #[test]
    fn redis_needs_url() {
        let text = format!("{}\n[store]\nkind = \"redis\"\n", minimal());
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(errs[0].message.contains("store.url"), "{errs:?}");
    }
}
