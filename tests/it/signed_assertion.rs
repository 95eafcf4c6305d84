//! The signed assertion (`headers.sign_key`): real requests through the
//! proxy to a recording backend, to real CGI scripts, to php-fpm and over a
//! WebSocket handshake, each checked by the shipped verifiers
//! (`examples/verify/verify.{sh,pl,py}`, run as programs) against what the
//! backend really received; and the same requests tampered with, stale or
//! signed with a key the verifier does not hold, refused by all three.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

use http::HeaderMap;
use sessiongate::config::{Config, sign_key_id};
use sessiongate::setup::Setup;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::harness::programs::PhpFpm;
use crate::harness::tls::websocket_echo;
use crate::harness::{Backend, KEY, Proxy, Reply, browser, client, repo_root, session_cookie};

/// The key sessiongate signs with.
const SIGN_KEY: &str = "sign-key-0123456789-abcdefghijklmnop";
/// The key it signed with before a rotation.
const OLD_SIGN_KEY: &str = "old-sign-key-0123456789-abcdefghijk";

/// The shipped verifiers.
const VERIFIERS: [&str; 3] = ["verify.sh", "verify.pl", "verify.py"];

fn verifier(name: &str) -> PathBuf {
    repo_root().join("examples/verify").join(name)
}

/// A CGI environment: name and value (bytes, as a script gets them).
type Env = Vec<(String, Vec<u8>)>;

/// The environment a CGI script behind an HTTP server (Apache's
/// `REQUEST_URI` is the request target as received) sees for a request.
fn cgi_env(method: &str, uri: &str, headers: &HeaderMap) -> Env {
    let mut env = vec![
        ("REQUEST_METHOD".to_owned(), method.as_bytes().to_vec()),
        ("REQUEST_URI".to_owned(), uri.as_bytes().to_vec()),
    ];
    for (name, value) in headers {
        if name.as_str().starts_with("x-session-") {
            let variable = format!("HTTP_{}", name.as_str().to_uppercase().replace('-', "_"));
            env.push((variable, value.as_bytes().to_vec()));
        }
    }
    env
}

/// `env` with `name` set to `value`.
fn with(env: &Env, name: &str, value: impl AsRef<[u8]>) -> Env {
    let mut env: Env = env.iter().filter(|(n, _)| n != name).cloned().collect();
    env.push((name.to_owned(), value.as_ref().to_vec()));
    env
}

fn get<'e>(env: &'e Env, name: &str) -> &'e [u8] {
    env.iter()
        .find(|(n, _)| n == name)
        .map_or(&[][..], |(_, v)| v.as_slice())
}

/// Runs one verifier on `env` holding `keys`: `Ok` when it exits 0, else
/// what it said.
fn run(name: &str, env: &Env, keys: &str) -> Result<(), String> {
    let out = Command::new(verifier(name))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("SESSIONGATE_SIGN_KEYS", keys)
        .envs(env.iter().map(|(n, v)| (n, OsStr::from_bytes(v))))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        other => panic!(
            "{name} exited with {other:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every verifier accepts `env`.
fn all_accept(env: &Env, keys: &str, what: &str) {
    for name in VERIFIERS {
        if let Err(why) = run(name, env, keys) {
            panic!("{name} refused {what}: {why}\n{env:?}");
        }
    }
}

/// Every verifier refuses `env`, saying `why`.
fn all_refuse(env: &Env, keys: &str, what: &str, why: &str) {
    for name in VERIFIERS {
        match run(name, env, keys) {
            Ok(()) => panic!("{name} accepted {what}\n{env:?}"),
            Err(said) => assert!(said.contains(why), "{name} on {what}: {said}"),
        }
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A backend that signs alice in (with groups and data) at `/signin`.
async fn app() -> Backend {
    Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("welcome")
            .header("X-Session-Login", "alice")
            .header("X-Session-Groups", "staff, admins")
            .header("X-Session-Set", "cart=3"),
        _ => Reply::ok("page"),
    })
    .await
}

/// The site's config: `sign_key` (TOML, or none) in `[headers]`, `routes`,
/// then public, session and login routes to `backend`.
fn site(backend: &Backend, sign_key: Option<&str>, routes: &str) -> String {
    let headers = sign_key.map_or(String::new(), |k| format!("[headers]\nsign_key = {k}\n"));
    let mut text = format!("[session]\nsecret_keys = [\"{KEY}\"]\n\n{headers}{routes}");
    for (path, access) in [
        ("/pub/", "public"),
        ("/signin", "public"),
        ("/members/", "login"),
        ("/", "session"),
    ] {
        text.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{}\"\naccess = \"{access}\"\n",
            backend.url()
        ));
    }
    text
}

