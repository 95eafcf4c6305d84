//! Runs one script: spawn, feed stdin, log stderr, read stdout, and always
//! clean up.
//!
//! Each script runs as the leader of its own process group. A supervisor task
//! owns the child and ends the run in exactly one way: it kills the whole
//! group, then reaps the child. It does that when
//!
//! - the script's main process exits (whatever it left behind goes with it),
//! - the timeout passes,
//! - the response body is dropped before its end (the client went away), or
//!   the request is abandoned before the headers were read,
//! - the client's request body fails halfway (a truncated upload must not be
//!   processed as if it were whole).
//!
//! The group is killed before the leader is reaped: as long as the leader is
//! an unreaped zombie its process group id cannot be reused, so the kill can
//! never hit an unrelated process. A thread waits for the exit with
//! `waitid(WNOWAIT)`, which sees the exit without reaping.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{Instant, Sleep};

use super::CgiError;
use super::environment::Environment;
use super::locate::Script;
use super::output::{self, MAX_HEADER_BLOCK, ScriptHead};

/// How much of stdout one body frame carries at most.
const CHUNK: usize = 16 * 1024;

/// The longest stderr line logged; the rest of a longer line is cut.
const MAX_LOG_LINE: usize = 4096;

/// How long stderr may still be drained after the script has been reaped
/// (a process that escaped the group could hold it open for ever).
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// A running script whose stdout has not been handed to a body yet.
pub(super) struct Run {
    stdout: ChildStdout,
    /// Sent when stdout ended normally: the script may then finish on its
    /// own, within the timeout. Dropped unsent, it tells the supervisor that
    /// the reader gave up and the script must be killed now.
    detach: oneshot::Sender<()>,
    deadline: Instant,
}

/// Starts `script` with `env` and hands it to a supervisor task.
///
/// `body`, when given, is streamed to the script's stdin; `slot` is held
/// until the script has been reaped.
pub(super) fn spawn<B>(
    script: &Script,
    env: &Environment,
    body: Option<B>,
    slot: Arc<OwnedSemaphorePermit>,
    timeout: Duration,
) -> Result<Run, CgiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let name: Arc<str> = Arc::from(script.display_name());
    let body = body.filter(|body| !body.is_end_stream());
    let mut command = Command::new(&script.filename);
    command
        .env_clear()
        .envs(
            env.iter()
                .map(|(key, value)| (key, OsStr::from_bytes(value))),
        )
        .stdin(if body.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = script.filename.parent() {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|e| {
        tracing::warn!(target: "cgi", script = %name, error = %e, "cannot start script");
        match e.kind() {
            io::ErrorKind::PermissionDenied => CgiError::Forbidden,
            _ => CgiError::BadGateway(format!("cannot start {name}: {e}")),
        }
    })?;
    let deadline = Instant::now() + timeout;
    // A freshly spawned child always has its pid and the pipes asked for.
    let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
    else {
        let _ = child.start_kill();
        return Err(CgiError::BadGateway(format!("{name}: no process id")));
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(pid, &name);
        return Err(CgiError::BadGateway(format!("{name}: no output pipes")));
    };
    let exited = match watch_exit(pid) {
        Ok(exited) => exited,
        Err(e) => {
            kill_group(pid, &name);
            return Err(CgiError::BadGateway(format!(
                "{name}: cannot watch the process: {e}"
            )));
        }
    };
    let (body_failed_tx, body_failed) = oneshot::channel();
    let feeder = match (body, child.stdin.take()) {
        (Some(body), Some(stdin)) => Some(tokio::spawn(feed_stdin(
            body,
            stdin,
            body_failed_tx,
            name.clone(),
        ))),
        _ => None,
    };
    let stderr_log = tokio::spawn(log_stderr(stderr, name.clone()));
    let (detach_tx, detach_rx) = oneshot::channel();
    tokio::spawn(supervise(Supervised {
        child,
        pid,
        name,
        deadline,
        exited,
        detach: detach_rx,
        body_failed,
        feeder,
        stderr_log,
        slot,
    }));
    Ok(Run {
        stdout,
        detach: detach_tx,
        deadline,
    })
}

