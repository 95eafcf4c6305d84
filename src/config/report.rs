//! Errors with their position: byte offsets in the text become
//! `file:line:col` messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// One problem in a config file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A problem with the file as a whole, placed at its start.
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Where the keys that later checks report on were written: each as
/// `line:col` by a dotted name (`login.users_file`, `server.tls`,
/// `route.0.upstream`, `route.0.allow`), so that a problem found after
/// validation (a file's contents, an allow list against the users file)
/// still points at the key it is about.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// The config file.
    file: PathBuf,
    /// Line and column of each recorded key.
    at: BTreeMap<String, (usize, usize)>,
}

impl Places {
    /// Where `key` was written, if it was recorded.
    pub fn get(&self, key: &str) -> Option<(usize, usize)> {
        self.at.get(key).copied()
    }

    /// `message` at the first of `keys` that was recorded; at the file's
    /// start when none was.
    pub fn error_at(&self, keys: &[&str], message: impl Into<String>) -> ConfigError {
        let (line, col) = keys.iter().find_map(|k| self.get(k)).unwrap_or((1, 1));
        ConfigError {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// Whether a named path must be a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathKind {
    /// A file to read.
    File,
    /// A directory to serve or run from.
    Directory,
    /// A directory another program reads (a FastCGI server's document
    /// root): it may live where that program runs (another container), so
    /// not finding it here is a warning, not an error.
    ElsewhereDirectory,
}

/// A file or directory the config names, which only the disk can judge;
/// `sessiongate check` looks at each (see [`Reporter::check_named_paths`]).
#[derive(Debug, Clone)]
pub(super) struct NamedPath {
    /// Where the key that names it was written.
    offset: usize,
    /// The path as written (relative to the working directory, as at start).
    path: PathBuf,
    /// File or directory.
    kind: PathKind,
    /// What it is, for messages: "CGI directory".
    what: String,
}

/// Turns byte offsets into `file:line:col` errors.
pub(super) struct Reporter<'a> {
    /// The file, for messages.
    file: &'a Path,
    /// Its text, for turning offsets into lines and columns.
    text: &'a str,
    /// Every problem reported so far.
    errors: Vec<ConfigError>,
    /// Every warning so far: the config works, but not as its author may think.
    warnings: Vec<ConfigError>,
    /// Keys reported and taken out while deserializing, dotted
    /// (`server.tls`, `route.access`): the checks that need them stay
    /// silent rather than report them missing.
    removed: Vec<String>,
    /// Where the keys later checks report on were written.
    places: Places,
    /// Files and directories the config names.
    named: Vec<NamedPath>,
}

impl<'a> Reporter<'a> {
    /// Reports on `text`, read from `file`.
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
            warnings: Vec::new(),
            removed: Vec::new(),
            places: Places {
                file: file.to_path_buf(),
                at: BTreeMap::new(),
            },
            named: Vec::new(),
        }
    }

    /// Line and column (1-based, in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// A message at a byte offset.
    fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, col) = self.position(offset);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// Reports `message` at a byte offset into the text.
    pub(super) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let e = self.error_at(offset, message);
        self.errors.push(e);
    }

    /// Reports `message` where a deserialized value was written.
    pub(super) fn span<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.at(spanned.span().start, message);
    }

    /// Warns with `message` at a byte offset: the config is valid.
    pub(super) fn warn_at(&mut self, offset: usize, message: impl Into<String>) {
        let w = self.error_at(offset, message);
        self.warnings.push(w);
    }

    /// Reports a TOML syntax or deserialization error where it points.
    pub(super) fn toml(&mut self, e: &toml::de::Error) {
        let start = e.span().map_or(0, |s| s.start);
        self.at(start, e.message().trim().to_string());
    }

    /// Notes that `key` (dotted) was reported and taken out.
    pub(super) fn removed(&mut self, key: String) {
        self.removed.push(key);
    }

    /// Every key taken out, dotted.
    pub(super) fn removed_keys(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    /// Whether `key` (dotted, like `server.tls`), or a key inside it, was
    /// reported and taken out.
    pub(super) fn was_removed(&self, key: &str) -> bool {
        self.removed
            .iter()
            .any(|k| k == key || k.strip_prefix(key).is_some_and(|r| r.starts_with('.')))
    }

    /// Records where `key` was written, for checks after validation.
    pub(super) fn place(&mut self, key: impl Into<String>, offset: usize) {
        let at = self.position(offset);
        self.places.at.insert(key.into(), at);
    }

    /// Notes a file or directory the key at `offset` names.
    pub(super) fn names_path(
        &mut self,
        offset: usize,
        path: impl Into<PathBuf>,
        kind: PathKind,
        what: impl Into<String>,
    ) {
        self.named.push(NamedPath {
            offset,
            path: path.into(),
            kind,
            what: what.into(),
        });
    }

    /// Looks at every named file and directory on the disk and reports,
    /// at its key, each that is missing, of the wrong kind, or unreadable.
    pub(super) fn check_named_paths(&mut self) {
        for named in std::mem::take(&mut self.named) {
            if let Some(problem) = path_problem(&named.path, named.kind) {
                let message = format!(
                    "{} {:?} {problem}",
                    named.what,
                    named.path.display().to_string()
                );
                match named.kind {
                    PathKind::ElsewhereDirectory => self.warn_at(
                        named.offset,
                        format!(
                            "{message} here; fine only if the FastCGI server runs elsewhere (another container) and has it"
                        ),
                    ),
                    PathKind::File | PathKind::Directory => self.at(named.offset, message),
                }
            }
        }
    }

    /// Whether nothing has been reported.
    pub(super) fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every error, in file order (a general one when the text failed
    /// without a report); the warnings, in file order; the places recorded.
    pub(super) fn into_parts(self) -> (ConfigErrors, Vec<ConfigError>, Places) {
        let mut errors = self.errors;
        if errors.is_empty() {
            errors.push(ConfigError::whole_file(self.file, "invalid configuration"));
        }
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        let mut warnings = self.warnings;
        warnings.sort_by_key(|e| (e.line, e.col));
        warnings.dedup();
        (ConfigErrors(errors), warnings, self.places)
    }
}

/// What is wrong with `path` for its use, in words that follow its name;
/// `None` when it is fine.
fn path_problem(path: &Path, kind: PathKind) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some("does not exist".to_string());
        }
        Err(e) => return Some(format!("cannot be reached: {e}")),
    };
    match kind {
        PathKind::File if meta.is_dir() => Some("is a directory, not a file".to_string()),
        PathKind::File => std::fs::File::open(path)
            .err()
            .map(|e| format!("cannot be read: {e}")),
        PathKind::Directory | PathKind::ElsewhereDirectory if !meta.is_dir() => {
            Some("is not a directory".to_string())
        }
        PathKind::Directory | PathKind::ElsewhereDirectory => std::fs::read_dir(path)
            .err()
            .map(|e| format!("cannot be read: {e}")),
    }
}

/// The largest char boundary of `s` at or before byte `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
