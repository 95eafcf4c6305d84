//! What a legacy script learns besides the request, through the proxy:
//! `REMOTE_USER` and `AUTH_TYPE` for a signed-in visitor (never from
//! anything the client sent), and a route's `env` settings.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use tempfile::TempDir;

use crate::harness::{Proxy, browser, client, config};

/// Prints its environment, one `NAME=value` a line.
const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n";

/// Signs the visitor in as alice, through the control header.
const SIGNIN_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\nX-Session-Login: alice\\n\\nwelcome\\n'\n";

/// A CGI directory holding `env.cgi` and `signin.cgi`.
fn scripts() -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in [("env.cgi", ENV_SCRIPT), ("signin.cgi", SIGNIN_SCRIPT)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// `env` output as a map.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The environment `env.cgi` saw for a request sent with `headers`.
async fn script_env(
    proxy: &Proxy,
    http: &reqwest::Client,
    headers: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut req = http.get(proxy.url("/env.cgi"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("response");
    assert_eq!(resp.status(), 200);
    parse_env(&resp.text().await.expect("body"))
}

/// Headers a client might send hoping to pass as someone.
const FORGED: [(&str, &str); 4] = [
    ("Remote-User", "mallory"),
    ("Remote_User", "mallory"),
    ("Auth-Type", "Basic"),
    ("X-Remote-User", "mallory"),
];

#[tokio::test]
async fn an_anonymous_visitor_has_no_remote_user_whatever_it_sends() {
    let dir = scripts();
    let upstream = format!("cgi:{}", dir.path().display());
    let proxy = Proxy::start(&config(&[("/", &upstream, "session")], "")).await;
    let env = script_env(&proxy, &client(), &FORGED).await;
    assert!(!env.contains_key("REMOTE_USER"), "{env:?}");
    assert!(!env.contains_key("AUTH_TYPE"), "{env:?}");
    // What the client sent arrives as request headers, and only so.
    assert_eq!(env["HTTP_REMOTE_USER"], "mallory");
    assert_eq!(env["HTTP_AUTH_TYPE"], "Basic");
    assert_eq!(env["HTTP_X_REMOTE_USER"], "mallory");
    // An underscore in a header name could be read as a dash by a script's
    // framework: such a header is not passed at all.
    assert!(
        env.keys().filter(|k| k.contains("REMOTE_USER")).count() == 2,
        "{env:?}"
    );
}

#[tokio::test]
async fn a_signed_in_visitor_is_the_remote_user() {
    let dir = scripts();
    let upstream = format!("cgi:{}", dir.path().display());
    let proxy = Proxy::start(&config(&[("/", &upstream, "session")], "")).await;
    let http = browser();
    let resp = http
        .get(proxy.url("/signin.cgi"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let env = script_env(&proxy, &http, &[]).await;
    assert_eq!(env["REMOTE_USER"], "alice");
    assert_eq!(env["AUTH_TYPE"], "Form");
    // Forged headers change nothing but their own HTTP_ variables.
    let env = script_env(&proxy, &http, &FORGED).await;
    assert_eq!(env["REMOTE_USER"], "alice");
    assert_eq!(env["AUTH_TYPE"], "Form");
    assert_eq!(env["HTTP_REMOTE_USER"], "mallory");
}

#[tokio::test]
async fn a_route_s_settings_reach_its_scripts_and_no_other() {
    let dir = scripts();
    let secret = dir.path().join("token.txt");
    std::fs::write(&secret, "from-a-file\n").expect("secret file");
    let upstream = format!("cgi:{}", dir.path().display());
    let var = "SCRIPT_ENV_TEST_FROM_PROXY_ENV";
    let text = format!(
        "[session]\nsecret_keys = [\"{}\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n\
         env = {{ GITWEB_CONFIG = \"/etc/gitweb.conf\", FROM_ENV = \"env:{var}\", FROM_FILE = \"file:{}\", EMPTY = \"\" }}\n\n\
         [[route]]\npath = \"/plain/\"\nupstream = \"{upstream}\"\n",
        crate::harness::KEY,
        secret.display()
    );
    let config = {
        let secrets = FixedEnv(var, "from-the-environment");
        sessiongate::config::Config::parse_with_secrets(
            std::path::Path::new("t.toml"),
            &text,
            &secrets,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let proxy = Proxy::start_with(config).await;
    let env = script_env(&proxy, &client(), &[]).await;
    assert_eq!(env["GITWEB_CONFIG"], "/etc/gitweb.conf");
    assert_eq!(env["FROM_ENV"], "from-the-environment");
    assert_eq!(env["FROM_FILE"], "from-a-file");
    assert_eq!(env["EMPTY"], "");
    // The gateway's own variables are as always.
    assert_eq!(env["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(env["SCRIPT_NAME"], "/env.cgi");
    // Another route of the same directory has settings of its own (none).
    let resp = client()
        .get(proxy.url("/plain/env.cgi"))
        .send()
        .await
        .expect("response");
    let env = parse_env(&resp.text().await.expect("body"));
    assert_eq!(env["SCRIPT_NAME"], "/plain/env.cgi");
    assert!(!env.contains_key("GITWEB_CONFIG"), "{env:?}");
}

/// One environment variable, and the disk for `file:` secrets.
struct FixedEnv(&'static str, &'static str);

impl sessiongate::config::SecretSource for FixedEnv {
    fn env(&self, name: &str) -> Option<String> {
        (name == self.0).then(|| self.1.to_owned())
    }

    fn file(&self, path: &std::path::Path) -> Result<String, sessiongate::config::SecretError> {
        sessiongate::config::SystemSecrets.file(path)
    }
}
