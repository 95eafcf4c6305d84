//! `[log]`: line format, level filter, and where the audit log goes.

use super::Section;
use crate::config::raw::RawLog;
use crate::config::report::Reporter;
use crate::config::{AuditTarget, LogConfig, LogFormat};

/// Checks `[log]`: the level must be a filter `tracing` accepts; `audit`
/// is a file path or `stdout`.
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
    let audit = match raw.audit {
        None => None,
        Some(a) if a.get_ref() == "stdout" => Some(AuditTarget::Stdout),
        Some(a) if a.get_ref().trim().is_empty() || a.get_ref().ends_with('/') => {
            s.error(&a, "log.audit must be a file path or \"stdout\"");
            None
        }
        Some(a) => Some(AuditTarget::File(a.into_inner().into())),
    };
    s.finish(|| LogConfig {
        format: raw.format.unwrap_or(LogFormat::Text),
        level,
        audit,
    })
}
