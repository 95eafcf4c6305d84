//! The users file (`login.users_file`): one `user:hash` per line, and a
//! [`UsersSource`] that keeps the parsed file current while the proxy runs.
//!
//! ```text
//! # Comments and blank lines are allowed; nothing may follow a hash.
//! alice:$argon2id$v=19$m=19456,t=2,p=1$...
//! # bcrypt, as written by htpasswd -B, works too:
//! bob:$2y$05$...
//! ```
//!
//! Every line is checked when the file is loaded, so a typo is reported with
//! its line number by `sessiongate check` instead of surfacing as a login
//! that silently never works.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use super::password::{check_hash, hash_password_with_salt, verify_password};
use super::watched::{Parsed, Watched};

/// The users file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the users file: {source}", path.display())]
    Read {
        /// The users file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line of the file is wrong.
    #[error("{}:{line}:1: {message}", path.display())]
    Malformed {
        /// The users file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
}

/// The parsed users file: user names and their password hashes.
///
/// Every hash has passed [`check_hash`], so verification never meets an
/// unusable or absurdly expensive hash.
#[derive(Clone, Default)]
pub struct UsersFile {
    hashes: HashMap<String, String>,
}

impl fmt::Debug for UsersFile {
    // Hashes are secrets too (offline guessing); keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersFile")
            .field("users", &self.hashes.len())
            .finish_non_exhaustive()
    }
}

impl UsersFile {
    /// Reads and parses the users file at `path`.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of a users file; `path_for_messages` only names the
    /// file in errors.
    pub fn parse(path_for_messages: &Path, text: &str) -> Result<Self, UsersError> {
        let mut hashes = HashMap::new();
        let mut first_seen = HashMap::new();
        // Some Windows editors start a UTF-8 file with a byte order mark,
        // which would otherwise become part of the first user's name.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let malformed = |message: String| UsersError::Malformed {
                path: path_for_messages.to_owned(),
                line,
                message,
            };
            // `lines()` leaves the `\r` of CRLF files; trailing blanks after
            // a hash are invisible in an editor, so they are forgiven too.
            let content = raw.trim_end();
            let trimmed = content.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (user, hash) = parse_line(content).map_err(malformed)?;
            if let Some(previous) = first_seen.insert(user.to_owned(), line) {
                return Err(malformed(format!(
                    "duplicate user {user:?} (first defined on line {previous})"
                )));
            }
            hashes.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Self { hashes })
    }

    /// Tells whether `user` exists and `password` is theirs.
    ///
    /// An unknown user costs the same time as a wrong password: the password
    /// is checked against a dummy argon2id hash made with the parameters of
    /// `sessiongate hash-password`, so response times do not reveal which
    /// user names exist. (A user whose hash uses other parameters, a bcrypt
    /// hash for instance, takes a different time; rehash with
    /// `sessiongate hash-password` to close that gap.)
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.hashes.get(user) {
            Some(hash) => verify_password(hash, password),
            None => {
                verify_password(dummy_hash(), password);
                false
            }
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when the file holds no user (nobody can log in).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Tells whether `user` is listed, without checking any password.
    pub fn contains(&self, user: &str) -> bool {
        self.hashes.contains_key(user)
    }

    /// The users of `before` that this file no longer lists, sorted.
    pub fn removed_since(&self, before: &UsersFile) -> Vec<String> {
        let mut gone: Vec<String> = before
            .hashes
            .keys()
            .filter(|user| !self.hashes.contains_key(*user))
            .cloned()
            .collect();
        gone.sort_unstable();
        gone
    }
}

/// Splits `user:hash` and vets both halves; the error is the message for
/// [`UsersError::Malformed`].
fn parse_line(line: &str) -> Result<(&str, &str), String> {
    let Some((user, hash)) = line.split_once(':') else {
        return Err("expected user:hash (no colon found)".into());
    };
    if user.is_empty() {
        return Err("empty user name before the colon".into());
    }
    if let Some(bad) = user.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "user name {user:?} contains whitespace or a control character ({bad:?})"
        ));
    }
    check_hash(hash).map_err(|e| format!("user {user:?}: {e}"))?;
    Ok((user, hash))
}

/// The hash unknown users are checked against. Made once, with a fixed salt
/// and the same parameters as real hashes; its password is irrelevant
/// because the result is thrown away.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    // Hashing with valid constant parameters fails only when 19 MiB cannot be
    // allocated; then the empty string makes verification fail fast, which
    // loses only the timing cover while no login can work anyway.
    DUMMY.get_or_init(|| {
        hash_password_with_salt("sessiongate unknown user", b"sessiongate-salt").unwrap_or_default()
    })
}

/// The users file as currently loaded, replaced atomically when the file
/// changes or on `SIGHUP` (see [`Watched`]).
///
/// Readers never wait for a reload: they get the [`UsersFile`] that was
/// current when they asked. A reload that fails keeps the previous users.
pub struct UsersSource {
    file: Watched<UsersFile>,
    /// Each verification allocates the hash's memory cost (19 MiB by
    /// default) and a core's worth of time; a flood of login attempts must
    /// queue here rather than exhaust memory or the blocking thread pool.
    verifying: Arc<Semaphore>,
}

impl fmt::Debug for UsersSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersSource")
            .field("path", &self.file.path())
            .field("users", &self.file.peek().len())
            .finish_non_exhaustive()
    }
}

impl Parsed for UsersFile {
    type Error = UsersError;

    fn load(path: &Path) -> Result<Self, UsersError> {
        UsersFile::load(path)
    }

