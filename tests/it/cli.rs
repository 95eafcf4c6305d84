//! The `sessiongate` binary: subcommands, exit codes, and signals.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::harness::binary::command as sessiongate;
use crate::harness::process::{answers, free_port};
use crate::harness::programs::output_with_stdin;
use crate::harness::{BUDGET, Backend, Binary, KEY, Reply, eventually, raw};

fn run(args: &[&str]) -> Output {
    sessiongate(args).output().unwrap()
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("sessiongate.toml");
    std::fs::write(&path, body).unwrap();
    path
}

/// A valid config listening on `listen` with one `session` route to
/// `upstream`. (A [`Binary`] listens on 127.0.0.1:0 whatever it says, unless
/// told to keep it.)
fn valid_config(listen: &str, upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"{listen}\"]\nshutdown_grace = \"5s\"\n\n[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\naccess = \"session\"\n"
    )
}

/// The whole answer to `GET path` over a connection of its own.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    raw(addr, request.as_bytes()).await
}

#[test]
fn check_accepts_a_valid_config_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &valid_config("127.0.0.1:8088", "http://127.0.0.1:9000"),
    );
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("127.0.0.1:8088"), "{summary}");
    assert!(summary.contains("http://127.0.0.1:9000"), "{summary}");
    assert!(summary.contains("store: memory"), "{summary}");
    assert!(summary.contains("login:"), "{summary}");
    // The config may also come from the environment.
    let out = sessiongate(&["check"])
        .env("SESSIONGATE_CONFIG", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn check_reports_every_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\nlisen = 3\n\n[session]\nsecret_keys = [\"too-short\"]\nidle_timeout = \"ten minutes\"\n\n[[route]]\npath = \"/\"\nupstream = \"gopher://x\"\naccess = \"public\"\n";
    let path = write_config(dir.path(), text);
    let out = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:3:1:")),
        "unknown key: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:7:")),
        "bad duration: {stderr}"
    );
    for line in stderr.lines() {
        assert!(
            line.starts_with(&format!("{file}:")),
            "every line is file:line:col: {line}"
        );
    }
}

#[test]
fn check_reports_a_missing_file() {
    let out = run(&["check", "--config", "/nonexistent/sessiongate.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/sessiongate.toml"));
}

#[test]
fn bad_usage_exits_1() {
    assert_eq!(run(&["no-such-command"]).status.code(), Some(1));
}

#[test]
fn gen_key_prints_43_random_characters() {
    let a = String::from_utf8(run(&["gen-key"]).stdout).unwrap();
    let b = String::from_utf8(run(&["gen-key"]).stdout).unwrap();
    assert_eq!(a.trim().len(), 43);
    assert_ne!(a, b);
    assert!(
        a.trim()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
}

#[test]
fn hash_password_reads_stdin_and_the_hash_verifies() {
    let out = output_with_stdin(&mut sessiongate(&["hash-password"]), b"correct horse\n");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(sessiongate::login::verify_password(
        hash.trim(),
        "correct horse"
    ));
    assert!(!sessiongate::login::verify_password(
        hash.trim(),
        "correct horse\n"
    ));
}

#[tokio::test]
async fn a_port_in_use_exits_2_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Binary::new(&valid_config(&addr, "http://127.0.0.1:9"))
        .listen_as_configured()
        .run()
        .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = out.stderr;
    let port = taken.local_addr().unwrap().port();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

#[tokio::test]
async fn an_invalid_config_does_not_start() {
    let out = Binary::new("[session]\nsecret_keys = []\n").run().await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let backend = Backend::with(|seen| {
        if seen.uri == "/slow" {
            Reply {
                delay: Some(Duration::from_millis(1500)),
                ..Reply::ok("finished")
            }
        } else {
            Reply::ok("fast")
        }
    })
    .await;
    let mut proxy = Binary::new(&valid_config("127.0.0.1:0", &backend.url()))
        .start()
        .await;
    let addr = proxy.addr;
    assert!(http_get(addr, "/").await.starts_with("HTTP/1.1 200"));
    let slow = tokio::spawn(http_get(addr, "/slow"));
    // Let the slow request reach the backend before the signal.
    eventually("the slow request reached the backend", BUDGET, async || {
        backend.seen().iter().any(|s| s.uri == "/slow")
    })
    .await;
    let status = proxy.terminate().await;
    assert_eq!(status.code(), Some(0));
    let resp = slow.await.unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("finished"),
        "{resp}"
    );
    assert!(!answers(addr), "no longer listening");
}

