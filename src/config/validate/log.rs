//! `[log]`: line format and level filter.

use super::Section;
use crate::config::raw::RawLog;
use crate::config::report::Reporter;
use crate::config::{LogConfig, LogFormat};

/// Checks `[log]`: the level must be a filter `tracing` accepts.
pub(super) fn validate_log(raw: RawLog, r: &mut Reporter<'_>) -> Option<LogConfig> {
    let mut s = Section::new(r);
    let level = raw.level.map_or_else(
        || "info".to_string(),
        |level| {
            s.checked(
                level,
                |level| tracing_subscriber::EnvFilter::try_new(level).is_ok(),
                "log.level must be trace, debug, info, warn, error, or a filter like \"sessiongate=debug,info\"",
            )
        },
    );
    s.finish(|| LogConfig {
        format: raw.format.unwrap_or(LogFormat::Text),
        level,
    })
}
