//! TLS on both sides of the proxy.
//!
//! - **The listener**: the certificate chain and key named by `server.tls`,
//!   checked against each other at start (a mismatch stops the start, naming
//!   the files), served through a [`CertResolver`] whose key can be swapped
//!   while connections are open. [`ServerCert::reload_if_changed`] re-reads
//!   the files when their size, modification time or inode changes (a
//!   `stat` per poll); a new pair that fails to load keeps the old one.
//! - **HTTPS upstreams**: a client configuration trusting the system's root
//!   certificates, or only the CA file named by `server.upstream_ca`.
//!
//! Both sides use the `ring` provider, TLS 1.3 and 1.2 only, and rustls's
//! default cipher suites (AEAD only, forward secrecy only).

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// How often the certificate files are checked for changes.
pub const CERT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// ALPN protocols offered to clients, preferred first.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {what} file {path}: {error}")]
    Read {
        /// "certificate", "key" or "upstream CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (in the message itself, so that it stays one line).
        error: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("{what} file {path} is not valid PEM: {reason}")]
    Pem {
        /// "certificate", "key" or "upstream CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's words.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{what} file {path} holds no PEM certificate")]
    NoCertificate {
        /// "certificate" or "upstream CA".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key block.
    #[error(
        "key file {path} holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a kind the provider cannot sign with.
    #[error("key file {path} cannot be used: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the one the certificate was issued for.
    #[error("key file {key} does not match the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate cannot be parsed.
    #[error("certificate file {path} cannot be used: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration (does not happen with the defaults).
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// The crypto provider used everywhere: `ring`, with its default suites.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and TLS 1.2; nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads a certificate chain and its key, and checks that they belong
/// together.
pub fn load_certified_key(files: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let chain = read_certificates("certificate", &files.cert)?;
    let key = read_private_key(&files.key)?;
    match CertifiedKey::from_der(chain, key, &provider()) {
        Ok(ck) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(e @ rustls::Error::InvalidCertificate(_)) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        }),
        Err(e) => Err(TlsError::BadKey {
            path: files.key.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key", path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(TlsError::Pem {
            what: "key",
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error,
    })
}

/// Hands every handshake the certificate in force; swapped on reload, so
/// new handshakes get the new certificate and open connections keep theirs.
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What a file looked like when it was last read: enough to notice a
/// rewrite, a replacement by rename, or a symlink switched to a new target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

/// The files last loaded and how they looked then.
#[derive(Debug, Clone)]
struct Loaded {
    cert: PathBuf,
    key: PathBuf,
    stamps: (Option<FileStamp>, Option<FileStamp>),
}

impl Loaded {
    fn now(files: &TlsConfig) -> Loaded {
        Loaded {
            cert: files.cert.clone(),
            key: files.key.clone(),
            stamps: (FileStamp::of(&files.cert), FileStamp::of(&files.key)),
        }
    }

    fn same_as(&self, other: &Loaded) -> bool {
        self.cert == other.cert && self.key == other.key && self.stamps == other.stamps
    }
}

/// The listener's certificate: the resolver rustls asks, and what is needed
/// to notice that the files changed.
pub struct ServerCert {
    resolver: Arc<CertResolver>,
    acceptor: TlsAcceptor,
    loaded: Mutex<Loaded>,
}

impl ServerCert {
    /// Loads the certificate and key, and prepares the acceptor (ALPN `h2`
    /// and `http/1.1`, TLS 1.3 and 1.2).
    pub fn load(files: &TlsConfig) -> Result<ServerCert, TlsError> {
        // Stamps first: a file rewritten while it is read is read again at
        // the next poll.
        let loaded = Loaded::now(files);
        let key = load_certified_key(files)?;
        let resolver = Arc::new(CertResolver {
            current: ArcSwap::from_pointee(key),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
        // Our suite order (strongest first) rather than the client's.
        config.ignore_client_order = true;
        Ok(ServerCert {
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            loaded: Mutex::new(loaded),
        })
    }

    /// The acceptor for new connections (cheap to clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The certificate chain served to new handshakes.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.resolver.current.load_full()
    }

    /// Re-reads `files` (perhaps other paths than before, after a config
    /// reload) and serves them to new handshakes. On failure the certificate
    /// in force stays.
    pub fn reload(&self, files: &TlsConfig) -> Result<(), TlsError> {
        let seen = Loaded::now(files);
        // Remember what was looked at even when it fails, so that one bad
        // pair is reported once, not at every poll.
        self.remember(seen);
        let key = load_certified_key(files)?;
        self.resolver.current.store(Arc::new(key));
        Ok(())
    }

    /// [`ServerCert::reload`] when the paths or the files changed since the
    /// last read. `Ok(true)` when a new certificate is in force.
    pub fn reload_if_changed(&self, files: &TlsConfig) -> Result<bool, TlsError> {
        let seen = Loaded::now(files);
        let unchanged = self
            .loaded
            .lock()
            .map(|last| last.same_as(&seen))
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        self.reload(files).map(|()| true)
    }

    fn remember(&self, seen: Loaded) {
        if let Ok(mut last) = self.loaded.lock() {
            *last = seen;
        }
    }
}

/// The client configuration for `https://` upstreams: the CA file when one
/// is given (and only it), else the system's root certificates. ALPN is set
/// by the connector (HTTP/1.1 only).
pub fn upstream_client_config(ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_certificates("upstream CA", path)? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipping a system root certificate source");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "skipped unparsable system root certificates");
            }
            if added == 0 {
                tracing::warn!(
                    "no system root certificates found: https:// upstreams will fail verification; \
                     install the ca-certificates package or set server.upstream_ca"
                );
            }
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client configuration for the healthcheck, which talks to its own
/// listener by IP address: it trusts exactly the certificate in `files`
/// (the leaf, byte for byte) and still checks the handshake signatures.
pub fn self_probe_config(files: &TlsConfig) -> Result<ClientConfig, TlsError> {
    let leaf = read_certificates("certificate", &files.cert)?.swap_remove(0);
    let provider = provider();
    let verifier = PinnedLeaf {
        leaf,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Accepts one exact server certificate, whatever name it was asked for.
#[derive(Debug)]
struct PinnedLeaf {
    leaf: CertificateDer<'static>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration that trusts nothing: for a config whose routes
/// are all `http://` or CGI, so that no root store is read at all.
pub fn no_upstream_tls() -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    fn files(cert: &str, key: &str) -> TlsConfig {
        TlsConfig {
            cert: fixture(cert),
            key: fixture(key),
        }
    }

    #[test]
    fn sec1_and_pkcs1_keys_load() {
        load_certified_key(&files("ec.crt", "ec-sec1.key")).unwrap();
        load_certified_key(&files("rsa.crt", "rsa-pkcs1.key")).unwrap();
    }

    #[test]
    fn pkcs8_keys_load() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::write(&tls.cert, cert.cert.pem()).unwrap();
        std::fs::write(&tls.key, cert.signing_key.serialize_pem()).unwrap();
        load_certified_key(&tls).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let err = load_certified_key(&files("ec.crt", "rsa-pkcs1.key")).unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("rsa-pkcs1.key"), "{err}");
        assert!(err.to_string().contains("ec.crt"), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let err = load_certified_key(&files("missing.crt", "ec-sec1.key")).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.crt"), "{err}");
        // A certificate where the key should be.
        let err = load_certified_key(&files("ec.crt", "ec.crt")).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        // A key where the certificate should be.
        let err = load_certified_key(&files("ec-sec1.key", "ec-sec1.key")).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::copy(fixture("ec.crt"), &tls.cert).unwrap();
        std::fs::copy(fixture("ec-sec1.key"), &tls.key).unwrap();
        let cert = ServerCert::load(&tls).unwrap();
        let before = cert.current().cert[0].clone();
        assert!(!cert.reload_if_changed(&tls).unwrap(), "nothing changed");

        // Half-way through a renewal: the new certificate, the old key.
        std::fs::copy(fixture("rsa.crt"), &tls.cert).unwrap();
        assert!(matches!(
            cert.reload_if_changed(&tls),
            Err(TlsError::Mismatch { .. })
        ));
        assert_eq!(cert.current().cert[0], before);
        // Reported once: the same files are not tried again.
        assert!(!cert.reload_if_changed(&tls).unwrap());

        std::fs::copy(fixture("rsa-pkcs1.key"), &tls.key).unwrap();
        assert!(cert.reload_if_changed(&tls).unwrap());
        assert_ne!(cert.current().cert[0], before);
    }

    #[test]
    fn upstream_ca_file_must_hold_certificates() {
        upstream_client_config(Some(&fixture("ec.crt"))).unwrap();
        let err = upstream_client_config(Some(&fixture("ec-sec1.key"))).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("upstream CA"), "{err}");
    }
}
