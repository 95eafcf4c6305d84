//! `redis-server`s started for one test: a server (which a test may kill,
//! stop or restart on the same port) and a three-node Redis Cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use super::process::{BUDGET, Proc, eventually, free_port};

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
        let mut proc = Proc::spawn(command, &format!("redis-server on {port}"));
        // A restarted cluster node reads its identity back from nodes.conf.
        proc.wait_listening(self.addr()).await;
        proc.until("answering PING", async || {
            self.cli(&["PING"]).trim() == "PONG"
        })
        .await;
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
        eventually("the cluster is ok", BUDGET, async || {
            nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        })
        .await;
        Cluster { nodes }
    }

    /// `redis+cluster://h1:p1,h2:p2,h3:p3`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| n.addr().to_string()).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}