    fn unreadable(path: &Path, source: io::Error) -> UsersError {
        UsersError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

impl UsersSource {
    /// Loads the users file at `path`; fails when it cannot be read or parsed.
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, UsersError> {
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            file: Watched::load(path)?,
            verifying: Arc::new(Semaphore::new(parallelism)),
        })
    }

    /// A number that changes whenever the users are read again (see
    /// [`Watched::generation`]): a cache of verified passwords is valid
    /// only for the number it was filled under.
    pub fn generation(&self) -> u64 {
        self.file.generation()
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The users as currently loaded.
    pub fn current(&self) -> Arc<UsersFile> {
        self.file.current()
    }

    /// Re-reads the file if it changed since it was last read; returns
    /// whether new users were loaded (see [`Watched::refresh_if_changed`]).
    pub fn refresh_if_changed(&self) -> Result<bool, UsersError> {
        self.file.refresh_if_changed()
    }

    /// Re-reads the file unconditionally (`SIGHUP`). On error the previous
    /// users stay in force.
    pub fn reload(&self) -> Result<(), UsersError> {
        self.file.reload()
    }

    /// [`UsersFile::verify`] against the current users, on the calling
    /// thread. Takes tens of milliseconds of CPU: in async code use
    /// [`UsersSource::verify_blocking`].
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.file.peek().verify(user, password)
    }

    /// [`UsersSource::verify`] on tokio's blocking thread pool, at most one
    /// verification per CPU at a time; the others wait their turn.
    ///
    /// Returns `false` if the verification could not run (the runtime is
    /// shutting down).
    pub async fn verify_blocking(self: &Arc<Self>, user: String, password: String) -> bool {
        let Ok(permit) = Arc::clone(&self.verifying).acquire_owned().await else {
            return false;
        };
        let this = Arc::clone(self);
        // The permit moves into the task: if the caller gives up waiting (the
        // client went away), the work still counts until it has finished.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.verify(&user, &password)
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `htpasswd -bnB -C 5 alice 'correct horse'`.
    const ALICE: &str = "alice:$2y$05$8GZGcB76O/vrMDfbnLsspuETEb.ZaPA/atHhCzSgQhhJyk31FFTzC";
    /// `htpasswd -bnB -C 4 bob 'tr0ub4dor&3'`.
    const BOB: &str = "bob:$2y$04$tp9XPZ.hBRrma9StnSTQC.7XLfwgDnATk1mwJLhrqkkqw5o2Ba/Uy";

    fn parse(text: &str) -> Result<UsersFile, UsersError> {
        UsersFile::parse(Path::new("users"), text)
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_users_comments_and_blank_lines() {
        let text = format!("# users\n\n{ALICE}\n   \n  # indented comment\r\n{BOB}\r\n");
        let users = parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(users.contains("alice") && users.contains("bob"));
        assert!(users.verify("alice", "correct horse"));
        assert!(users.verify("bob", "tr0ub4dor&3"));
        assert!(!users.verify("alice", "tr0ub4dor&3"));
        assert!(!users.verify("Alice", "correct horse"));
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_first_name() {
        let users = parse(&format!("\u{feff}{ALICE}\n")).unwrap();
        assert!(users.contains("alice"));
    }

    #[test]
    fn empty_file_has_no_users() {
        let users = parse("").unwrap();
        assert!(users.is_empty());
        assert!(!users.verify("", ""));
    }

    #[test]
    fn argon2_hashes_from_hash_password_are_accepted() {
        let hash = crate::login::hash_password("pw").unwrap();
        let users = parse(&format!("carol:{hash}\n")).unwrap();
        assert!(users.verify("carol", "pw"));
        assert!(!users.verify("carol", "wrong"));
    }

    #[test]
    fn unknown_user_is_refused_after_the_same_work() {
        let users = parse(ALICE).unwrap();
        assert!(!users.verify("mallory", "correct horse"));
        assert!(dummy_hash().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(crate::login::password::check_hash(dummy_hash()), Ok(()));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        assert_eq!(
            error_of(&format!("{ALICE}\nnocolon\n")),
            "users:2:1: expected user:hash (no colon found)"
        );
        assert_eq!(
            error_of(":$2y$05$whatever"),
            "users:1:1: empty user name before the colon"
        );
        assert!(
            error_of(" alice:x").starts_with("users:1:1: user name \" alice\" contains whitespace")
        );
        assert!(error_of("al ice:x").starts_with("users:1:1: user name"));
        assert!(error_of("al\u{7}ice:x").starts_with("users:1:1: user name"));
        assert!(error_of("al\u{a0}ice:x").starts_with("users:1:1: user name"));
        let unknown = error_of("\n\n\ndave:$apr1$anq.MDed$fnFcum0t/gZW.HRIKZeSj1");
        assert!(
            unknown.starts_with("users:4:1: user \"dave\": unsupported hash scheme"),
            "{unknown}"
        );
        assert!(error_of("erin:").contains("missing password hash"));
        assert!(
            error_of("erin:secret").starts_with("users:1:1: user \"erin\": unknown hash format")
        );
        let hash_then_comment = format!("{ALICE} # the admin");
        assert!(error_of(&hash_then_comment).contains("malformed bcrypt hash"));
    }

    #[test]
    fn duplicate_user_names_both_lines() {
        let text = format!("{ALICE}\n# again\n{ALICE}\n");
        assert_eq!(
            error_of(&text),
            "users:3:1: duplicate user \"alice\" (first defined on line 1)"
        );
    }

    #[test]
    fn debug_output_hides_hashes() {
        let users = parse(ALICE).unwrap();
        let shown = format!("{users:?}");
        assert!(!shown.contains("$2y$"), "{shown}");
        assert!(!shown.contains("alice"), "{shown}");
    }
}
