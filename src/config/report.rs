//! Errors with their position: byte offsets in the text become
//! `file:line:col` messages.

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

/// Turns byte offsets into `file:line:col` errors.
pub(super) struct Reporter<'a> {
    /// The file, for messages.
    file: &'a Path,
    /// Its text, for turning offsets into lines and columns.
    text: &'a str,
    /// Every problem reported so far.
    errors: Vec<ConfigError>,
}

impl<'a> Reporter<'a> {
    /// Reports on `text`, read from `file`.
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// Reports `message` at a byte offset into the text.
    pub(super) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    /// Reports `message` where a deserialized value was written.
    pub(super) fn span<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.at(spanned.span().start, message);
    }

    /// Reports a TOML syntax or deserialization error where it points.
    pub(super) fn toml(&mut self, e: &toml::de::Error) {
        let start = e.span().map_or(0, |s| s.start);
        self.at(start, e.message().trim().to_string());
    }

    /// Whether nothing has been reported.
    pub(super) fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every error, in file order; a general one when the text failed
    /// without a report.
    pub(super) fn into_errors(self) -> ConfigErrors {
        let mut errors = self.errors;
        if errors.is_empty() {
            errors.push(ConfigError::whole_file(self.file, "invalid configuration"));
        }
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        ConfigErrors(errors)
    }
}

/// The largest char boundary of `s` at or before byte `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
