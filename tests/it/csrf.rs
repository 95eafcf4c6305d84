//! The cross-site shield (`csrf = "origin"`) with real requests through the
//! proxy to a backend that records what reaches it: session, login and
//! public routes, a route with the shield off, trusted origins,
//! `X-Forwarded-Proto` behind a trusted proxy, the Basic exemption, the
//! built-in endpoints, the 403 page and its JSON, and the counter in a
//! scrape `promtool` accepts. Driven with reqwest and with curl.

use http::StatusCode;

use crate::harness::form::{ALICE, ALICE_PASSWORD, csrf_of, form_sign_in};
use crate::harness::programs::{prometheus_tool, promtool};
use crate::harness::{Backend, Proxy, browser, client, config, set_cookies};
use sessiongate::admin::exposition::{Exposition, Format};

/// What a browser's form POST says about where it comes from.
enum Sender {
    /// `Sec-Fetch-Site` and `Origin`, as a modern browser sends them.
    Fetch(&'static str, &'static str),
    /// `Origin` alone, as an older browser does.
    Origin(&'static str),
    /// `Referer` alone.
    Referer(&'static str),
    /// Nothing: a script.
    Nothing,
}

/// A proxy with a session, a login, a public, a public-with-shield and a
/// shield-off route to one recording backend, trusting one partner origin.
struct Site {
    proxy: Proxy,
    backend: Backend,
    _dir: tempfile::TempDir,
}

const PARTNER: &str = "https://partner.example.net";

async fn site(server_extra: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n")).unwrap();
    let backend = Backend::start().await;
    let mut text = config(
        &[
            ("/", &backend.url(), "public"),
            ("/shielded/", &backend.url(), "public"),
            ("/app/", &backend.url(), "session"),
            ("/api/", &backend.url(), "session"),
            ("/members/", &backend.url(), "login"),
            ("/scripts/", &backend.url(), "login"),
        ],
        &format!(
            "[server]\ntrusted_origins = [\"{PARTNER}\"]\n{server_extra}\n\n[login]\nusers_file = \"{}\"\n",
            users.display()
        ),
    );
    for (path, key) in [
        ("/shielded/", "csrf = \"origin\""),
        ("/api/", "csrf = \"off\""),
        ("/scripts/", "basic_auth = true"),
    ] {
        let route = format!("path = \"{path}\"\n");
        let at = text.find(&route).unwrap() + route.len();
        text = format!("{}{key}\n{}", &text[..at], &text[at..]);
    }
    Site {
        proxy: Proxy::start(&text).await,
        backend,
        _dir: dir,
    }
}

impl Site {
    /// The proxy's own origin.
    fn own(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    /// POSTs a form to `path` as `from` says; returns the answer.
    async fn post(&self, path: &str, from: &Sender) -> reqwest::Response {
        let mut req = client()
            .post(self.proxy.url(path))
            .header("accept", "text/html")
            .form(&[("comment", "hello")]);
        req = match from {
            Sender::Fetch(site, origin) => req
                .header("sec-fetch-site", *site)
                .header("origin", *origin),
            Sender::Origin(origin) => req.header("origin", *origin),
            Sender::Referer(referer) => req.header("referer", *referer),
            Sender::Nothing => req,
        };
        req.send().await.unwrap()
    }

    /// How many requests the backend received.
    fn reached(&self) -> usize {
        self.backend.seen().len()
    }

    /// The refusals counted on the route labelled `label`.
    fn refused(&self, label: &str) -> u64 {
        let setup = self.proxy.gate().setup();
        let path = label.trim_end_matches('/').to_string() + "/x";
        if label == "/.sessiongate" {
            return setup.meters.builtin().csrf_refused();
        }
        setup.route(None, &path).unwrap().meter.csrf_refused()
    }
}

#[tokio::test]
async fn a_session_route_refuses_other_sites_forms_and_makes_no_session_for_them() {
    let s = site("").await;
    let own = s.own();
    let own: &'static str = Box::leak(own.into_boxed_str());
    for from in [
        Sender::Fetch("cross-site", "https://evil.example"),
        Sender::Fetch("same-site", "http://sibling.127.0.0.1.nip.io"),
        Sender::Origin("https://evil.example"),
        Sender::Origin("null"),
        Sender::Referer("https://evil.example/attack.html"),
    ] {
        let resp = s.post("/app/form", &from).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(
            set_cookies(&resp).is_empty(),
            "no session for a refused request"
        );
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let page = resp.text().await.unwrap();
        assert!(page.contains("sent from another site"), "{page}");
    }
    assert_eq!(s.reached(), 0, "nothing reached the backend");
    assert_eq!(s.refused("/app/"), 5);

    for from in [
        Sender::Fetch("same-origin", "https://whatever.example"),
        Sender::Fetch("none", "null"),
        Sender::Origin(own),
        Sender::Referer(Box::leak(format!("{own}/app/form.html").into_boxed_str())),
        Sender::Nothing,
    ] {
        let resp = s.post("/app/form", &from).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(s.reached(), 5);
    let seen = s.backend.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(&seen.body[..], b"comment=hello");
    assert_eq!(s.refused("/app/"), 5);

    // Safe methods pass whatever they carry.
    let get = client()
        .get(s.proxy.url("/app/page"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_json_client_is_told_in_json() {
    let s = site("").await;
    let resp = client()
        .put(s.proxy.url("/app/thing"))
        .header("accept", "application/json")
        .header("origin", "https://evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"cross_site_request"}"#
    );
    assert_eq!(s.reached(), 0);
}

#[tokio::test]
async fn a_login_route_refuses_before_the_login_redirect_and_public_routes_choose() {
    let s = site("").await;
    // Signed in or not, another site's form goes nowhere.
    let resp = s
        .post("/members/form", &Sender::Origin("https://evil.example"))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let cookie = form_sign_in(&s.proxy, "alice", ALICE_PASSWORD).await;
    let signed_in = client()
        .post(s.proxy.url("/members/form"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .form(&[("comment", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.reached(), 0);
    let own = s.own();
    let mine = client()
        .post(s.proxy.url("/members/form"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &own)
        .form(&[("comment", "hello")])
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(
        s.backend.last().header("x-session-user").as_deref(),
        Some("alice")
    );
    assert_eq!(s.refused("/members/"), 2);

    // Public: off unless the route says origin; `csrf = "off"` on a
    // session route lets everything through.
    let evil = Sender::Fetch("cross-site", "https://evil.example");
    assert_eq!(s.post("/", &evil).await.status(), StatusCode::OK);
    assert_eq!(s.post("/api/x", &evil).await.status(), StatusCode::OK);
    assert_eq!(
        s.post("/shielded/x", &evil).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.reached(), 3);
    assert_eq!(s.refused("/shielded/"), 1);
    assert_eq!(s.refused("/api/"), 0);
}

#[tokio::test]
async fn a_trusted_origin_may_post_even_cross_site() {
    let s = site("").await;
    for from in [
        Sender::Fetch("cross-site", PARTNER),
        Sender::Fetch("same-site", "https://PARTNER.example.net:443"),
        Sender::Origin(PARTNER),
        Sender::Referer("https://partner.example.net/page?x=1"),
    ] {
        assert_eq!(s.post("/app/x", &from).await.status(), StatusCode::OK);
    }
    assert_eq!(
        s.post("/app/x", &Sender::Origin("http://partner.example.net"))
            .await
            .status(),
        StatusCode::FORBIDDEN,
        "another scheme is another origin"
    );
    assert_eq!(s.reached(), 4);
}

#[tokio::test]
async fn the_scheme_behind_a_trusted_proxy_is_the_forwarded_one() {
    let post = |proxy: &Proxy, forwarded: Option<&str>| {
        let mut req = client()
            .post(proxy.url("/app/x"))
            .header("host", "app.example.org")
            .header("origin", "https://app.example.org")
            .form(&[("a", "b")]);
        if let Some(proto) = forwarded {
            req = req.header("x-forwarded-proto", proto);
        }
        req.send()
    };
    let behind = site("trusted_proxies = [\"127.0.0.1\"]").await;
    let ok = post(&behind.proxy, Some("https")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "https, as the proxy says");
    let plain = post(&behind.proxy, None).await.unwrap();
    assert_eq!(plain.status(), StatusCode::FORBIDDEN, "http, no proxy word");
    assert_eq!(behind.reached(), 1);

    // From a peer that is not trusted, its X-Forwarded-Proto means nothing.
    let direct = site("").await;
    let claimed = post(&direct.proxy, Some("https")).await.unwrap();
    assert_eq!(claimed.status(), StatusCode::FORBIDDEN);
    assert_eq!(direct.reached(), 0);
}

#[tokio::test]
async fn scripts_with_basic_credentials_pass_and_browsers_carrying_them_do_not() {
    let s = site("").await;
    let url = s.proxy.url("/scripts/run");
    assert_eq!(curl(&url, &[]).await, "200");
    assert_eq!(
        curl(&url, &["-H", "Origin: https://evil.example"]).await,
        "200"
    );
    assert_eq!(s.reached(), 2);
    let cross = [
        "-H",
        "Origin: https://evil.example",
        "-H",
        "Sec-Fetch-Site: cross-site",
    ];
    assert_eq!(
        curl(&url, &cross).await,
        "403",
        "a browser says where the form comes from"
    );
    assert_eq!(s.reached(), 2);
    // The exemption is for Basic routes only.
    let members = s.proxy.url("/members/x");
    assert_eq!(
        curl(&members, &["-H", "Origin: https://evil.example"]).await,
        "403"
    );
    assert_eq!(s.reached(), 2);
}

/// `curl -u alice:... -d job=nightly EXTRA URL`: the status it got.
async fn curl(url: &str, extra: &[&str]) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u"])
        .arg(format!("alice:{ALICE_PASSWORD}"))
        .args(["-d", "job=nightly"])
        .args(extra)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_builtin_endpoints_are_shielded_and_the_login_form_still_works() {
    let s = site("").await;
    let own = s.own();
    let b = browser();
    let page = b
        .get(s.proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let form = [
        ("username", "alice"),
        ("password", ALICE_PASSWORD),
        ("next", "/members/"),
        ("csrf", csrf.as_str()),
    ];
    let evil = b
        .post(s.proxy.url("/.sessiongate/login"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN, "login CSRF refused");
    assert!(set_cookies(&evil).is_empty());
    let signed_in = b
        .post(s.proxy.url("/.sessiongate/login"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &own)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);

    // Another site cannot sign the user out.
    let logout = b
        .post(s.proxy.url("/.sessiongate/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    let still = b.get(s.proxy.url("/members/")).send().await.unwrap();
    assert_eq!(still.status(), StatusCode::OK, "still signed in");
    assert_eq!(s.refused("/.sessiongate"), 2);
}

#[tokio::test]
async fn refusals_are_counted_in_a_scrape_promtool_accepts() {
    let s = site("").await;
    let evil = Sender::Origin("https://evil.example");
    for _ in 0..3 {
        s.post("/app/x", &evil).await;
    }
    let exposition = Exposition::new(s.proxy.running.as_ref().unwrap().gate.clone());
    let text = exposition.encode(Format::Prometheus).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "sessiongate_csrf_refused_total{route=\"/app/\"} 3"),
        "{text}"
    );
    assert!(text.contains("sessiongate_csrf_refused_total{route=\"/api/\"} 0"));
    if !prometheus_tool("promtool") {
        return;
    }
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
}