/// The proxy for `text`, its clock set to the real time (verifiers check
/// freshness against the machine's clock).
async fn start(text: &str) -> Proxy {
    let proxy = Proxy::start(text).await;
    proxy.time.store(unix_now(), Ordering::Relaxed);
    proxy
}

/// Signs alice in; returns her cookie.
async fn sign_in(proxy: &Proxy) -> String {
    let resp = client().get(proxy.url("/signin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    session_cookie(&resp).expect("a login sets the session cookie")
}

/// What the backend got for `method path` with `cookie`, as a CGI
/// environment.
async fn forwarded(
    proxy: &Proxy,
    backend: &Backend,
    method: reqwest::Method,
    path: &str,
    cookie: Option<&str>,
) -> Env {
    let mut req = client().request(method, proxy.url(path));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let resp = req.body("a=1&b=2").send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let seen = backend.last();
    cgi_env(&seen.method, &seen.uri, &seen.headers)
}

#[tokio::test]
async fn every_verifier_accepts_what_the_backend_received() {
    let backend = app().await;
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), "")).await;
    let kid = sign_key_id(SIGN_KEY.as_bytes());
    use reqwest::Method;

    // Public, without a session: the assertion says "no user".
    let public = forwarded(&proxy, &backend, Method::GET, "/pub/a?q=1", None).await;
    assert_eq!(get(&public, "HTTP_X_SESSION_USER"), b"");
    let signature = String::from_utf8(get(&public, "HTTP_X_SESSION_SIGNATURE").to_vec()).unwrap();
    assert!(
        signature.starts_with(&format!("v1;kid={kid};t={};sig=", proxy.now())),
        "{signature}"
    );
    all_accept(&public, SIGN_KEY, "a public request");

    // A new session, no user yet.
    let session = forwarded(&proxy, &backend, Method::GET, "/anything", None).await;
    assert_eq!(get(&session, "HTTP_X_SESSION_NEW"), b"1");
    all_accept(&session, SIGN_KEY, "a session request");

    // Signed in, with groups and data; the path as normalised and forwarded.
    let alice = sign_in(&proxy).await;
    for (method, path, forwarded_as) in [
        (Method::GET, "/members/x", "/members/x"),
        (
            Method::GET,
            "/members/%7euser/../a%2fb//c?x=%41&y=caf%C3%A9",
            "/members/a%2Fb/c?x=%41&y=caf%C3%A9",
        ),
        (Method::POST, "/members/form?", "/members/form?"),
        (Method::DELETE, "/pub/item/7", "/pub/item/7"),
    ] {
        let env = forwarded(&proxy, &backend, method.clone(), path, Some(&alice)).await;
        assert_eq!(get(&env, "REQUEST_URI"), forwarded_as.as_bytes());
        assert_eq!(get(&env, "HTTP_X_SESSION_USER"), b"alice");
        assert_eq!(get(&env, "HTTP_X_SESSION_GROUPS"), b"admins,staff");
        assert_eq!(get(&env, "HTTP_X_SESSION_DATA"), b"cart=3");
        all_accept(&env, SIGN_KEY, &format!("{method} {path}"));
    }
}

