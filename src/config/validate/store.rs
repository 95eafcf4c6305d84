//! `[store]`: memory or Redis.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::raw::RawStore;
use crate::config::report::Reporter;
use crate::config::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_SESSIONS, DEFAULT_SNAPSHOT_INTERVAL, StoreConfig, StoreKind,
};

pub(super) fn validate_store(raw: RawStore, r: &mut Reporter<'_>) -> Option<StoreConfig> {
    let mut ok = true;
    let kind = raw
        .kind
        .as_ref()
        .map_or(StoreKind::Memory, |k| *k.get_ref());
    if kind == StoreKind::Redis && raw.url.is_none() {
        match &raw.kind {
            Some(k) => r.span(
                k,
                "store.kind = \"redis\" needs store.url, e.g. url = \"redis://127.0.0.1:6379/0\"",
            ),
            None => r.at(0, "store.kind = \"redis\" needs store.url"),
        }
        ok = false;
    }
    if let Some(url) = &raw.url {
        let u = url.get_ref();
        let schemes = [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
            "redis+unix://",
            "unix://",
        ];
        if !schemes.iter().any(|s| u.starts_with(s)) {
            r.span(
                url,
                "store.url must start with redis://, rediss:// or redis+cluster://",
            );
            ok = false;
        }
    }
    let snapshot_interval = match raw.snapshot_interval {
        None => DEFAULT_SNAPSHOT_INTERVAL,
        Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
            r.span(&d, "snapshot_interval must be at least one second");
            ok = false;
            DEFAULT_SNAPSHOT_INTERVAL
        }
        Some(d) => d.into_inner().0,
    };
    let max_sessions = match raw.max_sessions {
        None => DEFAULT_MAX_SESSIONS,
        Some(v) if *v.get_ref() == 0 => {
            r.span(&v, "max_sessions must be at least 1");
            ok = false;
            0
        }
        Some(v) => v.into_inner(),
    };
    ok.then(|| StoreConfig {
        kind,
        snapshot: raw.snapshot.filter(|s| !s.is_empty()).map(PathBuf::from),
        snapshot_interval,
        max_sessions,
        url: raw.url.map(|u| u.into_inner()),
        key_prefix: raw
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string()),
    })
}
