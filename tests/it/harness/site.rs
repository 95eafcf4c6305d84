//! A small site behind the proxy, shared by the persistence, rotation, login
//! and Redis tests: a backend that logs visitors in and remembers things
//! through control headers, the config that puts it behind sessiongate, the
//! three-step key rotation every store must survive, and the requests that
//! race a login, which no store may let sign the user out.

use std::time::Duration;

use sessiongate::config::Config;
use sessiongate::session::Signer;
use sessiongate::setup::Setup;

use super::{Backend, KEY, Proxy, Reply, client, session_cookie, set_cookies};

/// The key cookies are signed with before a rotation.
pub const OLD_KEY: &str = "old-key-0123456789-abcdefghijklmnopq";
/// The key that replaces it.
pub const NEW_KEY: &str = "new-key-0123456789-abcdefghijklmnopq";

/// A backend that answers:
/// - `/signin`: logs the visitor in as alice and sets `cart=3`;
/// - `/remember`: sets `n=1`;
/// - `/add?KEY`: sets `KEY=1`;
/// - `/slow`: answers after two seconds;
/// - anything else: a plain page.
pub async fn app() -> Backend {
    Backend::with(|seen| {
        let (path, query) = seen.uri.split_once('?').unwrap_or((&seen.uri, ""));
        match path {
            "/signin" => Reply::ok("welcome")
                .header("X-Session-Login", "alice")
                .header("X-Session-Set", "cart=3"),
            "/remember" => Reply::ok("noted").header("X-Session-Set", "n=1"),
            "/add" => Reply::ok("added").header("X-Session-Set", &format!("{query}=1")),
            "/slow" => Reply {
                delay: Some(Duration::from_secs(2)),
                ..Reply::ok("finally")
            },
            _ => Reply::ok("page"),
        }
    })
    .await
}

/// The site's config (without `[server]`): `/members/` needs a login,
/// `/pub/` is public, everything else needs a session; `store` is the
/// `[store]` section, or empty for the default.
pub fn site(backend: &Backend, keys: &[&str], store: &str) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    let mut s = format!(
        "[session]\nsecret_keys = [{}]\n\n{store}\n",
        keys.join(", ")
    );
    for (path, access) in [
        ("/members/", "login"),
        ("/pub/", "public"),
        ("/", "session"),
    ] {
        s.push_str(&format!(
            "\n[[route]]\npath = \"{path}\"\nupstream = \"{}\"\naccess = \"{access}\"\n",
            backend.url()
        ));
    }
    s
}

/// `[store]` for a Redis URL and key prefix.
pub fn redis_store(url: &str, key_prefix: &str) -> String {
    format!("[store]\nkind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{key_prefix}\"\n")
}

/// Visits `/signin` on the proxy at `base` (`http://host:port`) and returns
/// the session cookie it sets.
pub async fn sign_in(base: &str) -> String {
    let resp = client().get(format!("{base}/signin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    session_cookie(&resp).expect("a login sets the session cookie")
}

/// GETs `path` with `cookie`; returns the status and what the backend was
/// told about the session (user, data) when the request reached it.
pub async fn visit(
    base: &str,
    backend: &Backend,
    path: &str,
    cookie: &str,
) -> (u16, Option<String>, String) {
    let before = backend.seen().len();
    let resp = client()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if backend.seen().len() == before {
        return (status, None, String::new());
    }
    let seen = backend.last();
    (
        status,
        seen.header("x-session-user"),
        seen.header("x-session-data").unwrap_or_default(),
    )
}

/// Which of the keys signed a `name=value` cookie.
fn signed_by(proxy: &Proxy, cookie: &str, key: &str) -> bool {
    let value = cookie.split_once('=').map_or("", |(_, v)| v);
    let now = proxy.now();
    Signer::new(&[key.as_bytes().to_vec()])
        .decode(value, now, 86_400)
        .is_ok()
}

/// Puts a new config in force in a running proxy, as SIGHUP does.
fn reload(proxy: &Proxy, toml: &str) {
    let config: Config = toml.parse().unwrap();
    proxy.gate().swap_setup(Setup::build(config).unwrap());
}

/// The rotation procedure an operator follows, against one store:
/// `[old]` → `[new, old]` (old cookies still valid, new ones signed with
/// the new key) → `[new]` (old cookies no longer accepted).
pub async fn three_step_rotation(store: &str) {
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, &[OLD_KEY], store)).await;
    let base = proxy.url("");

    // Step 0: only the old key.
    let before = sign_in(&base).await;
    assert!(signed_by(&proxy, &before, OLD_KEY));

    // Step 1: the new key first, the old one still verifying.
    reload(&proxy, &site(&backend, &[NEW_KEY, OLD_KEY], store));
    assert_eq!(
        visit(&base, &backend, "/members/a", &before).await,
        (200, Some("alice".into()), "cart=3".into()),
        "a cookie signed with the old key still works"
    );
    let after = sign_in(&base).await;
    assert!(
        signed_by(&proxy, &after, NEW_KEY),
        "new cookies use the new key"
    );
    assert!(!signed_by(&proxy, &after, OLD_KEY));
    let anonymous = client().get(proxy.url("/")).send().await.unwrap();
    let anonymous = session_cookie(&anonymous).unwrap();
    assert!(signed_by(&proxy, &anonymous, NEW_KEY));

    // Step 2: the old key retired, once every old cookie could have expired
    // (max_lifetime) or been replaced.
    reload(&proxy, &site(&backend, &[NEW_KEY], store));
    let (status, user, _) = visit(&base, &backend, "/members/a", &before).await;
    assert_eq!(
        (status, user),
        (302, None),
        "an old-key cookie is no session any more"
    );
    assert_eq!(
        visit(&base, &backend, "/members/a", &after).await,
        (200, Some("alice".into()), "cart=3".into())
    );
}