#[tokio::test]
async fn tampered_stale_or_unknown_signatures_are_refused() {
    let backend = app().await;
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), "")).await;
    let alice = sign_in(&proxy).await;
    let env = forwarded(
        &proxy,
        &backend,
        reqwest::Method::POST,
        "/members/pay?to=bob",
        Some(&alice),
    )
    .await;
    all_accept(&env, SIGN_KEY, "the request as received");

    let signature = String::from_utf8(get(&env, "HTTP_X_SESSION_SIGNATURE").to_vec()).unwrap();
    let t = proxy.now();
    let later = signature.replace(&format!(";t={t};"), &format!(";t={};", t + 1));
    let sig_at = signature.find(";sig=").unwrap() + 5;
    let mut forged = signature.clone().into_bytes();
    forged[sig_at] = if forged[sig_at] == b'A' { b'B' } else { b'A' };
    for (what, tampered) in [
        ("another user", with(&env, "HTTP_X_SESSION_USER", "admin")),
        ("no user", with(&env, "HTTP_X_SESSION_USER", "")),
        (
            "other groups",
            with(&env, "HTTP_X_SESSION_GROUPS", "staff,admins,root"),
        ),
        ("other data", with(&env, "HTTP_X_SESSION_DATA", "cart=4")),
        (
            "another path",
            with(&env, "REQUEST_URI", "/members/pay?to=eve"),
        ),
        ("another method", with(&env, "REQUEST_METHOD", "PUT")),
        ("another t", with(&env, "HTTP_X_SESSION_SIGNATURE", &later)),
        (
            "another sig",
            with(&env, "HTTP_X_SESSION_SIGNATURE", &forged),
        ),
    ] {
        all_refuse(&tampered, SIGN_KEY, what, "bad signature");
    }
    for (what, tampered) in [
        ("no signature", with(&env, "HTTP_X_SESSION_SIGNATURE", "")),
        (
            "another version",
            with(
                &env,
                "HTTP_X_SESSION_SIGNATURE",
                signature.replacen("v1", "v2", 1),
            ),
        ),
    ] {
        for name in VERIFIERS {
            assert!(
                run(name, &tampered, SIGN_KEY).is_err(),
                "{name} accepted {what}"
            );
        }
    }
    all_refuse(
        &env,
        OLD_SIGN_KEY,
        "a key it does not hold",
        "unknown key id",
    );
    all_refuse(&env, "", "no key at all", "unknown key id");

    // Signed five minutes ago, or five minutes ahead: outside the window.
    for (what, t) in [("stale", unix_now() - 300), ("early", unix_now() + 300)] {
        proxy.time.store(t, Ordering::Relaxed);
        let env = forwarded(
            &proxy,
            &backend,
            reqwest::Method::GET,
            "/members/x",
            Some(&alice),
        )
        .await;
        all_refuse(&env, SIGN_KEY, what, "stale");
        // A wider window, if a site chooses one, takes it.
        all_accept(
            &with(&env, "SESSIONGATE_SIGN_WINDOW", "600"),
            SIGN_KEY,
            what,
        );
    }
}

#[tokio::test]
async fn a_client_cannot_send_a_signature_of_its_own() {
    let backend = app().await;
    for sign_key in [Some(SIGN_KEY), None] {
        let text = site(
            &backend,
            sign_key.map(|k| format!("\"{k}\"")).as_deref(),
            "",
        );
        let proxy = start(&text).await;
        let mut req = client().get(proxy.url("/pub/x"));
        for name in [
            "X-Session-Signature",
            "x_session_signature",
            "X.Session.Signature",
            "X-SESSION_SIGNATURE",
        ] {
            req = req.header(name, "v1;kid=00000000;t=1;sig=forged");
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
        let seen = backend.last();
        let signatures: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.as_str().replace(['_', '.'], "-") == "x-session-signature")
            .map(|(_, v)| v.to_str().unwrap())
            .collect();
        match sign_key {
            Some(key) => {
                assert_eq!(signatures.len(), 1, "{signatures:?}");
                assert!(!signatures[0].contains("forged"));
                all_accept(
                    &cgi_env(&seen.method, &seen.uri, &seen.headers),
                    key,
                    "the proxy's own",
                );
            }
            None => assert!(signatures.is_empty(), "{signatures:?}"),
        }
    }
}