impl Run {
    /// Reads stdout up to the end of the header block and parses it. Returns
    /// the head and whatever body bytes came with the last read.
    pub async fn read_head(&mut self) -> Result<(ScriptHead, Bytes), CgiError> {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut seen = 0;
        loop {
            if let Some(end) = output::header_block_end(&buf, seen) {
                if end > MAX_HEADER_BLOCK {
                    break;
                }
                let rest = buf.split_off(end).freeze();
                let head = output::parse(&buf).map_err(CgiError::BadGateway)?;
                return Ok((head, rest));
            }
            if buf.len() > MAX_HEADER_BLOCK {
                break;
            }
            seen = buf.len();
            buf.reserve(8 * 1024);
            let read = tokio::time::timeout_at(self.deadline, self.stdout.read_buf(&mut buf)).await;
            match read {
                Err(_elapsed) => return Err(CgiError::Timeout),
                Ok(Err(e)) => {
                    return Err(CgiError::BadGateway(format!(
                        "reading the script's output: {e}"
                    )));
                }
                Ok(Ok(0)) if Instant::now() >= self.deadline => return Err(CgiError::Timeout),
                Ok(Ok(0)) if buf.is_empty() => {
                    return Err(CgiError::BadGateway("no output".to_owned()));
                }
                Ok(Ok(0)) => {
                    return Err(CgiError::BadGateway(
                        "output ended inside the header block".to_owned(),
                    ));
                }
                Ok(Ok(_)) => {}
            }
        }
        Err(CgiError::BadGateway(format!(
            "header block larger than {MAX_HEADER_BLOCK} bytes"
        )))
    }

    /// The first bytes of the body: `rest` when it holds any, else one more
    /// read. Empty means the script printed no body at all.
    pub async fn first_body_bytes(&mut self, rest: Bytes) -> Result<Bytes, CgiError> {
        if !rest.is_empty() {
            return Ok(rest);
        }
        let mut buf = BytesMut::with_capacity(CHUNK);
        match tokio::time::timeout_at(self.deadline, self.stdout.read_buf(&mut buf)).await {
            Err(_elapsed) => Err(CgiError::Timeout),
            Ok(Err(e)) => Err(CgiError::BadGateway(format!(
                "reading the script's output: {e}"
            ))),
            Ok(Ok(_)) => Ok(buf.freeze()),
        }
    }

    /// The script's output is complete; it may finish on its own.
    pub fn finish(self) {
        let _ = self.detach.send(());
    }

    /// Turns the rest of stdout into the response body, starting with `first`.
    pub fn into_body(self, first: Bytes) -> CgiBody {
        CgiBody {
            state: State::Streaming(Box::new(Streaming {
                pending: first,
                stdout: self.stdout,
                buf: BytesMut::new(),
                deadline: self.deadline,
                timer: Box::pin(tokio::time::sleep_until(self.deadline)),
                detach: Some(self.detach),
            })),
        }
    }
}

/// Streaming response body: the script's stdout after the header block.
///
/// Dropping it before its end kills the script's process group. When the
/// timeout passes while the body is still streaming, the body ends with an
/// [`io::ErrorKind::TimedOut`] error.
pub struct CgiBody {
    state: State,
}

enum State {
    Streaming(Box<Streaming>),
    Done,
}

struct Streaming {
    /// Bytes read with the header block, sent first.
    pending: Bytes,
    stdout: ChildStdout,
    buf: BytesMut,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    /// Dropped with the body: an unfinished body kills the script.
    detach: Option<oneshot::Sender<()>>,
}

impl CgiBody {
    /// A body with no bytes, for answers that need no script output.
    pub fn empty() -> Self {
        CgiBody { state: State::Done }
    }
}

impl std::fmt::Debug for CgiBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Streaming(_) => "streaming",
            State::Done => "done",
        };
        f.debug_struct("CgiBody").field("state", &state).finish()
    }
}

impl Body for CgiBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let State::Streaming(streaming) = &mut this.state else {
            return Poll::Ready(None);
        };
        if !streaming.pending.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(
                &mut streaming.pending,
            )))));
        }
        match streaming.poll_chunk(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(Ok(None)) => {
                if let Some(detach) = streaming.detach.take() {
                    let _ = detach.send(());
                }
                this.state = State::Done;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                // Dropping the detach sender tells the supervisor to kill.
                this.state = State::Done;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Streaming(_) => SizeHint::default(),
        }
    }
}

impl Streaming {
    /// The next chunk of stdout; `None` at its end.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.buf.len() != CHUNK {
            self.buf.clear();
            self.buf.resize(CHUNK, 0);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf);
        match Pin::new(&mut self.stdout).poll_read(cx, &mut read_buf) {
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n > 0 {
                    self.buf.truncate(n);
                    return Poll::Ready(Ok(Some(self.buf.split().freeze())));
                }
                // The supervisor kills the group when the timeout passes,
                // which also ends stdout: that end is a failure, not the
                // script's own.
                if Instant::now() >= self.deadline {
                    return Poll::Ready(Err(timed_out()));
                }
                Poll::Ready(Ok(None))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "CGI script timed out")
}

/// Everything the supervisor owns for one run.
struct Supervised {
    child: Child,
    pid: Pid,
    name: Arc<str>,
    deadline: Instant,
    exited: oneshot::Receiver<()>,
    detach: oneshot::Receiver<()>,
    body_failed: oneshot::Receiver<()>,
    feeder: Option<tokio::task::JoinHandle<()>>,
    stderr_log: tokio::task::JoinHandle<()>,
    slot: Arc<OwnedSemaphorePermit>,
}

