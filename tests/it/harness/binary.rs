//! The real `sessiongate` binary: [`command`] for a one-off run of a
//! subcommand, [`Binary`] for the proxy started from a TOML string.
//!
//! A started proxy listens on 127.0.0.1:0, whatever its config says (the
//! shipped ones say 0.0.0.0:8080), unless a test asks for the config's own
//! addresses. It is ready when it has logged one readiness line per
//! listener, the line `src/main.rs` writes once the listener is bound:
//!
//! ```text
//! 2026-01-02T03:04:05.123456Z  INFO sessiongate: listening addr=127.0.0.1:41234
//! {"timestamp":"…","level":"INFO","message":"listening","addr":"127.0.0.1:41234",…}
//! ```
//!
//! (text or JSON, as `[log] format` says; at the `info` level, which the
//! config must not raise). The addresses come from those lines, so no port
//! is guessed and nothing is probed.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};

use nix::sys::signal::Signal;

use super::process::Proc;
use super::repo_root;

/// The binary with `args`, run from the repository root (where the shipped
/// configs' relative paths lead) and with no config or log filter from the
/// test's own environment.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
    command
        .args(args)
        .current_dir(repo_root())
        .env_remove("SESSIONGATE_CONFIG")
        .env_remove("RUST_LOG");
    command
}

/// The proxy, configured and not yet started.
pub struct Binary {
    config: toml::Table,
    env: Vec<(String, OsString)>,
    env_removed: Vec<String>,
    listen_as_configured: bool,
}

impl Binary {
    /// The proxy with `toml` as its config file.
    pub fn new(toml: &str) -> Binary {
        let config = toml
            .parse()
            .unwrap_or_else(|e| panic!("the test config is not TOML: {e}\n{toml}"));
        Binary::from_table(config)
    }

    /// The proxy with `config` as its config file.
    pub fn from_table(config: toml::Table) -> Binary {
        Binary {
            config,
            env: Vec::new(),
            env_removed: Vec::new(),
            listen_as_configured: false,
        }
    }

    /// Sets an environment variable of the process.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Binary {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Starts the process without the environment variable `key`, whatever
    /// the test's own environment holds.
    pub fn env_remove(mut self, key: &str) -> Binary {
        self.env_removed.push(key.to_string());
        self
    }

    /// Keeps the config's `server.listen`, for a test that needs the
    /// address before the start (`sessiongate healthcheck` reads it from
    /// the config) or a given one (a port already taken).
    pub fn listen_as_configured(mut self) -> Binary {
        self.listen_as_configured = true;
        self
    }

    /// Starts the proxy and waits for its readiness lines.
    pub async fn start(self) -> RunningBinary {
        let listeners = self.listeners();
        let (mut proc, config, dir) = self.spawn();
        let stdout = proc.stdout_path();
        let addrs = proc
            .until(
                &format!("listening ({listeners} readiness lines)"),
                async || {
                    let text = std::fs::read_to_string(&stdout).unwrap_or_default();
                    let addrs = listening_addrs(&text);
                    (addrs.len() >= listeners).then_some(addrs)
                },
            )
            .await;
        RunningBinary {
            addr: addrs[0],
            config,
            proc,
            log_lines_read: 0,
            _dir: dir,
        }
    }

    /// Runs the proxy to its end, for a start that must fail: its exit
    /// status and output, within the budget.
    pub async fn run(self) -> Exited {
        let (mut proc, _config, _dir) = self.spawn();
        let status = proc.wait().await;
        Exited {
            status,
            stdout: proc.stdout(),
            stderr: proc.stderr(),
        }
    }

    /// How many listeners the proxy will have.
    fn listeners(&self) -> usize {
        if !self.listen_as_configured {
            return 1;
        }
        self.config
            .get("server")
            .and_then(|s| s.get("listen"))
            .and_then(|l| l.as_array())
            .map_or(1, Vec::len)
    }

