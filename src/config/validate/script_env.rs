//! A route's `env`: settings for its scripts, as Apache's `SetEnv`.
//!
//! Only the gateways that run scripts (`cgi:`, `fastcgi`) take them. A
//! setting adds a variable; it never replaces one the gateway sets (the
//! request's own facts, or the user it vouches for), so those names are
//! refused here rather than silently ignored at run time.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Section;
use crate::config::ScriptEnv;
use crate::config::secrets::{SecretSource, resolve_secret};

/// Variables a route's `env` may not name (compared without regard to
/// case): those of RFC 3875 section 4.1, and every other one the CGI and
/// FastCGI gateways set themselves. Names starting with `HTTP_` are
/// refused too: they are the request's headers.
pub const RESERVED_SCRIPT_VARIABLES: &[&str] = &[
    // RFC 3875 section 4.1
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "GATEWAY_INTERFACE",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SERVER_SOFTWARE",
    // set by our gateways besides
    "DOCUMENT_ROOT",
    "DOCUMENT_URI",
    "HTTPS",
    "PATH",
    "REDIRECT_STATUS",
    "REMOTE_PORT",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "SCRIPT_FILENAME",
    "SERVER_ADDR",
];

/// Checks a route's `env` (its names, and its values with `env:` and
/// `file:` secrets resolved); `scripts` says whether the route's upstream
/// runs scripts at all.
pub(super) fn script_env(
    raw: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    scripts: bool,
    secrets: &dyn SecretSource,
    s: &mut Section<'_, '_>,
) -> ScriptEnv {
    let Some(raw) = raw else {
        return ScriptEnv::default();
    };
    if !scripts {
        s.error(
            &raw,
            "env is for routes that run scripts (cgi: or fastcgi upstreams); an HTTP upstream has its own environment",
        );
        return ScriptEnv::default();
    }
    let mut env = BTreeMap::new();
    for (name, value) in raw.into_inner() {
        if let Err(why) = check_name(&name) {
            s.error(&value, format!("env name {name:?}: {why}"));
            continue;
        }
        let Some(resolved) = s.parsed(&value, resolve_secret(value.get_ref(), secrets)) else {
            continue;
        };
        if resolved.contains('\0') {
            s.error(&value, format!("env {name}: the value holds a NUL byte"));
            continue;
        }
        env.insert(name, resolved);
    }
    ScriptEnv::new(env)
}

/// Whether `name` may be set by a route: a variable name, and none of ours.
fn check_name(name: &str) -> Result<(), &'static str> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err("not a variable name (letters, digits and '_', not starting with a digit)");
    }
    if name.len() >= 5 && name[..5].eq_ignore_ascii_case("HTTP_") {
        return Err("names starting with HTTP_ are the request's headers");
    }
    if RESERVED_SCRIPT_VARIABLES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err("the gateway sets this variable itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::testing::{FixedSecrets, KEY};
    use crate::config::{Config, ConfigError};

    /// A config whose one route has `upstream` and the `env` table `env`
    /// (on line 7 and after).
    fn parse(
        upstream: &str,
        env: &str,
        secrets: &FixedSecrets,
    ) -> Result<Config, Vec<ConfigError>> {
        let text = format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n{env}\n"
        );
        Config::parse_with_secrets(Path::new("t.toml"), &text, secrets).map_err(|e| e.0)
    }

    #[test]
    fn settings_resolve_their_secrets() {
        let secrets = FixedSecrets::default()
            .with_env("DB_PASS", "hunter2")
            .with_file("/run/secrets/token", "t0k3n\n");
        let config = parse(
            "cgi:/srv/cgi-bin",
            "env = { GITWEB_CONFIG = \"/etc/gitweb.conf\", DB = \"env:DB_PASS\", TOKEN = \"file:/run/secrets/token\" }",
            &secrets,
        )
        .expect("valid config");
        let env: Vec<_> = config.routes[0].env.iter().collect();
        assert_eq!(
            env,
            [
                ("DB", "hunter2"),
                ("GITWEB_CONFIG", "/etc/gitweb.conf"),
                ("TOKEN", "t0k3n")
            ]
        );
        // Values never reach a Debug print.
        let debug = format!("{:?}", config.routes[0]);
        assert!(
            !debug.contains("hunter2") && debug.contains("\"DB\""),
            "{debug}"
        );
    }

    #[test]
    fn each_refusal_names_its_line() {
        let none = FixedSecrets::default();
        for (upstream, env, says) in [
            (
                "http://127.0.0.1:9000",
                "env = { A = \"1\" }",
                "routes that run scripts",
            ),
            (
                "cgi:/srv",
                "env = { \"A-B\" = \"1\" }",
                "not a variable name",
            ),
            (
                "cgi:/srv",
                "env = { \"1A\" = \"1\" }",
                "not a variable name",
            ),
            (
                "cgi:/srv",
                "env = { REMOTE_USER = \"root\" }",
                "sets this variable itself",
            ),
            (
                "cgi:/srv",
                "env = { script_filename = \"/x\" }",
                "sets this variable itself",
            ),
            (
                "cgi:/srv",
                "env = { HTTP_X_SESSION_USER = \"root\" }",
                "HTTP_",
            ),
            (
                "cgi:/srv",
                "env = { A = \"env:NOT_SET_ANYWHERE\" }",
                "NOT_SET_ANYWHERE is not set",
            ),
            (
                "cgi:/srv",
                "env = { A = \"file:/nowhere\" }",
                "cannot read secret file",
            ),
            ("cgi:/srv", "env = { A = \"a\\u0000b\" }", "NUL"),
        ] {
            let errors = parse(upstream, env, &none).expect_err(env);
            assert_eq!(errors.len(), 1, "{env}: {errors:?}");
            assert_eq!(errors[0].line, 7, "{env}: {errors:?}");
            assert!(errors[0].col > 1, "{env}: {errors:?}");
            assert!(errors[0].message.contains(says), "{env}: {errors:?}");
        }
    }

    #[test]
    fn names_are_variable_names_of_the_operator() {
        for good in [
            "GITWEB_CONFIG",
            "_x",
            "PSO_SESSION_DIR",
            "a1",
            "PATHS",
            "HTTPX",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1A",
            "A-B",
            "A B",
            "A=B",
            "Ä",
            "HTTP_HOST",
            "http_x",
            "REMOTE_USER",
            "remote_user",
            "PATH",
            "REDIRECT_STATUS",
            "SCRIPT_FILENAME",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
