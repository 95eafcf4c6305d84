//! The `sessiongate` binary: subcommands, exit codes, and signals.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Backend, KEY, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");
/// How long a started proxy may take to answer.
const READY_BUDGET: Duration = Duration::from_secs(15);

fn sessiongate(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("SESSIONGATE_CONFIG")
        .env_remove("RUST_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    sessiongate(args).output().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("sessiongate.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn valid_config(port: u16, upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nshutdown_grace = \"5s\"\n\n[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\naccess = \"session\"\n"
    )
}

fn wait_ready(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + READY_BUDGET;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the proxy exited early: {status}");
        }
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the proxy did not listen on {addr} within {READY_BUDGET:?}");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, budget: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + budget;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit within {budget:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn check_accepts_a_valid_config_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(8088, "http://127.0.0.1:9000"));
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
    let mut child = sessiongate(&["hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
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

#[test]
fn a_port_in_use_exits_2_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(port, "http://127.0.0.1:9"));
    let out = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}

#[test]
fn an_invalid_config_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[session]\nsecret_keys = []\n");
    let out = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(port, &backend.url()));
    let mut child = sessiongate(&["--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child);
    assert!(http_get(addr, "/").starts_with("HTTP/1.1 200"));
    let slow = std::thread::spawn(move || http_get(addr, "/slow"));
    // Let the slow request reach the backend before the signal.
    let deadline = Instant::now() + READY_BUDGET;
    while !backend.seen().iter().any(|s| s.uri == "/slow") {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let resp = slow.join().unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("finished"),
        "{resp}"
    );
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn sigint_also_stops_cleanly() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(port, "http://127.0.0.1:9"));
    let mut child = sessiongate(&["--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child);
    signal(&child, "-INT");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[test]
fn healthcheck_follows_the_proxy() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(port, "http://127.0.0.1:9"));
    let cfg = path.to_str().unwrap();
    assert_ne!(
        run(&["healthcheck", "--config", cfg]).status.code(),
        Some(0),
        "nothing listens yet"
    );
    let mut child = sessiongate(&["--config", cfg])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child);
    assert_eq!(
        run(&["healthcheck", "--config", cfg]).status.code(),
        Some(0)
    );
    signal(&child, "-TERM");
    wait_exit(&mut child, Duration::from_secs(10));
}

#[test]
fn sighup_reloads_and_a_bad_reload_keeps_the_running_config() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (one, two) = rt.block_on(async {
        (
            Backend::with(|_| Reply::ok("one")).await,
            Backend::with(|_| Reply::ok("two")).await,
        )
    });
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &valid_config(port, &one.url()));
    let mut child = sessiongate(&["--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child);
    assert!(http_get(addr, "/").ends_with("one"));

    std::fs::write(&path, "this is not toml [").unwrap();
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http_get(addr, "/").ends_with("one"),
        "a bad reload keeps the running config"
    );

    std::fs::write(&path, valid_config(port, &two.url())).unwrap();
    signal(&child, "-HUP");
    let deadline = Instant::now() + READY_BUDGET;
    while !http_get(addr, "/").ends_with("two") {
        assert!(Instant::now() < deadline, "the reload never took effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "-TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    drop(rt);
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
fn access_lines(extra: &str) -> Vec<String> {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}\n{extra}", valid_config(port, "http://127.0.0.1:9"));
    let path = write_config(dir.path(), &config);
    let mut child = sessiongate(&["--config", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(addr, &mut child);
    let answer = http_get(addr, "/page?token=secret");
    signal(&child, "-TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
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

#[test]
fn text_access_lines_carry_every_fact_and_no_secret() {
    let lines = access_lines("");
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

#[test]
fn json_access_lines_keep_their_fields() {
    let lines = access_lines("[log]\nformat = \"json\"\n");
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
