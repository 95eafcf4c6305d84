//! Waiting, and child processes: [`eventually`], the one way a test waits
//! for something, and [`Proc`], the one way a test starts a program.
//!
//! A wait polls a check against a named budget; it never sleeps blindly.
//! A program runs in a process group of its own with its output in files,
//! and it is killed, with everything it started, when its handle drops, so
//! that a failed assertion leaves nothing running.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How long anything a test waits for may take: a program to start
/// answering or to exit, a change to show.
pub const BUDGET: Duration = Duration::from_secs(30);
/// Pause between two checks of a wait.
const POLL: Duration = Duration::from_millis(20);

/// What a check of [`eventually`] returns: `true`, or `Some(value)`, once
/// what it waits for is the case.
pub trait Done {
    /// What the wait gives back.
    type Value;
    /// The value, once done.
    fn done(self) -> Option<Self::Value>;
}

impl Done for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Done for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Runs `check` until it is done, pausing between tries; `None` once
/// `budget` has run out, for a caller that says more than [`eventually`]
/// when it fails.
pub async fn within<D: Done>(
    budget: Duration,
    mut check: impl AsyncFnMut() -> D,
) -> Option<D::Value> {
    let deadline = Instant::now() + budget;
    loop {
        if let Some(value) = check().await.done() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds (`true` or `Some(value)`, which it returns),
/// failing the test with `what` when `budget` runs out. The check is an
/// async closure, so that it may send a request:
/// `eventually("the backend got it", BUDGET, async || backend.seen().len() == 1)`.
pub async fn eventually<D: Done>(
    what: &str,
    budget: Duration,
    check: impl AsyncFnMut() -> D,
) -> D::Value {
    match within(budget, check).await {
        Some(value) => value,
        None => panic!("{what}: still not the case after {budget:?}"),
    }
}

/// A port nothing listens on right now: bound to :0, read, released. Only
/// for programs that cannot listen on port 0 and report the port they got
/// (redis-server, httpd, chromedriver), or for a config that must name its
/// port before the start (`sessiongate healthcheck` reads it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port on 127.0.0.1")
}

/// Whether something accepts TCP connections on `addr`.
pub fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A child process in a process group of its own, its stdout and stderr in
/// files; it and whatever it started are killed when the handle drops.
pub struct Proc {
    child: Child,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Holds the output files.
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts `command`; `name` appears in failure messages.
    pub fn spawn(mut command: Command, name: &str) -> Proc {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        // A group of its own, so that what it starts (httpd's children,
        // Chromium under chromedriver) is killed with it.
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("the stdout file"))
            .stderr(File::create(&stderr).expect("the stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc {
            child,
            name: name.to_string(),
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The process id (also its process group's).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"))
    }

    /// Sends a signal to the process (not to its group).
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap_or_else(|e| panic!("{signal} to {}: {e}", self.name));
    }

    /// Waits for the process to exit, within [`BUDGET`].
    pub async fn wait(&mut self) -> ExitStatus {
        let child = &mut self.child;
        let status = within(BUDGET, async || {
            child.try_wait().expect("the child's status")
        })
        .await;
        status.unwrap_or_else(|| {
            panic!(
                "{} did not exit within {BUDGET:?}\n{}",
                self.name,
                self.output()
            )
        })
    }

    /// Polls `check` until it holds, within [`BUDGET`]; fails the test with
    /// the process's output if it exits first or the budget runs out.
    pub async fn until<D: Done>(
        &mut self,
        what: &str,
        mut check: impl AsyncFnMut() -> D,
    ) -> D::Value {
        let child = &mut self.child;
        let outcome = within(BUDGET, async || match check().await.done() {
            Some(value) => Some(Ok(value)),
            None => child.try_wait().expect("the child's status").map(Err),
        })
        .await;
        match outcome {
            Some(Ok(value)) => value,
            Some(Err(status)) => panic!(
                "{} exited ({status}) before {what}\n{}",
                self.name,
                self.output()
            ),
            None => panic!(
                "{}: not {what} after {BUDGET:?}\n{}",
                self.name,
                self.output()
            ),
        }
    }

    /// Polls until `addr` accepts connections (see [`Proc::until`]).
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        self.until(&format!("listening on {addr}"), async || answers(addr))
            .await;
    }

    /// SIGKILL to the process group (a crash, and nothing left behind), and
    /// reaps the process.
    pub fn kill(&mut self) {
        let _ = killpg(self.pid(), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// The file its stdout goes to.
    pub fn stdout_path(&self) -> PathBuf {
        self.stdout.clone()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- stderr ---\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