    /// Writes the config to a temporary directory and starts the process.
    fn spawn(mut self) -> (Proc, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        if !self.listen_as_configured {
            set(
                &mut self.config,
                "server",
                "listen",
                vec!["127.0.0.1:0"].into(),
            );
        }
        let workers_set = self
            .config
            .get("server")
            .is_some_and(|s| s.get("workers").is_some());
        if let (Some(n), false) = (super::test_workers(), workers_set) {
            let n = i64::try_from(n).expect("a small number");
            set(&mut self.config, "server", "workers", n.into());
            set(&mut self.config, "server", "thread_per_core", true.into());
        }
        // The proxy runs from the repository root: a snapshot a shipped
        // config names there goes to the temporary directory instead.
        let snapshot = self
            .config
            .get("store")
            .and_then(|s| s.get("snapshot"))
            .and_then(|s| s.as_str())
            .map(PathBuf::from);
        if let Some(relative) = snapshot.filter(|p| p.is_relative()) {
            let moved = dir.path().join(relative.file_name().expect("a file name"));
            set(
                &mut self.config,
                "store",
                "snapshot",
                moved.display().to_string().into(),
            );
        }
        let path = dir.path().join("sessiongate.toml");
        let text = toml::to_string(&self.config).expect("the config as TOML");
        std::fs::write(&path, text).expect("write the config");
        let mut command = command(&["--config"]);
        for key in &self.env_removed {
            command.env_remove(key);
        }
        command.arg(&path).envs(self.env);
        (Proc::spawn(command, "sessiongate"), path, dir)
    }
}

/// A proxy process, killed when dropped.
pub struct RunningBinary {
    /// Where it listens (the first listener, when the config has several).
    pub addr: SocketAddr,
    /// The config file it runs: rewrite it, then SIGHUP, to reload.
    pub config: PathBuf,
    /// The process.
    pub proc: Proc,
    /// Lines of the log [`RunningBinary::logged`] has gone past.
    log_lines_read: usize,
    /// Holds the config file.
    _dir: tempfile::TempDir,
}

impl RunningBinary {
    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: Signal) {
        self.proc.signal(signal);
    }

    /// SIGTERM, then the exit status (within the budget).
    pub async fn terminate(&mut self) -> ExitStatus {
        self.proc.signal(Signal::SIGTERM);
        self.proc.wait().await
    }

    /// Waits for the next line of its log (stdout) that contains `text`,
    /// after the lines earlier calls returned, and returns it: the proxy
    /// saying it did something is the event a test waits on.
    pub async fn logged(&mut self, text: &str) -> String {
        let stdout = self.proc.stdout_path();
        let from = self.log_lines_read;
        let (index, line) = self
            .proc
            .until(&format!("logged {text:?}"), async || {
                let log = std::fs::read_to_string(&stdout).unwrap_or_default();
                log.lines()
                    .enumerate()
                    .skip(from)
                    .find(|(_, line)| line.contains(text))
                    .map(|(index, line)| (index, line.to_string()))
            })
            .await;
        self.log_lines_read = index + 1;
        line
    }

    /// Both outputs so far, for failure messages.
    pub fn output(&self) -> String {
        self.proc.output()
    }
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// The addresses of the readiness lines in a log.
pub fn listening_addrs(log: &str) -> Vec<SocketAddr> {
    log.lines().filter_map(listening_addr).collect()
}

/// The address of a readiness line, text or JSON.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        if event.get("message")?.as_str()? != "listening" {
            return None;
        }
        return event.get("addr")?.as_str()?.parse().ok();
    }
    let (_, addr) = line.split_once(" INFO sessiongate: listening addr=")?;
    addr.trim().parse().ok()
}

/// Reads a TOML file of the repository.
pub fn repo_toml(relative: &str) -> toml::Table {
    let path = repo_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

/// Sets `[table] key = value`, creating the table when needed.
pub fn set(config: &mut toml::Table, table_name: &str, key: &str, value: toml::Value) {
    table(config, table_name).insert(key.to_string(), value);
}

/// `[name]`, created when missing.
fn table<'a>(config: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    config
        .entry(name)
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap_or_else(|| panic!("[{name}] is not a table"))
}