#[tokio::test]
async fn a_key_rotation_keeps_every_signature_verifiable() {
    let backend = app().await;
    let old = sign_key_id(OLD_SIGN_KEY.as_bytes());
    let new = sign_key_id(SIGN_KEY.as_bytes());
    let text = |keys: &str| site(&backend, Some(keys), "");
    // Before: the old key signs.
    let proxy = start(&text(&format!("\"{OLD_SIGN_KEY}\""))).await;
    let alice = sign_in(&proxy).await;
    let before = forwarded(
        &proxy,
        &backend,
        reqwest::Method::GET,
        "/members/x",
        Some(&alice),
    )
    .await;
    assert!(
        get(&before, "HTTP_X_SESSION_SIGNATURE").starts_with(format!("v1;kid={old};").as_bytes())
    );

    // Step 1: the backends learn the new key beside the old one.
    let both = format!("{OLD_SIGN_KEY} {SIGN_KEY}");
    all_accept(&before, &both, "the old key's signature");

    // Step 2: sessiongate signs with the new key (a reload); the old one is
    // listed second, for `check` to show.
    let config: Config = text(&format!("[\"{SIGN_KEY}\", \"{OLD_SIGN_KEY}\"]"))
        .parse()
        .unwrap();
    proxy.gate().swap_setup(Setup::build(config).unwrap());
    let after = forwarded(
        &proxy,
        &backend,
        reqwest::Method::GET,
        "/members/x",
        Some(&alice),
    )
    .await;
    assert!(
        get(&after, "HTTP_X_SESSION_SIGNATURE").starts_with(format!("v1;kid={new};").as_bytes())
    );
    all_accept(&after, &both, "the new key's signature");
    // Requests signed just before the reload still verify, during the rotation.
    all_accept(&before, &both, "the old key's signature, after the reload");

    // Step 3: the old key is dropped everywhere; its signatures no longer pass.
    all_accept(&after, SIGN_KEY, "the new key's signature");
    all_refuse(
        &before,
        SIGN_KEY,
        "the old key's signature",
        "unknown key id",
    );
}

