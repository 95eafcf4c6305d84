//! The TLS listener: protocol versions and ALPN, the Secure cookie, HTTP/2
//! with trailers, the HTTPS redirect listener, HTTPS upstreams, and
//! certificates replaced while the proxy runs.

use crate::harness::tls::{
    CertFiles, HttpsBackend, TestCa, client_config, get, h1_over_tls, https_client, https_url,
    peer_leaf, tls_connect, trailer_backend,
};
use crate::harness::{Backend, Binary, Proxy, config, raw};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A TLS proxy with one `session` route to `backend`.
async fn tls_proxy(files: &CertFiles, backend: &str, extra: &str) -> Proxy {
    Proxy::start(&config(
        &[("/", backend, "session")],
        &format!("{}{extra}", files.server_toml()),
    ))
    .await
}

#[tokio::test]
async fn tls13_and_tls12_each_with_h2_and_http11_by_alpn() {
    let ca = TestCa::new("versions CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "").await;
    let v13 = &rustls::version::TLS13;
    let v12 = &rustls::version::TLS12;
    for version in [v13, v12] {
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let tls = tls_connect(proxy.addr, client_config(&ca.pem, &[version], &[alpn]))
                .await
                .unwrap();
            let conn = tls.get_ref().1;
            assert_eq!(conn.protocol_version(), Some(version.version));
            assert_eq!(conn.alpn_protocol(), Some(alpn));
        }
    }
    // And HTTP works on each, as a client library negotiates it.
    for (version, http1_only, expected) in [
        (reqwest::tls::Version::TLS_1_3, false, Version::HTTP_2),
        (reqwest::tls::Version::TLS_1_3, true, Version::HTTP_11),
        (reqwest::tls::Version::TLS_1_2, false, Version::HTTP_2),
        (reqwest::tls::Version::TLS_1_2, true, Version::HTTP_11),
    ] {
        let mut builder = https_client(&ca, proxy.addr)
            .min_tls_version(version)
            .max_tls_version(version);
        if http1_only {
            builder = builder.http1_only();
        }
        let resp = builder
            .build()
            .unwrap()
            .get(https_url(proxy.addr, "/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), expected, "{version:?}");
    }
    let seen = backend.last();
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.uri, "/hello");
}

#[tokio::test]
async fn a_failed_handshake_does_not_stop_the_listener() {
    let ca = TestCa::new("garbage CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "").await;
    // Plain HTTP on the TLS port, and a client that does not trust the CA.
    let answer = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let stranger = TestCa::new("stranger");
    assert!(
        tls_connect(
            proxy.addr,
            client_config(&stranger.pem, &[&rustls::version::TLS13], &[b"h2"])
        )
        .await
        .is_err()
    );
    let resp = https_client(&ca, proxy.addr)
        .build()
        .unwrap()
        .get(https_url(proxy.addr, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_cookie_is_secure_over_tls_and_not_over_plain_http() {
    let ca = TestCa::new("cookie CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let tls = tls_proxy(&files, &backend.url(), "").await;
    let resp = https_client(&ca, tls.addr)
        .build()
        .unwrap()
        .get(https_url(tls.addr, "/"))
        .send()
        .await
        .unwrap();
    let cookie = crate::harness::set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("sg_session="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");

    let plain = Proxy::start(&config(&[("/", &backend.url(), "session")], "")).await;
    let resp = crate::harness::client()
        .get(plain.url("/"))
        .send()
        .await
        .unwrap();
    let cookie = crate::harness::set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("sg_session="))
        .unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_host_prefixed_cookie_works_over_tls() {
    let ca = TestCa::new("__Host- CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = Proxy::start(&config(
        &[("/", &backend.url(), "session")],
        &format!("cookie_name = \"__Host-sg\"\n{}", files.server_toml()),
    ))
    .await;
    let client = https_client(&ca, proxy.addr).build().unwrap();
    let resp = client.get(https_url(proxy.addr, "/")).send().await.unwrap();
    let cookie = crate::harness::set_cookies(&resp)
        .into_iter()
        .find(|c| c.starts_with("__Host-sg="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert_eq!(backend.last().header("x-session-new").as_deref(), Some("1"));

    let pair = cookie.split(';').next().unwrap().to_string();
    let resp = client
        .get(https_url(proxy.addr, "/again"))
        .header("cookie", format!("{pair}; other=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        crate::harness::set_cookies(&resp).is_empty(),
        "the same session"
    );
    let seen = backend.last();
    assert_eq!(seen.header("x-session-new"), None);
    assert_eq!(seen.header("cookie").as_deref(), Some("other=1"));

    // A __Host- cookie with a Domain is refused by the config.
    let text = config(
        &[("/", &backend.url(), "session")],
        "cookie_name = \"__Host-sg\"\ncookie_domain = \"example.org\"\n",
    );
    assert!(text.parse::<sessiongate::config::Config>().is_err());
}

#[tokio::test]
async fn h2_over_tls_passes_trailers_both_ways() {
    let ca = TestCa::new("trailers CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let (backend, seen) = trailer_backend().await;
    let proxy = tls_proxy(&files, &format!("http://{backend}"), "").await;

    let tls = tls_connect(
        proxy.addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-request-sum", "7".parse().unwrap());
    let frames = futures_util::stream::iter(vec![
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"ping"))),
        Ok(Frame::trailers(trailers)),
    ]);
    let req = Request::post(https_url(proxy.addr, "/rpc"))
        .header("te", "trailers")
        .header("trailer", "x-request-sum")
        .body(StreamBody::new(frames))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let collected = resp.into_body().collect().await.unwrap();
    let got = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), "pong");
    assert_eq!(
        got.as_ref().and_then(|t| t.get("x-checksum")).unwrap(),
        "42",
        "response trailers reach the HTTP/2 client"
    );

    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.body, "ping");
    assert_eq!(seen.headers.get("te").unwrap(), "trailers");
    assert_eq!(
        seen.trailers
            .as_ref()
            .and_then(|t| t.get("x-request-sum"))
            .unwrap(),
        "7",
        "request trailers reach the HTTP/1.1 upstream"
    );
}

#[tokio::test]
async fn http1_clients_get_trailers_when_they_ask_for_them() {
    let (backend, _seen) = trailer_backend().await;
    let proxy = Proxy::start(&config(
        &[("/", &format!("http://{backend}"), "public")],
        "",
    ))
    .await;
    let with_te = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close, TE\r\n\r\n",
    )
    .await;
    assert!(with_te.contains("x-checksum: 42"), "{with_te}");
    let without = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(without.contains("pong"), "{without}");
    assert!(!without.contains("x-checksum: 42"), "{without}");
}

#[tokio::test]
async fn the_redirect_listener_sends_plain_http_to_https() {
    let ca = TestCa::new("redirect CA");
    let files = CertFiles::write(&ca, &ca.leaf());
    let backend = Backend::start().await;
    let proxy = tls_proxy(&files, &backend.url(), "redirect_http = \"127.0.0.1:0\"\n").await;
    let running = proxy.running.as_ref().unwrap();
    let redirect = running.redirect_addrs[0];
    let answer = raw(
        redirect,
        b"GET /a/b?c=d HTTP/1.1\r\nHost: Example.org:8080\r\nCookie: sg_session=x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    let location = format!(
        "location: https://example.org:{}/a/b?c=d",
        proxy.addr.port()
    );
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("set-cookie"),
        "{answer}"
    );
    let answer = raw(
        redirect,
        b"GET / HTTP/1.1\r\nHost: evil@example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(backend.seen().is_empty(), "nothing reached the backend");
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let ca = TestCa::new("upstream CA");
    let upstream = HttpsBackend::start(&ca.leaf(), "secure hello").await;
    let files = CertFiles::write(&ca, &ca.leaf());
    let url = format!("https://localhost:{}", upstream.addr.port());
    let proxy = Proxy::start(&config(
        &[("/", &url, "public")],
        &format!(
            "[server]\nupstream_ca = {:?}\n",
            files.ca.display().to_string()
        ),
    ))
    .await;
    let resp = crate::harness::client()
        .get(proxy.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "secure hello");
    assert_eq!(
        upstream.server_names.lock().unwrap()[0].as_deref(),
        Some("localhost"),
        "SNI names the upstream host"
    );

    // Without the CA file only the system roots are trusted: 502.
    let untrusting = Proxy::start(&config(&[("/", &url, "public")], "")).await;
    let resp = crate::harness::client()
        .get(untrusting.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

/// The binary rather than the proxy in this process: its log says when it
/// has looked at the changed files, which is what each step waits for.
#[tokio::test]
async fn a_replaced_certificate_is_served_and_open_connections_stay() {
    let ca = TestCa::new("reload CA");
    let first = ca.leaf();
    let files = CertFiles::write(&ca, &first);
    let backend = Backend::start().await;
    let mut proxy = Binary::new(&config(
        &[("/", &backend.url(), "session")],
        &files.server_toml(),
    ))
    .start()
    .await;

    let (mut old, leaf) = h1_over_tls(proxy.addr, &ca).await;
    assert_eq!(leaf, first.der);
    assert_eq!(old.send_request(get("/")).await.unwrap().status(), 200);

    let second = ca.leaf();
    files.replace(&second);
    proxy.logged("TLS certificate reloaded").await;
    let (_, leaf) = h1_over_tls(proxy.addr, &ca).await;
    assert!(leaf == second.der, "the new certificate is served");
    // The connection opened before the renewal still works.
    assert_eq!(old.send_request(get("/late")).await.unwrap().status(), 200);
    assert_eq!(backend.last().uri, "/late");

    // A broken pair (a key that does not match) keeps the new certificate in force.
    let third = ca.leaf();
    std::fs::write(&files.cert, &third.cert_pem).unwrap();
    proxy.logged("TLS certificate not reloaded").await;
    let tls = tls_connect(
        proxy.addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .unwrap();
    assert_eq!(peer_leaf(&tls), second.der);
}
