//! The `sessiongate` binary with TLS: start-up errors for certificate
//! files, `check`, `healthcheck`, and a certificate switched by SIGHUP.

use std::path::Path;

use nix::sys::signal::Signal;

use crate::harness::binary::command as sessiongate;
use crate::harness::process::free_port;
use crate::harness::tls::{CertFiles, TestCa, get, h1_over_tls};
use crate::harness::{Backend, Binary, KEY};

/// A config listening with TLS on `listen`, with one `public` route.
fn tls_config(listen: &str, cert: &Path, key: &Path, upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"{listen}\"]\nshutdown_grace = \"2s\"\ntls = {{ cert = {:?}, key = {:?} }}\n\n[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\naccess = \"public\"\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// Starts the binary and checks it exits 2 with one line naming `file`.
async fn assert_start_fails_naming(config: &str, file: &Path) {
    let out = Binary::new(config).run().await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = out.stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "the message names {}: {stderr}",
        file.display()
    );
}

#[tokio::test]
async fn a_missing_or_mismatched_certificate_stops_the_start_with_exit_2() {
    let ca = TestCa::new("start CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let dir = files.dir.path();
    let listen = "127.0.0.1:0";

    let missing = dir.join("missing.pem");
    let config = tls_config(listen, &missing, &files.key, "http://127.0.0.1:9");
    assert_start_fails_naming(&config, &missing).await;

    let other_key = dir.join("other.key");
    std::fs::write(&other_key, ca.leaf().key_pem).unwrap();
    let config = tls_config(listen, &files.cert, &other_key, "http://127.0.0.1:9");
    assert_start_fails_naming(&config, &other_key).await;

    let not_pem = dir.join("garbage.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let config = tls_config(listen, &files.cert, &not_pem, "http://127.0.0.1:9");
    assert_start_fails_naming(&config, &not_pem).await;

    // `check` finds the same problem, as a config error.
    let path = dir.join("sessiongate.toml");
    std::fs::write(&path, config).unwrap();
    let out = sessiongate(&["check", "--config", path.to_str().unwrap()])
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
    // The healthcheck finds the address in the config: it must name a port.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut proxy = Binary::new(&tls_config(
        &listen,
        &files.cert,
        &files.key,
        &backend.url(),
    ))
    .listen_as_configured()
    .start()
    .await;
    let addr = proxy.addr;

    let config = proxy.config.to_str().unwrap().to_string();
    let out = sessiongate(&["healthcheck", "--config", &config])
        .output()
        .unwrap();
    assert!(out.status.success(), "healthcheck over TLS: {out:?}");

    let (mut old, leaf) = h1_over_tls(addr, &ca).await;
    assert_eq!(leaf, first.der);
    assert_eq!(old.send_request(get("/")).await.unwrap().status(), 200);

    // The old files stay as they are: only the reload can switch.
    std::fs::write(
        &proxy.config,
        tls_config(&listen, &renewed.cert, &renewed.key, &backend.url()),
    )
    .unwrap();
    proxy.signal(Signal::SIGHUP);
    proxy.logged("TLS certificate reloaded").await;
    let (_, leaf) = h1_over_tls(addr, &ca).await;
    assert!(
        leaf == second.der,
        "the new certificate is served after SIGHUP"
    );
    assert_eq!(old.send_request(get("/kept")).await.unwrap().status(), 200);
    assert_eq!(backend.last().uri, "/kept");
}