/// A form kept across a sign-in (`login.replay_max_bytes`) reaches the
/// backend as the POST it was, signed as such for the user who signed in:
/// the verifiers accept it, and refuse it taken for the browser's GET.
#[tokio::test]
async fn a_form_kept_across_sign_in_is_signed_as_the_post_it_was() {
    let backend = Backend::with(|seen| {
        if seen.uri == "/login" && seen.method == "POST" {
            return Reply::ok("welcome")
                .status(303)
                .header("X-Session-Login", "alice");
        }
        Reply::ok("page")
    })
    .await;
    let routes = "[login]\nsource = \"backend\"\npage = \"/login\"\n";
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), routes)).await;
    let c = browser();
    let kept = c
        .post(proxy.url("/members/save?draft=1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("title=report&amount=12")
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.status(),
        303,
        "the form is kept and the browser sent to sign in"
    );
    let signed_in = c.post(proxy.url("/login")).send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    let replayed = c
        .get(proxy.url("/members/save?draft=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let seen = backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(&seen.body[..], b"title=report&amount=12");
    let env = cgi_env(&seen.method, &seen.uri, &seen.headers);
    assert_eq!(get(&env, "HTTP_X_SESSION_USER"), b"alice");
    all_accept(&env, SIGN_KEY, "the replayed form");
    let as_get = with(&env, "REQUEST_METHOD", "GET");
    all_refuse(
        &as_get,
        SIGN_KEY,
        "the replayed form taken for a GET",
        "bad signature",
    );
}

/// A CGI directory: `check.sh` runs all three verifiers as programs,
/// `perl.cgi` and `python.cgi` use them as the docs say a script would,
/// `redirect.cgi` hands over to `check.sh` by a local redirect.
fn cgi_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let verify = repo_root().join("examples/verify");
    let verify = verify.display();
    let scripts = [
        (
            "check.sh",
            format!(
                "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                 for v in verify.sh verify.pl verify.py; do\n\
                 if {verify}/$v 2>&1; then echo \"$v: ok\"; else echo \"$v: refused\"; fi\n\
                 done\n"
            ),
        ),
        (
            "perl.cgi",
            format!(
                "#!/usr/bin/perl\nrequire '{verify}/verify.pl';\n\
                 my $why = sessiongate_verify(\\%ENV);\n\
                 print \"Content-Type: text/plain\\r\\n\\r\\n\", defined $why ? \"refused: $why\" : \"verified: $ENV{{HTTP_X_SESSION_USER}}\";\n"
            ),
        ),
        (
            "python.cgi",
            format!(
                "#!/usr/bin/env python3\nimport os, sys\nsys.dont_write_bytecode = True\n\
                 sys.path.insert(0, \"{verify}\"); from verify import verify\n\
                 why = verify(os.environ)\n\
                 print(\"Content-Type: text/plain\\r\\n\\r\\n\" + (\"refused: \" + why if why else \"verified: \" + os.environ.get(\"HTTP_X_SESSION_USER\", \"\")), end=\"\")\n"
            ),
        ),
        (
            "redirect.cgi",
            "#!/bin/sh\nprintf 'Location: %s\\r\\n\\r\\n' \"${SCRIPT_NAME%/*}/check.sh?from=redirect\"\n"
                .to_owned(),
        ),
    ];
    for (name, text) in scripts {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[tokio::test]
async fn cgi_scripts_verify_what_the_gateway_gives_them() {
    let backend = app().await;
    let dir = cgi_dir();
    let cgi = |path: &str, access: &str, keys: &str| {
        format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"cgi:{}\"\naccess = \"{access}\"\nenv = {{ SESSIONGATE_SIGN_KEYS = \"{keys}\" }}\n",
            dir.path().display()
        )
    };
    let routes = [
        cgi("/cgi/", "public", SIGN_KEY),
        cgi("/members-cgi/", "login", SIGN_KEY),
        // A script that holds only a key sessiongate does not sign with.
        cgi("/stranger/", "public", OLD_SIGN_KEY),
    ]
    .concat();
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), &routes)).await;
    let http = client();
    let body = async |req: reqwest::RequestBuilder| {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    };
    let all_ok = "verify.sh: ok\nverify.pl: ok\nverify.py: ok\n";

    // Public, no session; with PATH_INFO (escapes, a `.`) and a query.
    let text = body(http.get(proxy.url("/cgi/check.sh/a%20b/./%7e/c?x=%41&y"))).await;
    assert_eq!(text, all_ok);
    for script in ["perl.cgi", "python.cgi"] {
        assert_eq!(
            body(http.get(proxy.url(&format!("/cgi/{script}")))).await,
            "verified: "
        );
    }

    // Signed in, with groups and data; a POST with a body.
    let alice = sign_in(&proxy).await;
    let post = http
        .post(proxy.url("/members-cgi/check.sh?step=2"))
        .header("cookie", &alice)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=10");
    assert_eq!(body(post).await, all_ok);
    for script in ["perl.cgi", "python.cgi"] {
        let get = http
            .get(proxy.url(&format!("/members-cgi/{script}")))
            .header("cookie", &alice);
        assert_eq!(body(get).await, "verified: alice");
    }

    // A local redirect runs another script as a GET of its own path: it is
    // signed again for that.
    let redirected = http
        .post(proxy.url("/members-cgi/redirect.cgi"))
        .header("cookie", &alice)
        .body("amount=10");
    assert_eq!(body(redirected).await, all_ok);

    // A forged assertion sent straight at a script is stripped on the way:
    // the script sees sessiongate's, which says who really asks.
    let forged = http
        .get(proxy.url("/cgi/perl.cgi"))
        .header("X-Session-User", "admin")
        .header("X-Session-Signature", "v1;kid=00000000;t=1;sig=x");
    assert_eq!(body(forged).await, "verified: ");

    // Stale, or under a key the script does not hold: refused.
    let text = body(http.get(proxy.url("/stranger/check.sh"))).await;
    assert_eq!(text.matches("unknown key id").count(), 3, "{text}");
    proxy.time.store(unix_now() - 120, Ordering::Relaxed);
    let text = body(http.get(proxy.url("/cgi/check.sh"))).await;
    assert_eq!(text.matches("stale").count(), 3, "{text}");
}

