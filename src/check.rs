//! `sessiongate check`: what would break a site, found in one pass and each
//! placed at a `file:line:col`.
//!
//! First the config file itself ([`Config::check`]): every error, the
//! files and directories it names looked at on the disk, and the warnings.
//! Then, when it is valid, what only a loaded config shows, the way a start
//! would build it: the certificate and key, the users and groups files and
//! the login template ([`Setup::build`]), and allow lists against them. A
//! problem inside one of those files is placed in that file; any other at
//! the config key that names it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, ConfigError, Places};
use crate::login::endpoints::DeskError;
use crate::login::groups::GroupsError;
use crate::login::page::PageError;
use crate::login::users::UsersError;
use crate::setup::{Setup, SetupError};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The config is refused: the proxy would not start, or not work.
    Error,
    /// The config is valid, but will not work the way it reads.
    Warning,
}

/// One finding, at its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file it is in: the config, or a file the config names.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, and what to do.
    pub message: String,
}

impl Diagnostic {
    /// A config error or warning as a finding.
    fn from_config(severity: Severity, e: ConfigError) -> Self {
        Diagnostic {
            file: e.file,
            line: e.line,
            column: e.col,
            severity,
            message: e.message,
        }
    }

    /// A problem on line `line`, column `column` of a file the config names.
    fn in_file(path: &Path, line: usize, column: usize, message: String) -> Self {
        Diagnostic {
            file: path.to_path_buf(),
            line,
            column,
            severity: Severity::Error,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: message`, with `warning: ` before a warning's message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything `sessiongate check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Errors, then warnings, each in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// The summary of a valid config (see [`Config::summary`]).
    pub summary: Option<String>,
}

impl Report {
    /// Whether no error was found (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.of(Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.of(Severity::Warning)
    }

    /// The findings of one severity.
    fn of(&self, severity: Severity) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(move |d| d.severity == severity)
    }

    /// Every finding as a JSON array of `{"file", "line", "column",
    /// "severity", "message"}` objects, for tools.
    pub fn to_json(&self) -> String {
        // A list of plain structs always serializes.
        serde_json::to_string_pretty(&self.diagnostics).unwrap_or_else(|_| "[]".to_string())
    }

    /// Adds `e` as an error.
    fn error(&mut self, e: ConfigError) {
        self.diagnostics
            .push(Diagnostic::from_config(Severity::Error, e));
    }
}

/// Checks the config file at `path`, and what it names.
pub fn check(path: &Path) -> Report {
    let checked = Config::check(path);
    let mut report = Report::default();
    for e in checked.errors {
        report.error(e);
    }
    let mut warnings: Vec<Diagnostic> = checked
        .warnings
        .into_iter()
        .map(|w| Diagnostic::from_config(Severity::Warning, w))
        .collect();
    if let Some(config) = checked.config {
        let places = checked.places;
        let summary = config.summary();
        // The certificate and key must load and match, as at start.
        if let Some(tls) = &config.server.tls
            && let Err(e) = crate::tls::load_certified_key(tls)
        {
            report.error(places.error_at(&["server.tls"], e.to_string()));
        }
        let routes: Vec<String> = config.routes.iter().map(|r| r.path.clone()).collect();
        let login_route = config
            .routes
            .iter()
            .position(|r| r.access == crate::config::Access::Login)
            .map_or_else(String::new, |i| format!("route.{i}.access"));
        match Setup::build(config) {
            Ok(setup) => warnings.extend(setup.warnings().into_iter().map(|w| {
                let keys = [
                    format!("route.{}.allow", w.route),
                    format!("route.{}", w.route),
                ];
                let at = places.error_at(&[&keys[0], &keys[1]], w.message);
                Diagnostic::from_config(Severity::Warning, at)
            })),
            Err(e) => report
                .diagnostics
                .push(setup_diagnostic(e, &places, &routes, &login_route)),
        }
        if report.is_valid() {
            report.summary = Some(summary);
        }
    }
    report.diagnostics.extend(warnings);
    report
}

/// Where a setup error belongs: in the named file when it knows a line
/// there, else at the config key that names what failed.
fn setup_diagnostic(
    e: SetupError,
    places: &Places,
    routes: &[String],
    login_route: &str,
) -> Diagnostic {
    let at_key = |keys: &[&str], message: String| {
        Diagnostic::from_config(Severity::Error, places.error_at(keys, message))
    };
    // The users file is named by its key, or needed by a login route.
    let users_keys = ["login.users_file", login_route];
    match e {
        SetupError::Login(DeskError::Users(UsersError::Malformed {
            path,
            line,
            message,
        })) => Diagnostic::in_file(&path, line, 1, message),
        SetupError::Login(DeskError::Page(PageError::Template {
            path,
            line,
            column,
            message,
        })) => Diagnostic::in_file(&path, line, column, message),
        SetupError::Groups(GroupsError::Malformed {
            path,
            line,
            message,
        }) => Diagnostic::in_file(&path, line, 1, message),
        e @ SetupError::Login(DeskError::Users(_)) => at_key(&users_keys, e.to_string()),
        e @ SetupError::Login(DeskError::Page(_)) => at_key(&["login.template"], e.to_string()),
        e @ SetupError::Groups(_) => at_key(&["login.groups_file"], e.to_string()),
        e @ SetupError::UpstreamTls(_) => at_key(&["server.upstream_ca"], e.to_string()),
        SetupError::Route { route, message } => {
            let key = routes
                .iter()
                .position(|path| *path == route)
                .map(|i| format!("route.{i}.upstream"))
                .unwrap_or_default();
            at_key(&[&key], format!("route {route}: {message}"))
        }
    }
}
