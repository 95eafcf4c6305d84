//! The admin listener (`admin.listen`) in front of real traffic: the token
//! on every endpoint, health and readiness (with Redis stopped and back),
//! metrics that move with requests, logins, upstream errors and session
//! ends, their text checked by `promtool` and scraped by a real Prometheus
//! server, a reload's new token, and the sessions API.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package. In
//! CI (`CI` set) a missing one fails its test; elsewhere the test says so
//! and returns. The Redis tests follow tests/redis.rs (`redis-server`, or
//! `SESSIONGATE_SKIP_REDIS=1`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::binary::Binary;
use crate::harness::process::{BUDGET, Proc, answers, free_port};
use crate::harness::programs::{prometheus_tool, promtool};
use crate::harness::redis_server::{Redis, redis_available};
use crate::harness::*;
use nix::sys::signal::Signal;
use sessiongate::config::Config;
use sessiongate::setup::Setup;

const TOKEN: &str = "admin-token-for-tests";
/// What a scrape must take at most, and a real Prometheus to see the target up.
const SCRAPE_BUDGET: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// The admin listener's address of an in-process proxy.
fn admin_addr(proxy: &Proxy) -> SocketAddr {
    proxy
        .running
        .as_ref()
        .and_then(|r| r.admin_addr)
        .expect("the admin listener is running")
}

/// `[admin]` on an ephemeral loopback port, with `token` when given.
fn admin_section(token: Option<&str>) -> String {
    let token = token.map_or(String::new(), |t| format!("token = \"{t}\"\n"));
    format!("\n[admin]\nlisten = \"127.0.0.1:0\"\n{token}")
}

