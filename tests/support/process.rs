//! The real `sessiongate` binary as a child process, and `redis-server`s
//! started for one test: free ports picked by the OS, readiness polled
//! against a budget, every process stopped when its handle is dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a process may take to start answering, or to exit when told to.
pub const BUDGET: Duration = Duration::from_secs(20);
/// Pause between two readiness probes.
const POLL: Duration = Duration::from_millis(20);

/// A port nothing listens on right now: bound to :0, read, released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `probe` until it holds, failing the test when `budget` runs out.
pub async fn eventually(what: &str, budget: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + budget;
    while !probe() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not the case after {budget:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Whether something accepts TCP connections on `addr`.
pub fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A child process whose output goes to files in a directory, and which is
/// killed when dropped.
pub struct Proc {
    child: Child,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `command`, its output sent to `dir/{name}.out` and `.err`.
    pub fn spawn(mut command: Command, dir: &Path, name: &str) -> Proc {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Proc {
            child,
            name: name.to_string(),
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit on its own, within [`BUDGET`].
    pub async fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + BUDGET;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {BUDGET:?}\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until `addr` accepts connections; fails with the process's
    /// output if it exits or the budget runs out first.
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + BUDGET;
        while !answers(addr) {
            if let Some(status) = self.exited() {
                panic!("{} exited with {status}\n{}", self.name, self.output());
            }
            assert!(
                Instant::now() < deadline,
                "{} not listening on {addr} after {BUDGET:?}\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the process wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        format!(
            "--- {} stdout ---\n{out}--- stderr ---\n{}",
            self.name,
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `sessiongate` process serving a config written to a directory.
pub struct Gateway {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The config file it runs.
    pub config: PathBuf,
}

impl Gateway {
    /// Writes `body` (a config without `[server]`) to `dir/{name}.toml`
    /// with a `[server]` section listening on a free port, and starts the
    /// binary on it without waiting.
    pub fn spawn(dir: &Path, name: &str, body: &str) -> Gateway {
        Gateway::spawn_with_env(dir, name, body, &[])
    }

    /// [`Gateway::spawn`] with extra environment variables.
    pub fn spawn_with_env(dir: &Path, name: &str, body: &str, env: &[(&str, &Path)]) -> Gateway {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("[server]\nlisten = [\"{addr}\"]\nshutdown_grace = \"5s\"\n\n{body}"),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
        command
            .arg("--config")
            .arg(&config)
            .env_remove("SESSIONGATE_CONFIG")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Gateway {
            proc: Proc::spawn(command, dir, name),
            addr,
            config,
        }
    }

    /// [`Gateway::spawn`], then waits until it listens.
    pub async fn start(dir: &Path, name: &str, body: &str) -> Gateway {
        let mut g = Gateway::spawn(dir, name, body);
        g.proc.wait_listening(g.addr).await;
        g
    }

    /// [`Gateway::spawn_with_env`], then waits until it listens.
    pub async fn start_with_env(
        dir: &Path,
        name: &str,
        body: &str,
        env: &[(&str, &Path)],
    ) -> Gateway {
        let mut g = Gateway::spawn_with_env(dir, name, body, env);
        g.proc.wait_listening(g.addr).await;
        g
    }

    /// `http://ADDR{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(mut self) -> ExitStatus {
        self.proc.signal(Signal::SIGTERM);
        self.proc.wait().await
    }
}

/// Whether tests that need `redis-server` may be skipped on this machine.
fn may_skip_redis() -> bool {
    std::env::var("SESSIONGATE_SKIP_REDIS").is_ok_and(|v| v == "1")
}

/// Whether `redis-server` and `redis-cli` are installed. When they are not,
/// this fails the test, unless `SESSIONGATE_SKIP_REDIS=1` asks to skip it
/// (then it returns `false` and the test returns early).
pub fn redis_available() -> bool {
    let installed = ["redis-server", "redis-cli"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if installed {
        return true;
    }
    assert!(
        may_skip_redis(),
        "redis-server and redis-cli are needed by this test: install them \
         (apt-get install redis-server redis-tools) or set SESSIONGATE_SKIP_REDIS=1 to skip it"
    );
    eprintln!("skipped: redis-server is not installed and SESSIONGATE_SKIP_REDIS=1");
    false
}

/// A throwaway `redis-server`: no persistence, on a port of its own.
pub struct Redis {
    /// The process; `None` while stopped.
    proc: Option<Proc>,
    /// Its port (kept across a restart).
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl Redis {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start(dir: &Path) -> Redis {
        Redis::start_with(dir, &[]).await
    }

    /// [`Redis::start`] on a given port (one a proxy already points at).
    pub async fn start_on(dir: &Path, port: u16) -> Redis {
        Redis::start_with_port(dir, port, &[]).await
    }

    /// [`Redis::start`] with extra `redis-server` arguments.
    pub async fn start_with(dir: &Path, extra: &[&str]) -> Redis {
        Redis::start_with_port(dir, free_port(), extra).await
    }

    async fn start_with_port(dir: &Path, port: u16, extra: &[&str]) -> Redis {
        let mut redis = Redis {
            proc: None,
            port,
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Kills the server (SIGKILL: it is gone, as in a crash).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Sends a signal to the server (SIGSTOP: it hangs without closing
    /// its connections).
    pub fn signal(&self, signal: Signal) {
        if let Some(p) = &self.proc {
            p.signal(signal);
        }
    }

    /// Starts the server again on the same port, empty, and waits until
    /// it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra);
        let mut proc = Proc::spawn(command, &self.dir, &format!("redis-{port}"));
        // A restarted cluster node reads its identity back from nodes.conf.
        proc.wait_listening(self.addr()).await;
        let deadline = Instant::now() + BUDGET;
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis on {port} never answered PING"
            );
            tokio::time::sleep(POLL).await;
        }
        self.proc = Some(proc);
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A Redis Cluster of three primaries, no replicas, made for one test.
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<Redis>,
}

impl Cluster {
    /// Starts three cluster-enabled servers and joins them with
    /// `redis-cli --cluster create`, then waits for `cluster_state:ok`.
    pub async fn start(dir: &Path) -> Cluster {
        let mut nodes = Vec::new();
        for i in 0..3 {
            let node_dir = dir.join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            nodes.push(
                Redis::start_with(
                    &node_dir,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
                .await,
            );
        }
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + BUDGET;
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            tokio::time::sleep(POLL).await;
        }
        Cluster { nodes }
    }

    /// `redis+cluster://h1:p1,h2:p2,h3:p3`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| n.addr().to_string()).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}
