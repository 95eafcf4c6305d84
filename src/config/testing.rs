//! What config's unit tests share: a valid key, a minimal config, and
//! secrets held in memory.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{SecretError, SecretSource};

/// A secret key of the least accepted length.
pub(crate) const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The one route of [`minimal`].
pub(crate) const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n";

/// The smallest valid config: one key, one route.
pub(crate) fn minimal() -> String {
    format!("[session]\nsecret_keys = [\"{KEY}\"]\n\n{ROUTE}")
}

/// Secrets held in memory, for tests: no process environment, no disk.
#[derive(Debug, Default)]
pub(crate) struct FixedSecrets {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
}

impl FixedSecrets {
    /// Adds the environment variable `name`.
    pub(crate) fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds a secret file at `path`.
    pub(crate) fn with_file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl SecretSource for FixedSecrets {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn file(&self, path: &Path) -> Result<String, SecretError> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| SecretError::Unreadable {
                path: path.to_path_buf(),
                source: io::ErrorKind::NotFound.into(),
            })
    }
}