/// Why a run ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited,
    TimedOut,
    Abandoned,
    RequestBodyFailed,
}

/// Kills the group if the supervisor itself is dropped (runtime shutdown)
/// before it could reap the child.
struct GroupGuard {
    pid: Pid,
    name: Arc<str>,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pid, &self.name);
        }
    }
}

async fn supervise(run: Supervised) {
    let Supervised {
        mut child,
        pid,
        name,
        deadline,
        mut exited,
        mut detach,
        mut body_failed,
        feeder,
        mut stderr_log,
        slot,
    } = run;
    let mut guard = GroupGuard {
        pid,
        name: name.clone(),
        armed: true,
    };
    let mut has_exited = false;
    let mut watching_detach = true;
    let mut watching_body = feeder.is_some();
    let end = loop {
        tokio::select! {
            _ = &mut exited => {
                has_exited = true;
                break End::Exited;
            }
            () = tokio::time::sleep_until(deadline) => break End::TimedOut,
            detached = &mut detach, if watching_detach => match detached {
                Ok(()) => watching_detach = false,
                Err(_) => break End::Abandoned,
            },
            failed = &mut body_failed, if watching_body => match failed {
                Ok(()) => break End::RequestBodyFailed,
                Err(_) => watching_body = false,
            },
        }
    };
    // Also after a normal exit: nothing the script started outlives it.
    kill_group(pid, &name);
    if !has_exited {
        let _ = exited.await;
    }
    let status = child.wait().await;
    guard.armed = false;
    match (&end, status) {
        (End::TimedOut, _) => {
            tracing::warn!(target: "cgi", script = %name, "timed out; process group killed")
        }
        (End::Exited, Ok(status)) if !status.success() => {
            tracing::warn!(target: "cgi", script = %name, %status, "script failed");
        }
        (End::Exited, Ok(_)) => {}
        (End::Abandoned | End::RequestBodyFailed, _) => {
            tracing::debug!(target: "cgi", script = %name, reason = ?end, "process group killed");
        }
        (_, Err(e)) => {
            tracing::warn!(target: "cgi", script = %name, error = %e, "cannot reap script")
        }
    }
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    if tokio::time::timeout(STDERR_DRAIN, &mut stderr_log)
        .await
        .is_err()
    {
        stderr_log.abort();
    }
    drop(slot);
}

/// SIGKILL to the whole process group led by `pid`.
fn kill_group(pid: Pid, name: &str) {
    match killpg(pid, Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(target: "cgi", script = name, error = %e, "cannot kill process group")
        }
    }
}

/// Resolves when `pid` has exited, without reaping it.
fn watch_exit(pid: Pid) -> io::Result<oneshot::Receiver<()>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("cgi-wait".to_owned())
        .spawn(move || {
            // Retry when interrupted; any other result means the child has
            // exited (or is not ours to wait for any more).
            while let Err(Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
            let _ = tx.send(());
        })?;
    Ok(rx)
}

/// Streams the request body into the script's stdin, then closes it.
///
/// A script that stops reading early is not an error: the write fails and the
/// rest of the body is dropped. A request body that fails is reported, so the
/// supervisor can kill the script before it acts on half an upload.
async fn feed_stdin<B>(
    mut body: B,
    mut stdin: ChildStdin,
    failed: oneshot::Sender<()>,
    name: Arc<str>,
) where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        // Take the data out before awaiting the write: the body's error type
        // need not be Send.
        let data = match body.frame().await.map(|frame| frame.map(Frame::into_data)) {
            None => return,
            Some(Ok(Ok(data))) => data,
            Some(Ok(Err(_trailers))) => continue,
            Some(Err(e)) => {
                let error: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::debug!(target: "cgi", script = %name, %error, "request body failed");
                let _ = failed.send(());
                return;
            }
        };
        if let Err(e) = stdin.write_all(&data).await {
            tracing::debug!(target: "cgi", script = %name, error = %e, "script stopped reading its input");
            return;
        }
    }
}

/// Sends each line the script writes to stderr to the log.
async fn log_stderr(stderr: ChildStderr, name: Arc<str>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut cut = false;
    while let Ok(available) = reader.fill_buf().await {
        if available.is_empty() {
            break;
        }
        let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_LOG_LINE.saturating_sub(line.len());
        let text = &available[..taken - usize::from(complete)];
        cut |= text.len() > room;
        line.extend_from_slice(&text[..text.len().min(room)]);
        reader.consume(taken);
        if complete {
            emit_stderr_line(&name, &line, cut);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        emit_stderr_line(&name, &line, cut);
    }
}

fn emit_stderr_line(name: &str, line: &[u8], cut: bool) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let ellipsis = if cut { " [...]" } else { "" };
    tracing::warn!(target: "cgi", script = name, "{text}{ellipsis}");
}