#[tokio::test]
async fn websocket_handshakes_carry_the_signature() {
    let backend = app().await;
    let (echo, seen) = websocket_echo().await;
    let ws =
        format!("\n[[route]]\npath = \"/ws\"\nupstream = \"http://{echo}\"\naccess = \"login\"\n");
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), &ws)).await;
    let alice = sign_in(&proxy).await;
    let mut req = format!("ws://{}/ws/chat?room=1", proxy.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", alice.parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    let headers = seen.lock().unwrap()[0].clone();
    let env = cgi_env("GET", "/ws/chat?room=1", &headers);
    assert_eq!(get(&env, "HTTP_X_SESSION_USER"), b"alice");
    all_accept(&env, SIGN_KEY, "a WebSocket handshake");
}

#[tokio::test]
async fn php_behind_fastcgi_gets_a_signature_that_verifies() {
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let backend = app().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.path().join("php")).unwrap();
    std::fs::set_permissions(
        root.path().join("php"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        root.path().join("php/env.php"),
        "<?php header('Content-Type: application/json'); echo json_encode($_SERVER);",
    )
    .unwrap();
    let route = format!(
        "\n[[route]]\npath = \"/php/\"\nupstream = \"fastcgi://{}\"\nroot = \"{}\"\naccess = \"login\"\n",
        fpm.addr,
        root.path().display()
    );
    let proxy = start(&site(&backend, Some(&format!("\"{SIGN_KEY}\"")), &route)).await;
    let alice = sign_in(&proxy).await;
    let resp = client()
        .get(proxy.url("/php/env.php/more?x=1"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", fpm.output());
    let vars: serde_json::Value = resp.json().await.unwrap();
    let env: Env = vars
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| n.starts_with("HTTP_X_SESSION_") || n.starts_with("REQUEST_"))
        .filter_map(|(n, v)| Some((n.clone(), v.as_str()?.as_bytes().to_vec())))
        .collect();
    assert_eq!(get(&env, "REQUEST_URI"), b"/php/env.php/more?x=1");
    assert_eq!(get(&env, "HTTP_X_SESSION_USER"), b"alice");
    all_accept(&env, SIGN_KEY, "what PHP saw");
}

/// `sessiongate check` names the key ids, never the keys.
#[test]
fn check_shows_key_ids_and_never_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sg.toml");
    std::fs::write(
        &config,
        format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[headers]\nsign_key = [\"env:SG_SIGN_NEW\", \"{OLD_SIGN_KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let out =
        crate::harness::binary::command(&["check", "--config", &config.display().to_string()])
            .env("SG_SIGN_NEW", SIGN_KEY)
            .output()
            .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let line = format!(
        "signed assertion: X-Session-Signature, signed with key id {}; also listed (for verifiers): {}",
        sign_key_id(SIGN_KEY.as_bytes()),
        sign_key_id(OLD_SIGN_KEY.as_bytes())
    );
    assert!(text.contains(&line), "{text}");
    assert!(
        !text.contains(SIGN_KEY) && !text.contains(OLD_SIGN_KEY),
        "{text}"
    );

    // A key too short is refused at its place, and not shown either.
    std::fs::write(
        &config,
        format!(
            "[session]\nsecret_keys = [\"{KEY}\"]\n\n[headers]\nsign_key = \"too-short-sign-key\"\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let out =
        crate::harness::binary::command(&["check", "--config", &config.display().to_string()])
            .output()
            .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(":5:12: sign key 1 is 18 characters"),
        "{text}"
    );
    assert!(!text.contains("too-short-sign-key"), "{text}");
}
