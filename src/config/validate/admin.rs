//! `[admin]`: the admin listener and its token.

use super::parse_socket_addr;
use crate::config::AdminConfig;
use crate::config::raw::RawAdmin;
use crate::config::report::Reporter;
use crate::config::secrets::{SecretSource, resolve_secret};

pub(super) fn validate_admin(
    raw: RawAdmin,
    r: &mut Reporter<'_>,
    secrets: &dyn SecretSource,
) -> Option<AdminConfig> {
    let mut ok = true;
    let listen = raw
        .listen
        .and_then(|l| match parse_socket_addr(l.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                r.span(&l, e);
                ok = false;
                None
            }
        });
    let token = raw
        .token
        .and_then(|t| match resolve_secret(t.get_ref(), secrets) {
            Ok(v) if v.is_empty() => {
                r.span(&t, "admin.token must not be empty");
                ok = false;
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                r.span(&t, e.to_string());
                ok = false;
                None
            }
        });
    ok.then_some(AdminConfig { listen, token })
}
