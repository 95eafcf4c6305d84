//! Secrets named in the config: inline, `env:NAME`, `file:PATH`, or
//! `env-or-generate:NAME` (whose generated key may be kept: see
//! [`super::kept_key`]).
//!
//! Validation reads the environment and secret files only through a
//! [`SecretSource`]: the running proxy uses [`SystemSecrets`] (the process
//! environment, and files read with a bound), tests hand in their own, so a
//! config with secrets validates without touching either.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The most a `file:` secret may hold. A key is 43 characters and a token a
/// few dozen; a larger file is a wrong path, and `/dev/zero` never ends.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The secret form that falls back to a key generated at start: meant for
/// the demo config, so that it runs without setup.
pub const ENV_OR_GENERATE: &str = "env-or-generate:";

/// A new random secret key: 32 bytes from the OS CSPRNG, base64url (43 characters).
///
/// # Panics
/// Only if the operating system cannot supply random bytes, which leaves
/// no safe way to go on.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a secret could not be resolved; shown as the config error's message.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// An `env:` (or a later `env-or-generate:`) variable is not set.
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    /// The secret file could not be looked at, opened or read.
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable {
        /// The file, as written after `file:`.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The secret file is a directory, FIFO, device or the like.
    #[error("secret file {} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// The secret file holds more than [`MAX_SECRET_FILE_BYTES`].
    #[error("secret file {} is larger than {} KiB", .0.display(), MAX_SECRET_FILE_BYTES / 1024)]
    TooLarge(PathBuf),
    /// A key file sessiongate keeps may be read by others than its owner.
    #[error("{} has mode {mode:04o}; only its owner may read it (chmod 600 it, or delete it to have a new key made)", path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Where `env:` and `file:` secrets are read from.
pub trait SecretSource {
    /// The environment variable `name`; `None` when it is unset or not
    /// valid Unicode.
    fn env(&self, name: &str) -> Option<String>;

    /// The whole text of the secret file at `path`.
    fn file(&self, path: &Path) -> Result<String, SecretError>;

    /// The whole text of a key file sessiongate keeps itself
    /// ([`super::kept_key`]); `None` when there is none yet.
    fn kept_file(&self, path: &Path) -> Result<Option<String>, SecretError> {
        match self.file(path) {
            Ok(text) => Ok(Some(text)),
            Err(SecretError::Unreadable { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// The process environment and the file system: what the proxy runs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemSecrets;

impl SecretSource for SystemSecrets {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn file(&self, path: &Path) -> Result<String, SecretError> {
        read_secret_file(path)
    }

    fn kept_file(&self, path: &Path) -> Result<Option<String>, SecretError> {
        read_kept_file(path)
    }
}

/// Reads a kept key file: `None` when there is none; refused when it is
/// not a regular file or anyone but its owner may read or write it.
fn read_kept_file(path: &Path) -> Result<Option<String>, SecretError> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SecretError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(meta) if !meta.is_file() => return Err(SecretError::NotRegular(path.to_path_buf())),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            return Err(SecretError::Exposed {
                path: path.to_path_buf(),
                mode: meta.permissions().mode() & 0o777,
            });
        }
        Ok(_) => {}
    }
    read_secret_file(path).map(Some)
}

/// Resolves a secret: inline, `env:NAME` or `file:PATH` (without the
/// file's trailing line ends).
pub fn resolve_secret(spec: &str, source: &dyn SecretSource) -> Result<String, SecretError> {
    if let Some(name) = spec.strip_prefix("env:") {
        return source
            .env(name)
            .ok_or_else(|| SecretError::EnvUnset(name.to_string()));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return source
            .file(Path::new(path))
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string());
    }
    Ok(spec.to_string())
}

/// One of `session.secret_keys`, resolved.
pub(super) struct ResolvedKey {
    /// The key as written or read.
    pub(super) key: String,
    /// The variable of an `env-or-generate:` key that was unset, so that
    /// the key was generated.
    pub(super) generated_for: Option<String>,
}

/// Resolves one of `session.secret_keys`: any form [`resolve_secret`]
/// takes, and `env-or-generate:NAME`. An unset `NAME` generates a key only
/// when `may_generate` (the signing key): a key made up for verifying
/// alone would verify no cookie.
pub(super) fn resolve_key(
    spec: &str,
    may_generate: bool,
    source: &dyn SecretSource,
) -> Result<ResolvedKey, SecretError> {
    let Some(name) = spec.strip_prefix(ENV_OR_GENERATE) else {
        return resolve_secret(spec, source).map(|key| ResolvedKey {
            key,
            generated_for: None,
        });
    };
    match source.env(name) {
        Some(key) => Ok(ResolvedKey {
            key,
            generated_for: None,
        }),
        None if may_generate => Ok(ResolvedKey {
            key: generate_key(),
            generated_for: Some(name.to_string()),
        }),
        None => Err(SecretError::EnvUnset(name.to_string())),
    }
}

/// Reads a `file:` secret: a regular file of at most [`MAX_SECRET_FILE_BYTES`].
///
/// Anything else is refused before it is read, and most of it before it is
/// opened: reading a FIFO waits for a writer, and reading `/dev/zero` or
/// `/dev/urandom` never ends, so a mistyped path would hang the start (or a
/// reload) or use up the memory; opening some devices is not harmless either.
pub(super) fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let cannot = |source: io::Error| SecretError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = || SecretError::NotRegular(path.to_path_buf());
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    // Non-blocking, in case the path became a FIFO since it was looked at
    // (opening one for reading waits for a writer); on a regular file it
    // changes nothing.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretError::TooLarge(path.to_path_buf()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::testing::{FixedSecrets, KEY, ROUTE, minimal};
    use crate::config::{Config, ConfigError};

    fn parse(keys: &str, secrets: &FixedSecrets) -> Result<Config, Vec<ConfigError>> {
        let text = format!("[session]\nsecret_keys = {keys}\n\n{ROUTE}");
        Config::parse_with_secrets(Path::new("<config>"), &text, secrets).map_err(|e| e.0)
    }

    #[test]
    fn an_env_secret_comes_from_the_source() {
        let secrets = FixedSecrets::default()
            .with_env("SG_KEY", KEY)
            .with_env("SG_TOKEN", "admin-token");
        let text = format!(
            "[session]\nsecret_keys = [\"env:SG_KEY\"]\n\n[admin]\ntoken = \"env:SG_TOKEN\"\n\n{ROUTE}"
        );
        let c = Config::parse_with_secrets(Path::new("<config>"), &text, &secrets).unwrap();
        assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);
        assert_eq!(c.session.generated_key, None);
        assert_eq!(c.admin.token.as_deref(), Some("admin-token"));
    }

    #[test]
    fn a_missing_env_secret_is_reported_at_its_key_and_the_process_environment_is_not_read() {
        // PATH is set in the process; the source does not have it.
        let errs = parse(
            &format!("[\"{KEY}\", \"env:PATH\"]"),
            &FixedSecrets::default(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (2, 52), "{errs:?}");
        assert_eq!(errs[0].message, "environment variable PATH is not set");
    }

    #[test]
    fn a_file_secret_comes_from_the_source_without_its_line_end() {
        let secrets = FixedSecrets::default().with_file("/run/secrets/key", &format!("{KEY}\r\n"));
        let c = parse("[\"file:/run/secrets/key\"]", &secrets).unwrap();
        assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);

        let errs = parse("[\"file:/run/secrets/other\"]", &secrets).unwrap_err();
        assert!(
            errs[0]
                .message
                .starts_with("cannot read secret file /run/secrets/other: "),
            "{errs:?}"
        );
    }

    #[test]
    fn env_or_generate_reads_the_variable_or_generates_the_signing_key_only() {
        let set = FixedSecrets::default().with_env("SG_KEY", KEY);
        let c = parse("[\"env-or-generate:SG_KEY\"]", &set).unwrap();
        assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);
        assert_eq!(c.session.generated_key, None);

        let unset = FixedSecrets::default();
        let c = parse("[\"env-or-generate:SG_KEY\"]", &unset).unwrap();
        assert_eq!(c.session.secret_keys[0].len(), 43);
        assert_eq!(c.session.generated_key.as_deref(), Some("SG_KEY"));

        let errs = parse(&format!("[\"{KEY}\", \"env-or-generate:SG_OLD\"]"), &unset).unwrap_err();
        assert_eq!(errs[0].message, "environment variable SG_OLD is not set");
    }

    #[test]
    fn generated_keys_have_43_characters() {
        assert_eq!(generate_key().len(), 43);
    }

    #[test]
    fn inline_secrets_are_taken_as_written() {
        let secret = resolve_secret("inline", &FixedSecrets::default()).unwrap();
        assert_eq!(secret, "inline");
    }

    #[test]
    fn secrets_resolve_from_env_and_file() {
        let dir = std::env::temp_dir().join(format!("sg-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{KEY}\n")).unwrap();
        let text = minimal().replace(
            &format!("[\"{KEY}\"]"),
            &format!(
                "[\"file:{}\", \"env:SG_TEST_UNSET_VARIABLE\"]",
                file.display()
            ),
        );
        let errs = text.parse::<Config>().unwrap_err().0;
        assert!(
            errs[0]
                .message
                .contains("SG_TEST_UNSET_VARIABLE is not set")
        );
        let text = minimal().replace(
            &format!("[\"{KEY}\"]"),
            &format!("[\"file:{}\"]", file.display()),
        );
        let c: Config = text.parse().unwrap();
        assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);
    }

    #[test]
    fn secret_files_that_never_end_or_block_are_refused() {
        // Each check runs on its own thread so that a regression fails the
        // test instead of hanging it.
        fn resolved_within_a_few_seconds(spec: String) -> Result<String, String> {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(resolve_secret(&spec, &SystemSecrets).map_err(|e| e.to_string()))
            });
            rx.recv_timeout(Duration::from_secs(5))
                .expect("resolve_secret returned within five seconds")
        }
        let dir = tempfile::tempdir().unwrap();

        let err = resolved_within_a_few_seconds("file:/dev/zero".into()).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = resolved_within_a_few_seconds(format!("file:{}", fifo.display())).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'k'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
        let err = resolved_within_a_few_seconds(format!("file:{}", big.display())).unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");

        let largest = dir.path().join("largest");
        std::fs::write(&largest, vec![b'k'; MAX_SECRET_FILE_BYTES as usize]).unwrap();
        let key = resolved_within_a_few_seconds(format!("file:{}", largest.display())).unwrap();
        assert_eq!(key.len(), MAX_SECRET_FILE_BYTES as usize);

        let err =
            resolved_within_a_few_seconds(format!("file:{}", dir.path().display())).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let err = resolved_within_a_few_seconds("file:/nonexistent/key".into()).unwrap_err();
        assert!(err.contains("cannot read secret file"), "{err}");
    }
}
