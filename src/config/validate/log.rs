//! `[log]`: line format and level filter.

use crate::config::raw::RawLog;
use crate::config::report::Reporter;
use crate::config::{LogConfig, LogFormat};

pub(super) fn validate_log(raw: RawLog, r: &mut Reporter<'_>) -> Option<LogConfig> {
    let level = match raw.level {
        None => "info".to_string(),
        Some(l) => {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                r.span(&l, "log.level must be trace, debug, info, warn, error, or a filter like \"sessiongate=debug,info\"");
                return None;
            }
            l.into_inner()
        }
    };
    Some(LogConfig {
        format: raw.format.unwrap_or(LogFormat::Text),
        level,
    })
}