#[tokio::test]
async fn sigint_also_stops_cleanly() {
    let mut proxy = Binary::new(&valid_config("127.0.0.1:0", "http://127.0.0.1:9"))
        .start()
        .await;
    proxy.signal(Signal::SIGINT);
    assert_eq!(proxy.proc.wait().await.code(), Some(0));
}

#[tokio::test]
async fn healthcheck_follows_the_proxy() {
    // The healthcheck finds the address in the config: it must name a port.
    let config = valid_config(&format!("127.0.0.1:{}", free_port()), "http://127.0.0.1:9");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &config);
    let cfg = path.to_str().unwrap();
    assert_ne!(
        run(&["healthcheck", "--config", cfg]).status.code(),
        Some(0),
        "nothing listens yet"
    );
    let mut proxy = Binary::new(&config).listen_as_configured().start().await;
    assert_eq!(
        run(&["healthcheck", "--config", cfg]).status.code(),
        Some(0)
    );
    proxy.terminate().await;
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_reload_keeps_the_running_config() {
    let one = Backend::with(|_| Reply::ok("one")).await;
    let two = Backend::with(|_| Reply::ok("two")).await;
    let mut proxy = Binary::new(&valid_config("127.0.0.1:0", &one.url()))
        .start()
        .await;
    let addr = proxy.addr;
    assert!(http_get(addr, "/").await.ends_with("one"));

    std::fs::write(&proxy.config, "this is not toml [").unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.logged("reload refused").await;
    assert!(
        http_get(addr, "/").await.ends_with("one"),
        "a bad reload keeps the running config"
    );

    std::fs::write(&proxy.config, valid_config("127.0.0.1:0", &two.url())).unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.logged("config reloaded").await;
    assert!(
        http_get(addr, "/").await.ends_with("two"),
        "the reload took effect"
    );
    assert_eq!(proxy.terminate().await.code(), Some(0));
}

#[test]
fn the_shipped_default_config_is_valid() {
    let out = sessiongate(&["check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:8080"));
}

/// Runs the proxy with `extra` config, sends one request, stops it, and
/// returns the access lines it wrote to stdout.
async fn access_lines(extra: &str) -> Vec<String> {
    let config = format!(
        "{}\n{extra}",
        valid_config("127.0.0.1:0", "http://127.0.0.1:9")
    );
    let mut proxy = Binary::new(&config).start().await;
    let answer = http_get(proxy.addr, "/page?token=secret").await;
    assert_eq!(proxy.terminate().await.code(), Some(0));
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let out = proxy.proc.stdout();
    assert!(
        !out.contains("token=secret"),
        "the query was logged:\n{out}"
    );
    out.lines()
        .filter(|l| l.contains("access"))
        .map(str::to_string)
        .collect()
}

fn is_log_tag(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn text_access_lines_carry_every_fact_and_no_secret() {
    let lines = access_lines("").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    // 2026-01-02T03:04:05.123456Z  INFO access: ...
    let (stamp, rest) = line.split_once("  INFO access: ").expect(line);
    assert_eq!(stamp.len(), 27, "{stamp}");
    assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    let rest = rest
        .strip_prefix("127.0.0.1 \"GET /page\" 502 ")
        .expect(line);
    let fields: Vec<&str> = rest.split(' ').collect();
    assert!(fields[0].parse::<u64>().unwrap() > 0, "{line}");
    let ms = fields[1].strip_suffix("ms").expect(line);
    assert!(ms.parse::<f64>().is_ok(), "{line}");
    assert_eq!(fields[2], "route=/");
    assert_eq!(fields[3], "user=\"-\"");
    assert!(
        is_log_tag(fields[4].strip_prefix("session=").expect(line)),
        "{line}"
    );
}

#[tokio::test]
async fn json_access_lines_keep_their_fields() {
    let lines = access_lines("[log]\nformat = \"json\"\n").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["target"], "access");
    assert_eq!(v["client"], "127.0.0.1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/page");
    assert_eq!(v["status"], 502);
    assert_eq!(v["route"], "/");
    assert!(is_log_tag(v["session"].as_str().unwrap()), "{v}");
}
