//! `[admin]`: the admin listener and its token.

use super::{Section, parse_socket_addr};
use crate::config::AdminConfig;
use crate::config::raw::RawAdmin;
use crate::config::report::Reporter;
use crate::config::secrets::{SecretSource, resolve_secret};

/// Checks `[admin]`, resolving its token from `secrets`; a listener
/// beyond loopback needs a token.
pub(super) fn validate_admin(
    raw: RawAdmin,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<AdminConfig> {
    let mut s = Section::new(r);
    let listen = raw
        .listen
        .as_ref()
        .and_then(|listen| s.parsed(listen, parse_socket_addr(listen.get_ref())));
    // Without a token, anyone who can reach the listener may end sessions.
    if let (Some(addr), Some(at), None) = (listen, &raw.listen, &raw.token) {
        if !addr.ip().is_loopback() {
            s.error(
                at,
                "admin.listen is not a loopback address: set admin.token as well",
            );
        }
    }
    let token = raw.token.and_then(|spec| {
        let token = s.parsed(&spec, resolve_secret(spec.get_ref(), secrets))?;
        if token.is_empty() {
            s.error(&spec, "admin.token must not be empty");
            return None;
        }
        Some(token)
    });
    s.finish(|| AdminConfig { listen, token })
}
