//! `rediss://`: the Redis store over TLS, the server's certificate verified
//! against the system's trust store (here a test CA named by `SSL_CERT_FILE`).

use std::process::Command;

use crate::harness::process::{Proc, free_port};
use crate::harness::redis_server::redis_available;
use crate::harness::site::{app, redis_store, sign_in, site, visit};
use crate::harness::tls::{CertFiles, TestCa};
use crate::harness::*;

#[tokio::test]
async fn rediss_verifies_the_server_certificate() {
    if !redis_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sessiongate test Redis CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let port = free_port();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(&files.cert)
        .arg("--tls-key-file")
        .arg(&files.key)
        .arg("--tls-ca-cert-file")
        .arg(&files.ca)
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path());
    let mut redis = Proc::spawn(command, "redis-server with TLS");
    redis.wait_listening(([127, 0, 0, 1], port).into()).await;

    let backend = app().await;
    let store = redis_store(&format!("rediss://localhost:{port}/"), "sg:");
    let body = site(&backend, &[KEY], &store);
    let trusting = Binary::new(&body)
        .env("SSL_CERT_FILE", &files.ca)
        .start()
        .await;
    let alice = sign_in(&trusting.url("")).await;
    assert_eq!(
        visit(&trusting.url(""), &backend, "/members/x", &alice).await,
        (200, Some("alice".into()), "cart=3".into())
    );

    // Without the CA the certificate is refused: no session, 503.
    let empty = dir.path().join("no-ca.pem");
    std::fs::write(&empty, "").unwrap();
    let doubting = Binary::new(&body)
        .env("SSL_CERT_FILE", &empty)
        .start()
        .await;
    let (status, _, _) = visit(&doubting.url(""), &backend, "/members/x", &alice).await;
    assert_eq!(status, 503, "{}", doubting.output());
}
