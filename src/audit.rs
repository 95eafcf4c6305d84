//! The audit log (`log.audit`): one JSON object per line for every
//! authentication and session event, apart from the access log.
//!
//! ```text
//! {"time":"2025-01-02T03:04:05.678Z","event":"login","user":"alice","client":"192.0.2.7","session":"3f9a1c0b2d4e","how":"form"}
//! ```
//!
//! `event` is one of [`Event`], `how` one of [`How`]; `user`, `client` and
//! `session` are `null` where the event has none, and `ended` (how many
//! sessions ended) is added to `revoked` and `user_removed`. `session` is
//! the session's log tag ([`LogTag`]), the type the lines take, so that no
//! id can reach them; no password or cookie value is ever handed here.
//!
//! # Off the request path
//!
//! A request only formats its line and offers it to a bounded queue
//! ([`QUEUE_LINES`]); it never waits. A writer thread appends what the
//! queue holds and hands it to the operating system as soon as the queue is
//! empty. Should the queue be full (a stalled disk), the line is dropped
//! and counted ([`Audit::dropped`]), and the writer logs how many once it
//! catches up.
//!
//! # Stop and rotation
//!
//! [`Audit::close`], at a graceful stop, waits until the writer wrote every
//! line queued, then flushes and fsyncs the file. [`Audit::reopen`], on
//! SIGHUP, starts a writer on a freshly opened file (or a new path, or
//! none) and lets the old one finish its queue into the file it had: after
//! logrotate renames the file and sends SIGHUP, new lines go to the new
//! file and none is lost or split between the two.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::config::AuditTarget;
use crate::session::LogTag;
use crate::session::user::MAX_USER_LEN;

/// Lines the queue holds before new ones are dropped: minutes of logins
/// at any plausible rate, a few megabytes at most.
pub const QUEUE_LINES: usize = 8192;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A user signed in; `session` is the new session (none for HTTP Basic).
    Login,
    /// A sign-in was refused: unknown user or wrong password.
    LoginFailed,
    /// A sign-in was refused unchecked: too many failures lately.
    LoginThrottled,
    /// A signed-in session was ended by its user (or the backend).
    Logout,
    /// An operator ended sessions through the admin API, or a user ended
    /// one of their other sessions on their sessions page.
    Revoked,
    /// A user left the users file; their sessions were ended.
    UserRemoved,
}

/// Through what the event came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The built-in login page and logout endpoint.
    Form,
    /// The backend's `X-Session-Login` / `X-Session-Logout` headers.
    Backend,
    /// HTTP Basic on a `basic_auth` route: `login` lines have no session
    /// (none is made), and come only from a real password check, not from
    /// a request the cache of recent checks let through.
    Basic,
    /// The admin API.
    Admin,
    /// The user's own sessions page (`{prefix}/sessions`): the user named
    /// ended a session of theirs.
    SessionsPage,
    /// The users file changed.
    UsersFile,
}

/// One audit line's facts.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// What happened.
    pub event: Event,
    /// Through what.
    pub how: How,
    /// The user concerned (for a failed sign-in, the name typed).
    pub user: Option<&'a str>,
    /// The client that asked.
    pub client: Option<IpAddr>,
    /// The session concerned, by its tag.
    pub session: Option<LogTag>,
    /// How many sessions ended (`revoked`, `user_removed`).
    pub ended: Option<usize>,
}

/// The line as written.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    event: Event,
    user: Option<&'a str>,
    client: Option<IpAddr>,
    session: Option<String>,
    how: How,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<usize>,
}

/// The audit log could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file (or its directory) cannot be opened for appending.
    #[error("cannot open the audit log {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the audit log writer: {0}")]
    Thread(io::Error),
}

/// The audit log: cheap to clone, shared by the gate and its tasks; off
/// until started with a target.
#[derive(Clone, Default)]
pub struct Audit {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The writer of the current target; `None` while off.
    writer: ArcSwapOption<Writer>,
    /// Lines dropped because the queue was full, since the start.
    dropped: AtomicU64,
    /// Serialises reopening and closing.
    control: Mutex<()>,
}

