//! TLS test scaffolding: a throw-away certificate authority (rcgen), its
//! certificates written to temporary files, TLS clients that trust it
//! (HTTP/1.1 and HTTP/2 connections among them), an HTTPS backend, a
//! WebSocket echo backend and a backend that echoes trailers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// The name every test certificate is issued for (also as `127.0.0.1`).
pub const HOST: &str = "localhost";

/// A certificate authority that lives for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A server certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A new leaf for `localhost` and `127.0.0.1`, signed by this CA.
    pub fn leaf(&self) -> Leaf {
        let mut params =
            CertificateParams::new(vec![HOST.to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, HOST);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    pub fn reqwest_cert(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap()
    }
}

/// A certificate, its key and the CA in a temporary directory.
pub struct CertFiles {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl CertFiles {
    pub fn write(ca: &TestCa, leaf: &Leaf) -> CertFiles {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("fullchain.pem"),
            key: dir.path().join("privkey.pem"),
            ca: dir.path().join("ca.pem"),
            dir,
        };
        std::fs::write(&files.ca, &ca.pem).unwrap();
        files.replace(leaf);
        files
    }

    /// Puts a new pair in place the way renewal tools do: write aside, rename.
    pub fn replace(&self, leaf: &Leaf) {
        for (path, text) in [(&self.key, &leaf.key_pem), (&self.cert, &leaf.cert_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }

    /// `[server] tls = {...}` for these files (extra server keys may follow).
    pub fn server_toml(&self) -> String {
        format!(
            "[server]\ntls = {{ cert = {:?}, key = {:?} }}\n",
            self.cert.display().to_string(),
            self.key.display().to_string()
        )
    }
}

/// A reqwest client trusting `ca`, reaching `localhost` at `addr`, following
/// no redirects.
pub fn https_client(ca: &TestCa, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.reqwest_cert())
        .resolve(HOST, addr)
        .redirect(reqwest::redirect::Policy::none())
}

/// `https://localhost:PORT{path}`.
pub fn https_url(addr: SocketAddr, path: &str) -> String {
    format!("https://{HOST}:{}{path}", addr.port())
}

/// A rustls client configuration trusting `ca_pem`.
pub fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` with SNI `localhost`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
}

/// The leaf certificate the server presented.
pub fn peer_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// An HTTP/1.1 connection over TLS, ready for requests.
pub async fn h1_over_tls(
    addr: SocketAddr,
    ca: &TestCa,
) -> (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    Vec<u8>,
) {
    let tls = tls_connect(
        addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let leaf = peer_leaf(&tls);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (sender, leaf)
}

/// An HTTP/2 connection over TLS (ALPN `h2`), ready for requests, and a
/// handle that finishes when the connection does.
pub async fn h2_over_tls<B>(
    addr: SocketAddr,
    ca: &TestCa,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<()>,
)
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = tls_connect(
        addr,
        client_config(&ca.pem, &[&rustls::version::TLS13], &[b"h2"]),
    )
    .await
    .unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let running = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, running)
}

/// A GET for `path` on an established HTTP/1.1 connection.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", HOST)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// An HTTPS backend answering `body` to everything, recording the server
/// name (SNI) each client asked for.
pub struct HttpsBackend {
    pub addr: SocketAddr,
    pub server_names: Arc<Mutex<Vec<Option<String>>>>,
}

impl HttpsBackend {
    pub async fn start(leaf: &Leaf, body: &'static str) -> HttpsBackend {
        let chain = vec![CertificateDer::from(leaf.der.clone())];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_names = Arc::new(Mutex::new(Vec::new()));
        let names = server_names.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let names = names.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    names.lock().unwrap().push(sni);
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        HttpsBackend { addr, server_names }
    }
}

/// What the trailer backend received: the body and its trailers.
#[derive(Debug, Clone, Default)]
pub struct TrailerSeen {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

/// An HTTP/1.1 backend that records request trailers and answers `pong`
/// followed by the trailer `x-checksum: 42`, announced in `Trailer`.
pub async fn trailer_backend() -> (SocketAddr, Arc<Mutex<Vec<TrailerSeen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let collected = body.collect().await.unwrap();
                        let trailers = collected.trailers().cloned();
                        log.lock().unwrap().push(TrailerSeen {
                            headers: parts.headers,
                            body: collected.to_bytes(),
                            trailers,
                        });
                        let mut trailer = HeaderMap::new();
                        trailer.insert("x-checksum", "42".parse().unwrap());
                        let frames = futures_util::stream::iter(vec![
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"pong"))),
                            Ok(Frame::trailers(trailer)),
                        ]);
                        let resp = Response::builder()
                            .header("trailer", "x-checksum")
                            .body(StreamBody::new(frames))
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A WebSocket backend that echoes every message, records the handshake
/// headers it received, and asks the proxy to store `socket=open` in the
/// session from its `101` answer.
pub async fn websocket_echo() -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                // The handshake callback's error type is tungstenite's, large by design.
                #[allow(clippy::result_large_err)]
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                     mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                        log.lock().unwrap().push(req.headers().clone());
                        resp.headers_mut()
                            .insert("x-session-set", "socket=open".parse().unwrap());
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}