/// A request to the admin listener, with `Authorization: Bearer` when given.
async fn admin(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// The Prometheus text of `/metrics`.
async fn scrape(addr: SocketAddr, token: Option<&str>) -> String {
    let resp = admin(addr, "GET", "/metrics", token).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    resp.text().await.unwrap()
}

/// The value of one series (`name{labels}` exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `series` has `want`, within [`SCRAPE_BUDGET`].
async fn until_sample(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = Instant::now() + SCRAPE_BUDGET;
    loop {
        let text = scrape(addr, None).await;
        if sample(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {want}:\n{text}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// GETs `/readyz` until it answers `want`, within [`BUDGET`]; returns the body.
async fn until_ready_is(addr: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + BUDGET;
    loop {
        let resp = admin(addr, "GET", "/readyz", None).await;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {want} (last: {status} {body})"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[test]
fn check_refuses_a_non_loopback_admin_listener_without_a_token() {
    let with = |admin: &str| config(&[("/", "http://127.0.0.1:9", "public")], admin);
    let refused = with("[admin]\nlisten = \"0.0.0.0:9901\"\n")
        .parse::<Config>()
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("admin.listen is not a loopback address: set admin.token"),
        "{refused}"
    );
    for fine in [
        "[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"t\"\n",
        "[admin]\nlisten = \"127.0.0.1:9901\"\n",
        "[admin]\nlisten = \"[::1]:9901\"\n",
        "[admin]\nlisten = \"localhost:9901\"\n",
        "",
    ] {
        let parsed = with(fine).parse::<Config>();
        assert!(parsed.is_ok(), "{fine}: {:?}", parsed.err());
    }
}

#[tokio::test]
async fn every_endpoint_needs_the_token_when_one_is_set() {
    let proxy = Proxy::start(&config(
        &[("/", "http://127.0.0.1:9", "public")],
        &admin_section(Some(TOKEN)),
    ))
    .await;
    let addr = admin_addr(&proxy);
    assert_ne!(addr, proxy.addr, "never the proxy's listener");
    let endpoints = [
        ("GET", "/healthz", 200),
        ("HEAD", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/sessions?user=alice", 200),
        ("DELETE", "/sessions?user=alice", 200),
        ("DELETE", "/sessions/0123456789ab", 404),
        ("GET", "/sessions", 400),
        ("DELETE", "/sessions", 400),
        ("DELETE", "/sessions/not-a-tag", 404),
        ("GET", "/nowhere", 404),
        ("POST", "/healthz", 405),
        ("PUT", "/sessions", 405),
    ];
    for (method, path, status) in endpoints {
        for wrong in [None, Some("wrong"), Some("admin-token-for-test")] {
            let resp = admin(addr, method, path, wrong).await;
            assert_eq!(resp.status(), 401, "{method} {path} with {wrong:?}");
            assert!(
                resp.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {path}"
            );
        }
        let resp = admin(addr, method, path, Some(TOKEN)).await;
        assert_eq!(resp.status(), status, "{method} {path}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        if status == 405 {
            assert!(resp.headers().contains_key("allow"), "{method} {path}");
        }
    }
    let ok = admin(addr, "GET", "/healthz", Some(TOKEN)).await;
    assert_eq!(ok.text().await.unwrap(), "ok\n");
    let missing = admin(addr, "GET", "/sessions", Some(TOKEN)).await;
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "the user parameter is required");
    // The admin listener's own requests are not the proxy's traffic.
    let text = scrape(addr, Some(TOKEN)).await;
    assert!(!text.contains("sessiongate_requests_total{"), "{text}");
}

#[tokio::test]
async fn a_reload_applies_a_new_token_at_once() {
    let routes = [("/", "http://127.0.0.1:9", "public")];
    let proxy = Proxy::start(&config(&routes, &admin_section(Some(TOKEN)))).await;
    let addr = admin_addr(&proxy);
    assert_eq!(
        admin(addr, "GET", "/healthz", Some(TOKEN)).await.status(),
        200
    );
    let reloaded: Config = config(&routes, &admin_section(Some("the-new-token")))
        .parse()
        .unwrap();
    proxy.gate().swap_setup(Setup::build(reloaded).unwrap());
    assert_eq!(
        admin(addr, "GET", "/healthz", Some(TOKEN)).await.status(),
        401
    );
    let new = admin(addr, "GET", "/healthz", Some("the-new-token")).await;
    assert_eq!(new.status(), 200);
    // Without a token, a loopback listener answers anyone.
    let open: Config = config(&routes, &admin_section(None)).parse().unwrap();
    proxy.gate().swap_setup(Setup::build(open).unwrap());
    assert_eq!(admin(addr, "GET", "/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn sighup_applies_the_token_and_a_new_address_waits_for_a_restart() {
    let backend = Backend::start().await;
    let admin_at: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let body = |token: &str, listen: SocketAddr| {
        config(
            &[("/", &backend.url(), "public")],
            &format!("\n[admin]\nlisten = \"{listen}\"\ntoken = \"{token}\"\n"),
        )
    };
    let mut gateway = Binary::new(&body("first", admin_at)).start().await;
    gateway.proc.wait_listening(admin_at).await;
    assert_eq!(
        admin(admin_at, "GET", "/readyz", Some("first"))
            .await
            .status(),
        200
    );

    let elsewhere: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let text = std::fs::read_to_string(&gateway.config).unwrap();
    let text = text
        .replace("\"first\"", "\"second\"")
        .replace(&admin_at.to_string(), &elsewhere.to_string());
    std::fs::write(&gateway.config, text).unwrap();
    gateway.signal(Signal::SIGHUP);
    let deadline = Instant::now() + BUDGET;
    while admin(admin_at, "GET", "/healthz", Some("second"))
        .await
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "{}", gateway.proc.output());
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        admin(admin_at, "GET", "/healthz", Some("first"))
            .await
            .status(),
        401
    );
    assert!(!answers(elsewhere));
    gateway.logged("admin.listen changed").await;
    // SIGTERM drains the admin listener with the others.
    let status = gateway.terminate().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn readyz_follows_redis_away_and_back() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path()).await;
    let backend = Backend::start().await;
    let store = format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"adm:\"\n{}",
        redis.url(),
        admin_section(None)
    );
    let proxy = Proxy::start(&config(&[("/", &backend.url(), "session")], &store)).await;
    let addr = admin_addr(&proxy);
    assert_eq!(until_ready_is(addr, 200).await, "ready\n");
    assert_eq!(admin(addr, "GET", "/healthz", None).await.status(), 200);

    // Stopped, not dead: the connection stays open and nothing answers.
    redis.signal(Signal::SIGSTOP);
    let started = Instant::now();
    let why = until_ready_is(addr, 503).await;
    assert!(why.starts_with("not ready: "), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(admin(addr, "GET", "/healthz", None).await.status(), 200);
    redis.signal(Signal::SIGCONT);
    until_ready_is(addr, 200).await;

    // Gone.
    redis.kill();
    let why = until_ready_is(addr, 503).await;
    // Refused at once, or given up on after the probe's second.
    assert!(why.starts_with("not ready: "), "{why}");
    redis.restart().await;
    until_ready_is(addr, 200).await;

    // With Redis, the stored sessions are not counted at each scrape, and
    // nothing counts the sessions Redis expires by itself.
    let text = scrape(addr, None).await;
    assert!(!text.contains("sessiongate_sessions_active"), "{text}");
    assert!(!text.contains("reason=\"expired\""), "{text}");
    assert!(
        text.contains("sessiongate_sessions_ended_total{reason=\"logout\"} 0"),
        "{text}"
    );
}

/// Writes a users file with `alice:wonderland` and `bob:builder`.
fn users_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("users");
    let text = format!(
        "alice:{}\nbob:{}\n",
        sessiongate::login::hash_password("wonderland").unwrap(),
        sessiongate::login::hash_password("builder").unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of the hidden csrf field in a login page.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\"").expect("a csrf field");
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let v = tag.find("value=\"").unwrap() + 7;
    tag[v..v + tag[v..].find('"').unwrap()].to_string()
}

/// Posts the built-in login form as `user`; the status.
async fn log_in(c: &reqwest::Client, proxy: &Proxy, user: &str, password: &str) -> u16 {
    let page = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    c.post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("next", "/app/"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A site with public, session and dead routes, the built-in login, a
/// memory store of two sessions at most whose sessions idle out in four
/// seconds (so the sweeper runs every second), and the admin listener.
async fn busy_site(dir: &Path) -> (Backend, Proxy, String) {
    let backend = Backend::with(|seen| match seen.uri.as_str() {
        "/pub/remember" => Reply::ok("noted").header("X-Session-Set", "n=1"),
        _ => Reply::ok("page"),
    })
    .await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let extra = format!(
        "idle_timeout = \"4s\"\ntouch_interval = \"1s\"\n\n[store]\nmax_sessions = 2\n\n\
         [login]\nusers_file = \"{}\"\nmax_attempts = 2\n{}",
        users_file(dir).display(),
        admin_section(None)
    );
    let text = config(
        &[
            ("/pub/", &backend.url(), "public"),
            ("/app/", &backend.url(), "session"),
            ("/down/", &dead, "public"),
        ],
        &extra,
    );
    let proxy = Proxy::start(&text).await;
    (backend, proxy, text)
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, proxy, text) = busy_site(dir.path()).await;
    let addr = admin_addr(&proxy);
    let get = |path: &str| client().get(proxy.url(path)).send();
    for _ in 0..3 {
        assert_eq!(get("/pub/a").await.unwrap().status(), 200);
    }
    assert_eq!(get("/nowhere").await.unwrap().status(), 404);
    assert_eq!(get("/down/x").await.unwrap().status(), 502);
    assert_eq!(get("/app/x").await.unwrap().status(), 200);

    // The built-in login: one failure, one success, a logout; then bob
    // fails until the throttle steps in.
    let alice = browser();
    assert_eq!(log_in(&alice, &proxy, "alice", "nope").await, 401);
    assert_eq!(log_in(&alice, &proxy, "alice", "wonderland").await, 303);
    let out = alice
        .post(proxy.url("/.sessiongate/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let mut failed = 1;
    let mut throttled = false;
    for _ in 0..5 {
        match log_in(&browser(), &proxy, "bob", "nope").await {
            401 => failed += 1,
            429 => {
                throttled = true;
                break;
            }
            other => panic!("a wrong password answered {other}"),
        }
    }
    assert!(throttled, "the throttle never refused bob");

    // Three stored sessions in a store of two: one evicted.
    for _ in 0..3 {
        assert_eq!(get("/pub/remember").await.unwrap().status(), 200);
    }

    let m = scrape(addr, None).await;
    let at = |series: &str| sample(&m, series).unwrap_or_else(|| panic!("no {series} in\n{m}"));
    assert_eq!(
        at(r#"sessiongate_requests_total{route="/pub/",status="200"}"#),
        6.0
    );
    assert_eq!(
        at(r#"sessiongate_requests_total{route="-",status="404"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_requests_total{route="/down/",status="502"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_requests_total{route="/app/",status="200"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_requests_total{route="/.sessiongate",status="303"}"#),
        2.0
    );
    assert_eq!(
        at(r#"sessiongate_upstream_errors_total{route="/down/"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_upstream_errors_total{route="/pub/"}"#),
        0.0
    );
    assert_eq!(
        at(r#"sessiongate_request_duration_seconds_count{route="/pub/"}"#),
        6.0
    );
    assert_eq!(
        at(r#"sessiongate_request_duration_seconds_bucket{route="/pub/",le="+Inf"}"#),
        6.0
    );
    assert_eq!(
        at(r#"sessiongate_request_duration_seconds_bucket{route="/pub/",le="10"}"#),
        6.0
    );
    assert!(at(r#"sessiongate_request_duration_seconds_sum{route="/pub/"}"#) > 0.0);
    assert_eq!(at(r#"sessiongate_logins_total{result="ok"}"#), 1.0);
    assert_eq!(
        at(r#"sessiongate_logins_total{result="failed"}"#),
        f64::from(failed)
    );
    assert_eq!(at(r#"sessiongate_logins_total{result="throttled"}"#), 1.0);
    assert_eq!(
        at(r#"sessiongate_sessions_ended_total{reason="logout"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_sessions_ended_total{reason="evicted"}"#),
        1.0
    );
    assert_eq!(
        at(r#"sessiongate_sessions_ended_total{reason="revoked"}"#),
        0.0
    );
    assert_eq!(at("sessiongate_sessions_active"), 2.0);
    // /app/ issued one, the login one, each /pub/remember one.
    assert_eq!(at("sessiongate_sessions_created_total"), 5.0);
    assert_eq!(at("sessiongate_store_errors_total"), 0.0);
    assert_eq!(at("sessiongate_session_updates_refused_total"), 0.0);
    assert!(at("process_resident_memory_bytes") > 0.0);
    assert!(at("process_open_fds") > 0.0);
    assert!(at("process_start_time_seconds") > 1.6e9);

    // The sweeper ends the two left once they idled out.
    proxy.advance(10);
    let m = until_sample(
        addr,
        r#"sessiongate_sessions_ended_total{reason="expired"}"#,
        2.0,
    )
    .await;
    assert_eq!(sample(&m, "sessiongate_sessions_active"), Some(0.0));

    // A reload keeps every total.
    proxy
        .gate()
        .swap_setup(Setup::build(text.parse().unwrap()).unwrap());
    assert_eq!(get("/pub/a").await.unwrap().status(), 200);
    let m = scrape(addr, None).await;
    assert_eq!(
        sample(
            &m,
            r#"sessiongate_requests_total{route="/pub/",status="200"}"#
        ),
        Some(7.0)
    );
    assert_eq!(
        sample(&m, r#"sessiongate_upstream_errors_total{route="/down/"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn openmetrics_when_the_scraper_asks_for_it() {
    let proxy = Proxy::start(&config(
        &[("/", "http://127.0.0.1:9", "public")],
        &admin_section(None),
    ))
    .await;
    let addr = admin_addr(&proxy);
    client().get(proxy.url("/x")).send().await.unwrap();
    let resp = client()
        .get(format!("http://{addr}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE sessiongate_requests counter\n"),
        "{text}"
    );
    assert!(
        text.contains("sessiongate_requests_total{route=\"/\",status=\"502\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn promtool_finds_nothing_to_say_about_the_metrics() {
    if !prometheus_tool("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_backend, proxy, _) = busy_site(dir.path()).await;
    let addr = admin_addr(&proxy);
    for path in [
        "/pub/a",
        "/nowhere",
        "/down/x",
        "/app/x",
        "/.sessiongate/login",
    ] {
        client().get(proxy.url(path)).send().await.unwrap();
    }
    let text = scrape(addr, None).await;
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    // It does find fault where there is some: the check is real.
    let (ok, said) = promtool("# TYPE requests counter\nrequests 1\n");
    assert!(!ok || !said.trim().is_empty(), "promtool said nothing");
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_admin_listener() {
    if !prometheus_tool("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&config(
        &[("/", "http://127.0.0.1:9", "public")],
        &admin_section(Some(TOKEN)),
    ))
    .await;
    let target = admin_addr(&proxy);
    client().get(proxy.url("/x")).send().await.unwrap();
    let yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &yml,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: sessiongate\n    \
             authorization:\n      type: Bearer\n      credentials: {TOKEN}\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut command = Command::new("prometheus");
    command
        .arg(format!("--config.file={}", yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .current_dir(dir.path());
    let mut prometheus = Proc::spawn(command, "prometheus");
    prometheus.wait_listening(web).await;

    let query = |q: String| {
        let url = format!("http://{web}/api/v1/query?query={q}");
        async move {
            let Ok(resp) = client().get(url).send().await else {
                return serde_json::Value::Null;
            };
            resp.json::<serde_json::Value>()
                .await
                .unwrap_or(serde_json::Value::Null)
        }
    };
    let deadline = Instant::now() + SCRAPE_BUDGET;
    loop {
        let up = query("up".into()).await;
        if up["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        let targets = client()
            .get(format!("http://{web}/api/v1/targets"))
            .send()
            .await
            .ok();
        let targets = match targets {
            Some(t) => t.text().await.unwrap_or_default(),
            None => String::new(),
        };
        assert!(
            Instant::now() < deadline,
            "the target never came up: {up}\n{targets}\n{}",
            prometheus.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let requests = query("sessiongate_requests_total".into()).await;
    let series = &requests["data"]["result"][0];
    assert_eq!(series["metric"]["route"], "/", "{requests}");
    assert_eq!(series["metric"]["status"], "502", "{requests}");
    assert_eq!(series["value"][1], "1", "{requests}");

    // Every query of the example dashboard is one Prometheus takes, over
    // metrics it has.
    for expr in dashboard_queries() {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        let encoded: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let answer = query(encoded).await;
        assert_eq!(answer["status"], "success", "{q}: {answer}");
    }
}

/// The queries of `examples/grafana/sessiongate.json`.
fn dashboard_queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/sessiongate.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_example_dashboard_names_only_metrics_that_exist() {
    let proxy = Proxy::start(&config(
        &[("/", "http://127.0.0.1:9", "public")],
        &admin_section(None),
    ))
    .await;
    client().get(proxy.url("/x")).send().await.unwrap();
    let text = scrape(admin_addr(&proxy), None).await;
    let queries = dashboard_queries();
    assert!(queries.len() >= 5);
    for expr in queries {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("sessiongate_") || word.starts_with("process_") {
                assert!(
                    text.lines().any(|l| l.starts_with(word)),
                    "{word} (in {expr}) is not in /metrics"
                );
            }
        }
    }
}

/// A backend that signs its visitor in as alice on `/signin`.
async fn signing_in_app() -> Backend {
    Backend::with(|seen| match seen.uri.as_str() {
        "/signin" => Reply::ok("welcome").header("X-Session-Login", "alice"),
        _ => Reply::ok("page"),
    })
    .await
}

/// The User-Agent the sessions API's test browsers sign in with.
const FIREFOX_ON_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

/// Lists, ends one by its tag, then ends the rest ("log out everywhere"),
/// on the store `store` names (`[store]`, or empty for memory).
async fn sessions_api_on(store: &str) {
    let backend = signing_in_app().await;
    let extra = format!("{store}\n{}", admin_section(Some(TOKEN)));
    let proxy = Proxy::start(&config(
        &[
            ("/members/", &backend.url(), "login"),
            ("/", &backend.url(), "public"),
        ],
        &format!("\n[login]\nsource = \"backend\"\npage = \"/login\"\n{extra}"),
    ))
    .await;
    let addr = admin_addr(&proxy);
    let (laptop, phone) = (browser(), browser());
    for b in [&laptop, &phone] {
        let signed_in = b
            .get(proxy.url("/signin"))
            .header("user-agent", FIREFOX_ON_LINUX)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), 200);
        let inside = b.get(proxy.url("/members/x")).send().await.unwrap();
        assert_eq!(inside.status(), 200);
    }
    let listed = admin(addr, "GET", "/sessions?user=alice", Some(TOKEN)).await;
    assert_eq!(listed.status(), 200);
    let listed: serde_json::Value = listed.json().await.unwrap();
    assert_eq!(listed["user"], "alice");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    for s in sessions {
        let tag = s["session"].as_str().unwrap();
        assert!(
            tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
            "{s}"
        );
        assert_eq!(s["created"], 1_700_000_000, "{s}");
        assert_eq!(s["client"], "127.0.0.1", "{s}");
        assert_eq!(s["browser"], "Firefox on Linux", "{s}");
        assert!(s["expires"].as_u64().unwrap() > s["last_seen"].as_u64().unwrap());
    }
    let tag = sessions[0]["session"].as_str().unwrap();
    let ended = admin(addr, "DELETE", &format!("/sessions/{tag}"), Some(TOKEN)).await;
    assert_eq!(ended.status(), 200);
    assert_eq!(
        ended.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ended": 1})
    );
    let again = admin(addr, "DELETE", &format!("/sessions/{tag}"), Some(TOKEN)).await;
    assert_eq!(again.status(), 404);
    let rest = admin(addr, "DELETE", "/sessions?user=alice", Some(TOKEN)).await;
    assert_eq!(rest.status(), 200);
    assert_eq!(
        rest.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"ended": 1})
    );
    // Neither browser is signed in any more.
    for b in [&laptop, &phone] {
        let out = b.get(proxy.url("/members/x")).send().await.unwrap();
        assert_eq!(out.status(), 302);
    }
    let none = admin(addr, "GET", "/sessions?user=alice", Some(TOKEN)).await;
    let none: serde_json::Value = none.json().await.unwrap();
    assert_eq!(none["sessions"], serde_json::json!([]));
    let m = scrape(addr, Some(TOKEN)).await;
    assert_eq!(
        sample(&m, r#"sessiongate_sessions_ended_total{reason="revoked"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_sessions_api_on_the_memory_store() {
    sessions_api_on("").await;
}

#[tokio::test]
async fn the_sessions_api_on_redis() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path()).await;
    let store = format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"adm:\"\n",
        redis.url()
    );
    sessions_api_on(&store).await;
}
