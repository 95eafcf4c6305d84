//! Secrets named in the config: inline, `env:NAME`, `file:PATH`, or
//! `env-or-generate:NAME`.

use std::path::Path;

/// Resolves a secret: inline, `env:NAME` or `file:PATH`.
pub fn resolve_secret(spec: &str) -> Result<String, String> {
    if let Some(name) = spec.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return read_secret_file(Path::new(path))
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string());
    }
    Ok(spec.to_string())
}

/// The most a `file:` secret may hold. A key is 43 characters and a token a
/// few dozen; a larger file is a wrong path, and `/dev/zero` never ends.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a `file:` secret: a regular file of at most [`MAX_SECRET_FILE_BYTES`].
///
/// Anything else is refused before it is read, and most of it before it is
/// opened: reading a FIFO waits for a writer, and reading `/dev/zero` or
/// `/dev/urandom` never ends, so a mistyped path would hang the start (or a
/// reload) or use up the memory; opening some devices is not harmless either.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let shown = path.display();
    let cannot = |e: std::io::Error| format!("cannot read secret file {shown}: {e}");
    let not_regular = || format!("secret file {shown} is not a regular file");
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
        return Err(format!(
            "secret file {shown} is larger than {} KiB",
            MAX_SECRET_FILE_BYTES / 1024
        ));
    }
    Ok(text)
}

/// The secret form that falls back to a key generated at start: meant for
/// the demo config, so that it runs without setup.
pub const ENV_OR_GENERATE: &str = "env-or-generate:";