/// How many requests race a login in [`requests_racing_a_login`].
const RACERS: usize = 50;

/// Sends [`RACERS`] requests with `cookie` to the proxy at `base`, all in
/// flight at once, over the three kinds of route: `/members/x` (login),
/// `/pub/x` (public) and `/add?kN` (session, and the backend stores `kN`).
/// Returns, per request, the path, the status, the `Location` and every
/// `Set-Cookie`.
async fn race(base: &str, cookie: &str) -> Vec<(String, u16, String, Vec<String>)> {
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let path = match i % 5 {
                0 => "/members/x".to_string(),
                1 => "/pub/x".to_string(),
                _ => format!("/add?k{i}"),
            };
            let request = client()
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send();
            tokio::spawn(async move {
                let resp = request.await.unwrap();
                let location = resp
                    .headers()
                    .get("location")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                (path, resp.status().as_u16(), location, set_cookies(&resp))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// A browser signs in through the backend (`/signin` answers
/// `X-Session-Login`) while other requests of it still carry the pre-login
/// cookie. None of those may get a `Set-Cookie`: whichever answer arrived
/// last would set the browser's cookie, and a new anonymous session there
/// would sign the user out. None gets a session, none changes one, and a
/// `login` route sends them to sign in without `expired=1`. Against one
/// store (`store` is a `[store]` section, empty for memory), for a
/// pre-login session that held data and for one that never did, with the
/// requests sent right after the login's answer, then with a login in flight.
pub async fn requests_racing_a_login(store: &str) {
    let backend = app().await;
    let proxy = Proxy::start(&site(&backend, &[KEY], store)).await;
    let base = proxy.url("");
    for (first, data) in [("/remember", "n=1&cart=3"), ("/page", "cart=3")] {
        let resp = client().get(format!("{base}{first}")).send().await.unwrap();
        let before = session_cookie(&resp).expect("a first visit sets a cookie");
        let resp = client()
            .get(format!("{base}/signin"))
            .header("cookie", &before)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let after = session_cookie(&resp).expect("a login sets a new cookie");
        assert_ne!(after, before);

        let seen = backend.seen().len();
        for (path, status, location, cookies) in race(&base, &before).await {
            assert!(
                cookies.is_empty(),
                "after {first}: {path} with the pre-login cookie set {cookies:?}"
            );
            if path.starts_with("/members/") {
                assert_eq!(
                    (status, location.as_str()),
                    (302, "/.sessiongate/login?next=%2Fmembers%2Fx"),
                    "after {first}: signed in just now, not expired"
                );
            } else {
                assert_eq!(status, 200, "after {first}: {path}");
            }
        }
        for request in &backend.seen()[seen..] {
            assert_eq!(
                request.header("x-session-created"),
                None,
                "after {first}: {} was forwarded with a session",
                request.uri
            );
        }
        assert_eq!(
            visit(&base, &backend, "/members/x", &after).await,
            (200, Some("alice".into()), data.into()),
            "after {first}: the login stands, and no racing update landed in it"
        );
        // A second login with the pre-login cookie (a form sent twice) is a
        // login of its own: a new id, and the backend's data in it.
        let resp = client()
            .get(format!("{base}/signin"))
            .header("cookie", &before)
            .send()
            .await
            .unwrap();
        let again = session_cookie(&resp).expect("a login sets a cookie");
        assert!(again != before && again != after);
        assert_eq!(
            visit(&base, &backend, "/members/x", &again).await,
            (200, Some("alice".into()), "cart=3".into())
        );
    }

    // The requests leave while the login is in flight: those the proxy
    // handles first still meet the old session, the others its mark.
    let resp = client()
        .get(format!("{base}/remember"))
        .send()
        .await
        .unwrap();
    let before = session_cookie(&resp).unwrap();
    let login = tokio::spawn(
        client()
            .get(format!("{base}/signin"))
            .header("cookie", &before)
            .send(),
    );
    for (path, _, _, cookies) in race(&base, &before).await {
        assert!(
            cookies.is_empty(),
            "{path} racing the login set {cookies:?}"
        );
    }
    let after = session_cookie(&login.await.unwrap().unwrap()).unwrap();
    let (status, user, data) = visit(&base, &backend, "/members/x", &after).await;
    assert_eq!((status, user.as_deref()), (200, Some("alice")));
    let data = sessiongate::session::data::decode(&data);
    for kept in [("n", "1"), ("cart", "3")] {
        assert!(
            data.contains(&(kept.0.into(), kept.1.into())),
            "{kept:?} not in {data:?}"
        );
    }
}
