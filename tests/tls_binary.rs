//! The `sessiongate` binary with TLS: start-up errors for certificate
//! files, `check`, `healthcheck`, and a certificate switched by SIGHUP.

mod support;
mod tls_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Backend, KEY};
use tls_support::{CertFiles, TestCa, get, h1_over_tls};

const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");
/// How long a started proxy may take to listen.
const READY_BUDGET: Duration = Duration::from_secs(15);
/// How long a reload may take to show.
const RELOAD_BUDGET: Duration = Duration::from_secs(15);

fn sessiongate(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("SESSIONGATE_CONFIG")
        .env_remove("RUST_LOG");
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls_config(port: u16, cert: &Path, key: &Path, upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nshutdown_grace = \"2s\"\ntls = {{ cert = {:?}, key = {:?} }}\n\n[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\naccess = \"public\"\n",
        cert.display().to_string(),
        key.display().to_string()
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

/// Starts the binary and checks it exits 2 with one line naming `file`.
fn assert_start_fails_naming(config: &Path, file: &Path) {
    let out = sessiongate(&["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "the message names {}: {stderr}",
        file.display()
    );
}

#[test]
fn a_missing_or_mismatched_certificate_stops_the_start_with_exit_2() {
    let ca = TestCa::new("start CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let dir = files.dir.path();
    let config = dir.join("sessiongate.toml");
    let port = free_port();

    let missing = dir.join("missing.pem");
    std::fs::write(
        &config,
        tls_config(port, &missing, &files.key, "http://127.0.0.1:9"),
    )
    .unwrap();
    assert_start_fails_naming(&config, &missing);

    let other_key = dir.join("other.key");
    std::fs::write(&other_key, ca.leaf().key_pem).unwrap();
    std::fs::write(
        &config,
        tls_config(port, &files.cert, &other_key, "http://127.0.0.1:9"),
    )
    .unwrap();
    assert_start_fails_naming(&config, &other_key);

    let not_pem = dir.join("garbage.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    std::fs::write(
        &config,
        tls_config(port, &files.cert, &not_pem, "http://127.0.0.1:9"),
    )
    .unwrap();
    assert_start_fails_naming(&config, &not_pem);

    // `check` finds the same problem, as a config error.
    let out = sessiongate(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.pem"));
}

// Blocking calls to the binary below must not stall the backend's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_switches_to_the_certificate_the_new_config_names() {
    let ca = TestCa::new("sighup CA");
    let first = ca.leaf();
    let files = CertFiles::write(&ca, &first);
    let second = ca.leaf();
    let renewed = CertFiles::write(&ca, &second);
    let backend = Backend::start().await;
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = files.dir.path().join("sessiongate.toml");
    std::fs::write(
        &config,
        tls_config(port, &files.cert, &files.key, &backend.url()),
    )
    .unwrap();
    let mut child = Running(
        sessiongate(&["--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(addr, &mut child.0);

    let out = sessiongate(&["healthcheck", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "healthcheck over TLS: {out:?}");

    let (mut old, leaf) = h1_over_tls(addr, &ca).await;
    assert_eq!(leaf, first.der);
    assert_eq!(old.send_request(get("/")).await.unwrap().status(), 200);

    // The old files stay as they are: only the reload can switch.
    std::fs::write(
        &config,
        tls_config(port, &renewed.cert, &renewed.key, &backend.url()),
    )
    .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + RELOAD_BUDGET;
    loop {
        let (_, leaf) = h1_over_tls(addr, &ca).await;
        if leaf == second.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within {RELOAD_BUDGET:?} of SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(old.send_request(get("/kept")).await.unwrap().status(), 200);
    assert_eq!(backend.last().uri, "/kept");
}

/// A started binary, stopped when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