/// One writer thread, on one opened file (or stdout).
struct Writer {
    queue: SyncSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

enum Command {
    Line(String),
    /// Write everything before this, flush and fsync, and stop.
    Stop,
}

impl Audit {
    /// An audit log that records nothing.
    pub fn off() -> Audit {
        Audit::default()
    }

    /// Opens `target` now (so that a start fails on a file it cannot
    /// write) and starts its writer; `None` is [`Audit::off`].
    pub fn start(target: Option<&AuditTarget>) -> Result<Audit, AuditError> {
        let audit = Audit::off();
        if let Some(target) = target {
            let writer = Writer::start(Output::open(target)?, audit.shared.clone())?;
            audit.shared.writer.store(Some(Arc::new(writer)));
        }
        Ok(audit)
    }

    /// Whether lines are being written.
    pub fn is_on(&self) -> bool {
        self.shared.writer.load().is_some()
    }

    /// Lines dropped since the start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records one event. Never waits: a line the queue cannot take is
    /// dropped and counted.
    pub fn record(&self, entry: &Entry<'_>) {
        let writer = self.shared.writer.load();
        let Some(writer) = writer.as_ref() else {
            return;
        };
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event: entry.event,
            user: entry.user.map(clip_user),
            client: entry.client,
            session: entry.session.map(|tag| tag.to_string()),
            how: entry.how,
            ended: entry.ended,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        text.push('\n');
        match writer.queue.try_send(Command::Line(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A user signed in (`session`: the new session).
    pub fn login(&self, how: How, user: &str, client: Option<IpAddr>, session: LogTag) {
        self.record(&Entry {
            event: Event::Login,
            how,
            user: Some(user),
            client,
            session: Some(session),
            ended: None,
        });
    }

    /// HTTP Basic credentials of `user` were checked and found right (no
    /// session: the request is served without one).
    pub fn basic_login(&self, user: &str, client: Option<IpAddr>) {
        self.record(&Entry {
            event: Event::Login,
            how: How::Basic,
            user: Some(user),
            client,
            session: None,
            ended: None,
        });
    }

    /// A sign-in as `user` was refused (`event`: [`Event::LoginFailed`]
    /// or [`Event::LoginThrottled`]); an empty name is recorded as none.
    pub fn refused(&self, event: Event, how: How, user: &str, client: Option<IpAddr>) {
        self.record(&Entry {
            event,
            how,
            user: Some(user).filter(|u| !u.is_empty()),
            client,
            session: None,
            ended: None,
        });
    }

    /// A signed-in session ended by its user's or the backend's request.
    pub fn logout(&self, how: How, user: &str, client: Option<IpAddr>, session: LogTag) {
        self.record(&Entry {
            event: Event::Logout,
            how,
            user: Some(user),
            client,
            session: Some(session),
            ended: None,
        });
    }

    /// An operator ended sessions through the admin API: every session of
    /// `user` (`session` `None`), or the one session tagged `session`
    /// (`user` `None` when the caller does not know it). `ended` is how
    /// many ended; `client` is the operator's address.
    pub fn revoked(
        &self,
        user: Option<&str>,
        session: Option<LogTag>,
        ended: usize,
        client: Option<IpAddr>,
    ) {
        self.record(&Entry {
            event: Event::Revoked,
            how: How::Admin,
            user,
            client,
            session,
            ended: Some(ended),
        });
    }

    /// `user` ended their own session tagged `session` on their sessions
    /// page, from `client`.
    pub fn revoked_by_owner(&self, user: &str, session: Option<LogTag>, client: Option<IpAddr>) {
        self.record(&Entry {
            event: Event::Revoked,
            how: How::SessionsPage,
            user: Some(user),
            client,
            session,
            ended: Some(1),
        });
    }

    /// `user` left the users file, and `ended` sessions of theirs ended.
    pub fn user_removed(&self, user: &str, ended: usize) {
        self.record(&Entry {
            event: Event::UserRemoved,
            how: How::UsersFile,
            user: Some(user),
            client: None,
            session: None,
            ended: Some(ended),
        });
    }

    /// SIGHUP: opens `target` afresh (the same path after logrotate moved
    /// the file, another path, or none) for the lines from now on; the
    /// lines already queued finish in the file they were meant for. If the
    /// new target cannot be opened, the current one stays and the reason is
    /// logged.
    pub fn reopen(&self, target: Option<&AuditTarget>) {
        let _control = self
            .shared
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let next = match target {
            None => None,
            Some(target) => {
                match Output::open(target).and_then(|out| Writer::start(out, self.shared.clone())) {
                    Ok(writer) => Some(Arc::new(writer)),
                    Err(e) => {
                        tracing::error!(error = %e, "audit log not reopened; lines still go where they went");
                        return;
                    }
                }
            }
        };
        // The old writer's thread finishes its queue and stops once nothing
        // holds the writer (a request may still be offering it a line); a
        // reload does not wait for it.
        drop(self.shared.writer.swap(next));
    }

    /// Graceful stop: writes every line queued, flushes and fsyncs the
    /// file, and turns the log off. Waits on a blocking thread.
    pub async fn close(&self) {
        let old = {
            let _control = self
                .shared
                .control
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.writer.swap(None)
        };
        let Some(old) = old else {
            return;
        };
        let stopped = tokio::task::spawn_blocking(move || old.stop()).await;
        if stopped.is_err() {
            tracing::error!("the audit log writer could not be stopped cleanly");
        }
    }
}

impl Writer {
    fn start(out: Output, shared: Arc<Shared>) -> Result<Writer, AuditError> {
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(lines, out, &shared))
            .map_err(AuditError::Thread)?;
        Ok(Writer {
            queue,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues the stop after every line queued, and waits for the thread.
    fn stop(self: Arc<Self>) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        // Blocks while the queue is full: the writer is emptying it.
        let _ = self.queue.send(Command::Stop);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The writer thread: appends lines as they come, hands them to the
/// operating system whenever the queue is empty, and flushes and fsyncs
/// when told to stop or when every sender is gone.
fn run(lines: Receiver<Command>, mut out: Output, shared: &Shared) {
    let mut reported = shared.dropped.load(Ordering::Relaxed);
    let mut failing = false;
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        let mut stop = false;
        while let Some(command) = next.take() {
            match command {
                Command::Line(line) => out.write(line.as_bytes()),
                Command::Stop => {
                    stop = true;
                    break;
                }
            }
            next = lines.try_recv().ok();
        }
        let flushed = out.flush();
        report_failure(&out, flushed, &mut failing);
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            tracing::warn!(
                dropped = dropped - reported,
                "audit log queue full: lines dropped"
            );
            reported = dropped;
        }
        if stop {
            break;
        }
    }
    let synced = out.flush().and_then(|()| out.sync());
    report_failure(&out, synced, &mut failing);
}

/// Logs a write failure once, and once again when writing works again.
fn report_failure(out: &Output, result: io::Result<()>, failing: &mut bool) {
    match result {
        Err(e) if !*failing => {
            *failing = true;
            tracing::error!(file = %out.name(), error = %e, "audit log lines cannot be written");
        }
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!(file = %out.name(), "audit log lines are written again");
        }
        _ => {}
    }
}

/// Where a writer writes.
enum Output {
    /// Whole batches of lines, each under stdout's lock, so that they never
    /// interleave with the other log lines.
    Stdout(Vec<u8>),
    /// A file opened for appending.
    File {
        file: BufWriter<File>,
        path: PathBuf,
        /// Set by a failed write; reported by the next flush.
        error: Option<io::Error>,
    },
}

impl Output {
    fn open(target: &AuditTarget) -> Result<Output, AuditError> {
        match target {
            AuditTarget::Stdout => Ok(Output::Stdout(Vec::new())),
            AuditTarget::File(path) => {
                let file = open_append(path).map_err(|source| AuditError::Open {
                    path: path.clone(),
                    source,
                })?;
                Ok(Output::File {
                    file: BufWriter::with_capacity(64 * 1024, file),
                    path: path.clone(),
                    error: None,
                })
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".to_string(),
            Output::File { path, .. } => path.display().to_string(),
        }
    }

    fn write(&mut self, line: &[u8]) {
        match self {
            Output::Stdout(batch) => batch.extend_from_slice(line),
            Output::File { file, error, .. } => {
                if let Err(e) = file.write_all(line) {
                    error.get_or_insert(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(batch) => {
                let written = io::stdout().lock().write_all(batch);
                batch.clear();
                written
            }
            Output::File { file, error, .. } => match error.take() {
                Some(e) => Err(e),
                None => file.flush(),
            },
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(_) => Ok(()),
            Output::File { file, .. } => file.get_ref().sync_all(),
        }
    }
}

/// Opens `path` for appending, creating it (readable by its owner only,
/// as it names users and their addresses) and its directory if missing.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)?;
        }
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// A user name as the audit line holds it: at most [`MAX_USER_LEN`] bytes
/// (a failed sign-in's name is whatever was typed).
fn clip_user(user: &str) -> &str {
    if user.len() <= MAX_USER_LEN {
        return user;
    }
    let mut end = MAX_USER_LEN;
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn lines_hold_the_contract_fields_and_reach_the_file_by_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.jsonl");
        let audit = Audit::start(Some(&AuditTarget::File(path.clone()))).unwrap();
        assert!(audit.is_on());
        let id = SessionId::generate();
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        audit.login(How::Form, "alice", Some(client), id.log_tag());
        audit.refused(Event::LoginThrottled, How::Form, "bob", None);
        audit.user_removed("carol", 2);
        audit.close().await;
        assert!(!audit.is_on());
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        let login = &got[0];
        assert_eq!(login["event"], "login");
        assert_eq!(login["how"], "form");
        assert_eq!(login["user"], "alice");
        assert_eq!(login["client"], "2001:db8::1");
        assert_eq!(login["session"], id.log_hash());
        assert!(login.get("ended").is_none());
        let time = login["time"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
        assert_eq!(got[1]["event"], "login_throttled");
        assert_eq!(got[1]["session"], serde_json::Value::Null);
        assert_eq!(got[2]["event"], "user_removed");
        assert_eq!(got[2]["how"], "users_file");
        assert_eq!(got[2]["ended"], 2);
        // Closed: nothing more is written, nothing fails.
        audit.user_removed("dave", 0);
        assert_eq!(lines(&path).len(), 3);
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
    }

    #[tokio::test]
    async fn close_waits_for_every_line_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::start(Some(&AuditTarget::File(path.clone()))).unwrap();
        let n = QUEUE_LINES / 2;
        for i in 0..n {
            audit.user_removed(&format!("user{i}"), i);
        }
        audit.close().await;
        let got = lines(&path);
        assert_eq!(got.len(), n);
        assert_eq!(got[n - 1]["ended"], n - 1);
        assert_eq!(audit.dropped(), 0);
    }

    #[tokio::test]
    async fn a_reopen_after_a_rename_sends_new_lines_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotated = dir.path().join("audit.jsonl.1");
        let target = AuditTarget::File(path.clone());
        let audit = Audit::start(Some(&target)).unwrap();
        for n in 0..100 {
            audit.user_removed(&format!("before{n}"), 0);
        }
        fs::rename(&path, &rotated).unwrap();
        audit.reopen(Some(&target));
        audit.user_removed("after", 0);
        audit.close().await;
        // The old writer may still be finishing its queue into the renamed file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lines(&rotated).len() < 100 {
            assert!(std::time::Instant::now() < deadline, "old lines lost");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let old: Vec<_> = lines(&rotated).iter().map(|l| l["user"].clone()).collect();
        let expected: Vec<serde_json::Value> =
            (0..100).map(|n| format!("before{n}").into()).collect();
        assert_eq!(old, expected);
        let new = lines(&path);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0]["user"], "after");
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        // A writer whose thread never reads: the queue fills up.
        let (queue, _lines) = mpsc::sync_channel(2);
        let audit = Audit::off();
        audit.shared.writer.store(Some(Arc::new(Writer {
            queue,
            thread: Mutex::new(None),
        })));
        for _ in 0..5 {
            audit.user_removed("x", 0);
        }
        assert_eq!(audit.dropped(), 3);
    }

    #[test]
    fn an_unwritable_target_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let target = AuditTarget::File(dir.path().to_path_buf());
        let err = Audit::start(Some(&target))
            .err()
            .expect("a directory is no file");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn long_names_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(200);
        let clipped = clip_user(&long);
        assert!(clipped.len() <= MAX_USER_LEN && long.starts_with(clipped));
        assert_eq!(clip_user("alice"), "alice");
    }
}
