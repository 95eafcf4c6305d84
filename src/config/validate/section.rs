//! [`Section`]: the checks of one config section, and whether any failed.

use std::fmt::Display;
use std::time::Duration;

use toml::Spanned;

use crate::config::raw::Dur;
use crate::config::report::{PathKind, Reporter};

/// One section being checked. Each problem is reported where it is, and
/// any one of them means the section yields no config; the other sections
/// are still checked, so that one run reports every problem.
pub(super) struct Section<'r, 'a> {
    /// Where problems go.
    reporter: &'r mut Reporter<'a>,
    /// Whether any check of this section failed.
    failed: bool,
}

impl<'r, 'a> Section<'r, 'a> {
    /// Starts checking a section.
    pub(super) fn new(reporter: &'r mut Reporter<'a>) -> Self {
        Self {
            reporter,
            failed: false,
        }
    }

    /// Reports a problem with a value, at the value.
    pub(super) fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.reporter.span(at, message);
        self.failed = true;
    }

    /// Reports a problem at a byte offset; 0 when it lies in no one value
    /// (a missing key, or keys that do not fit together).
    pub(super) fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        self.reporter.at(offset, message);
        self.failed = true;
    }

    /// Warns about a value, at the value: the config stays valid.
    pub(super) fn warn<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.reporter.warn_at(at.span().start, message);
    }

    /// Whether `key` (dotted) was reported as it was read and taken out:
    /// a rule that needs it stays silent rather than call it missing.
    pub(super) fn was_removed(&self, key: &str) -> bool {
        self.reporter.was_removed(key)
    }

    /// Records where `key` was written, for checks after validation.
    pub(super) fn place<T>(&mut self, key: impl Into<String>, at: &Spanned<T>) {
        self.reporter.place(key, at.span().start);
    }

    /// Notes that the value at `at` names a file `sessiongate check` must
    /// find readable; `what` names it in messages ("users file").
    pub(super) fn names_file(&mut self, at: &Spanned<String>, what: &'static str) {
        self.reporter
            .names_path(at.span().start, at.get_ref(), PathKind::File, what);
    }

    /// Notes that the value at `at` names the directory `dir`, which
    /// `sessiongate check` must find readable ("CGI directory").
    pub(super) fn names_dir<T>(
        &mut self,
        at: &Spanned<T>,
        dir: &std::path::Path,
        what: &'static str,
    ) {
        self.reporter
            .names_path(at.span().start, dir, PathKind::Directory, what);
    }

    /// Notes that the value at `at` names a FastCGI server's document root,
    /// which `sessiongate check` warns about when it is not here.
    pub(super) fn names_remote_dir(&mut self, at: &Spanned<String>, what: &'static str) {
        self.reporter.names_path(
            at.span().start,
            at.get_ref(),
            PathKind::ElsewhereDirectory,
            what,
        );
    }

    /// The value, reported with `message` when `valid` says no. It is
    /// returned either way, so that the checks after it still run.
    pub(super) fn checked<T>(
        &mut self,
        value: Spanned<T>,
        valid: impl FnOnce(&T) -> bool,
        message: &str,
    ) -> T {
        if !valid(value.get_ref()) {
            self.error(&value, message);
        }
        value.into_inner()
    }

    /// The value `result` parsed from `at`; its error is reported at `at`.
    pub(super) fn parsed<S, T, E: Display>(
        &mut self,
        at: &Spanned<S>,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.error(at, e.to_string())).ok()
    }

    /// A duration of at least a second; `default` when absent.
    pub(super) fn seconds(
        &mut self,
        value: Option<Spanned<Dur>>,
        default: Duration,
        name: &str,
    ) -> Duration {
        match value {
            None => default,
            Some(d) if d.get_ref().0 < Duration::from_secs(1) => {
                self.error(&d, format!("{name} must be at least one second"));
                default
            }
            Some(d) => d.into_inner().0,
        }
    }

    /// The number `name`, at least `least`; `None` when absent or too
    /// small (the latter reported).
    pub(super) fn at_least<T: PartialOrd + Display>(
        &mut self,
        value: Option<Spanned<T>>,
        least: T,
        name: &str,
    ) -> Option<T> {
        let value = value?;
        if *value.get_ref() < least {
            self.error(&value, format!("{name} must be at least {least}"));
            return None;
        }
        Some(value.into_inner())
    }

    /// The section's config, built when none of its values had a problem.
    pub(super) fn finish<T>(self, build: impl FnOnce() -> T) -> Option<T> {
        (!self.failed).then(build)
    }
}
