//! Real programs for end-to-end tests: the `sessiongate` binary, Apache
//! httpd and chromedriver, each on 127.0.0.1, waited for by polling against a
//! named budget (never a bare sleep), and killed when its handle drops.
//!
//! The system programs (httpd, Chromium) may be missing on a developer's
//! machine: a test then says so and returns. In CI (`CI` set), where
//! `.ci/run` installs them, a missing one fails the test instead.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a started program may take to answer.
pub const READY_BUDGET: Duration = Duration::from_secs(30);
/// How long a program may take to stop after SIGTERM before it is killed.
const STOP_BUDGET: Duration = Duration::from_secs(5);
/// Between two readiness probes.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The repository: the demo config's relative paths resolve against it.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is CI's, where every program a test needs is installed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The first of `candidates` that exists (absolute paths, or names looked
/// up in PATH). `None`, after saying why, when there is none and this is not
/// CI; in CI a missing program is a failure.
pub fn system_program(what: &str, candidates: &[&str], debian_packages: &str) -> Option<PathBuf> {
    let found = candidates.iter().find_map(|c| {
        let c = Path::new(c);
        if c.is_absolute() {
            c.is_file().then(|| c.to_path_buf())
        } else {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join(c))
                .find(|p| p.is_file())
        }
    });
    if found.is_none() {
        let message = format!(
            "{what} not found (looked for {}); install it with `apt-get install -y {debian_packages}`",
            candidates.join(", ")
        );
        assert!(
            !in_ci(),
            "{message}: .ci/run installs it, so CI must have it"
        );
        // Straight to stderr, not eprintln!: the test harness would swallow
        // the message of a test that passes.
        let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
    }
    found
}

/// A port that was free a moment ago, for programs that cannot be told to
/// pick one themselves and report it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port on 127.0.0.1")
}

/// A child process whose output is collected, killed on drop.
pub struct Running {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `command` with stdout and stderr collected. Each complete
    /// stdout line also goes to `lines`, for a caller waiting on one.
    fn spawn(name: &str, mut command: Command, lines: Option<mpsc::Sender<String>>) -> Running {
        // A group of its own, so that what it starts (httpd's children,
        // Chromium under chromedriver) is stopped with it.
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out = Arc::clone(&output);
        std::thread::spawn(move || collect(stdout, &out, lines));
        let err = Arc::clone(&output);
        std::thread::spawn(move || collect(stderr, &err, None));
        Running {
            name: name.to_string(),
            child,
            output,
        }
    }

    /// Everything the program printed so far, for a failure message.
    pub fn output(&self) -> String {
        format!(
            "--- {} output ---\n{}",
            self.name,
            self.output.lock().unwrap()
        )
    }

    /// Panics, with the output so far, when the program has exited.
    fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status})\n{}", self.name, self.output());
        }
    }

    /// Polls `ready` until it holds, the program exits, or the budget runs out.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + READY_BUDGET;
        loop {
            self.assert_alive();
            if ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not {what} within {READY_BUDGET:?}\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(POLL_EVERY);
        }
    }
}

impl Drop for Running {
    /// SIGTERM to the whole group, a moment to stop cleanly, then SIGKILL to
    /// whatever is left of it.
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_BUDGET;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(POLL_EVERY);
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Appends every line from `from` to `to` (invalid UTF-8 replaced), and
/// sends each to `lines`.
fn collect(from: impl Read, to: &Mutex<String>, lines: Option<mpsc::Sender<String>>) {
    let mut from = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match from.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\r', '\n']);
                to.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(tx) = &lines {
                    let _ = tx.send(line.to_string());
                }
            }
        }
    }
}

/// The real `sessiongate` binary, run from the repository root.
pub struct Sessiongate {
    pub addr: SocketAddr,
    process: Running,
    _dir: tempfile::TempDir,
}

impl Sessiongate {
    /// Runs the binary with `config`, after making it listen on an ephemeral
    /// port of 127.0.0.1 and log JSON: the "listening" line then says which
    /// port, and that the proxy is ready.
    pub fn start(mut config: toml::Table, env: &[(&str, &str)]) -> Sessiongate {
        set(&mut config, "server", "listen", vec!["127.0.0.1:0"].into());
        set(&mut config, "log", "format", "json".into());
        let dir = tempfile::tempdir().expect("a temporary directory");
        // The proxy runs from the repository root: its snapshot must not
        // land in (or be shared through) the work tree.
        let has_snapshot = config
            .get("store")
            .and_then(|s| s.get("snapshot"))
            .is_some();
        if has_snapshot {
            let snapshot = dir.path().join("sessions.snapshot");
            set(
                &mut config,
                "store",
                "snapshot",
                snapshot.display().to_string().into(),
            );
        }
        let path = dir.path().join("sessiongate.toml");
        std::fs::write(&path, toml::to_string(&config).expect("TOML")).expect("write the config");

        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiongate"));
        command
            .arg("--config")
            .arg(&path)
            .current_dir(repo_root())
            .env_remove("SESSIONGATE_CONFIG")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied());
        let (tx, rx) = mpsc::channel();
        let mut process = Running::spawn("sessiongate", command, Some(tx));
        let deadline = Instant::now() + READY_BUDGET;
        let addr = loop {
            match rx.recv_timeout(POLL_EVERY) {
                Ok(line) => {
                    if let Some(addr) = listening_addr(&line) {
                        break addr;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // stdout closed: the process is on its way out, and the
                // next check reports how it ended.
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL_EVERY),
            }
            process.assert_alive();
            assert!(
                Instant::now() < deadline,
                "sessiongate did not listen within {READY_BUDGET:?}\n{}",
                process.output()
            );
        };
        Sessiongate {
            addr,
            process,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// The address in sessiongate's JSON "listening" log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event.get("message")?.as_str()? != "listening" {
        return None;
    }
    event.get("addr")?.as_str()?.parse().ok()
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
pub fn set(config: &mut toml::Table, table: &str, key: &str, value: toml::Value) {
    config
        .entry(table)
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap_or_else(|| panic!("[{table}] is not a table"))
        .insert(key.to_string(), value);
}

/// Apache httpd (Debian's `apache2`) with a config written for the httpd
/// image, moved onto this machine: see [`Httpd::start`].
pub struct Httpd {
    pub port: u16,
    process: Running,
    _root: tempfile::TempDir,
}

/// Where the httpd image keeps its server root, and where the compose file
/// mounts the demo site.
const IMAGE_SERVER_ROOT: &str = "/usr/local/apache2";
const IMAGE_SITE: &str = "/srv/legacy-site";

impl Httpd {
    /// Runs `binary` with `conf`, a config written for the httpd image, after
    /// three substitutions that move it onto this machine and nothing else:
    /// the image's server root becomes a temporary directory (whose
    /// `modules` is `modules_dir`), `Listen 80` a free loopback port, and the
    /// mounted site the repository's `examples/legacy-site`. Ready when `/`
    /// answers 200, which needs a working CGI daemon.
    pub fn start(binary: &Path, modules_dir: &Path, conf: &str) -> Httpd {
        let root = tempfile::tempdir().expect("a temporary directory");
        // Apache's children run as an unprivileged user when started as
        // root; they must reach the CGI daemon's socket under logs/.
        std::fs::create_dir(root.path().join("logs")).expect("logs/");
        std::fs::create_dir(root.path().join("conf")).expect("conf/");
        make_world_traversable(root.path());
        make_world_traversable(&root.path().join("logs"));
        std::os::unix::fs::symlink(modules_dir, root.path().join("modules"))
            .expect("link modules/");

        let port = free_port();
        let site = repo_root().join("examples/legacy-site");
        assert!(
            conf.lines().any(|l| l.trim() == "Listen 80"),
            "the httpd config should say `Listen 80`"
        );
        let conf = conf
            .replace(IMAGE_SERVER_ROOT, &root.path().display().to_string())
            .replace(IMAGE_SITE, &site.display().to_string())
            .replace("Listen 80\n", &format!("Listen 127.0.0.1:{port}\n"));
        let conf_path = root.path().join("conf/httpd.conf");
        std::fs::write(&conf_path, conf).expect("write the httpd config");

        let mut command = Command::new(binary);
        command.arg("-f").arg(&conf_path).arg("-DFOREGROUND");
        let mut process = Running::spawn("httpd", command, None);
        process.wait_until("serving CGI", || {
            http_status(port, "/").is_some_and(|s| s == 200)
        });
        Httpd {
            port,
            process,
            _root: root,
        }
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}

fn make_world_traversable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
}

/// The status of a plain `GET path` on 127.0.0.1:port, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// chromedriver, ready to open sessions of headless Chromium.
pub struct ChromeDriver {
    pub url: String,
    process: Running,
}

impl ChromeDriver {
    /// Starts `binary` on a free port; ready when its WebDriver status says so.
    pub fn start(binary: &Path) -> ChromeDriver {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let mut process = Running::spawn("chromedriver", command, None);
        let url = format!("http://127.0.0.1:{port}");
        process.wait_until("ready", || webdriver_ready(port));
        ChromeDriver { url, process }
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Whether `GET /status` says `"ready": true`.
fn webdriver_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    // The JSON object of the body, whatever the framing around it.
    let (Some(start), Some(end)) = (answer.find('{'), answer.rfind('}')) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&answer[start..=end])
        .ok()
        .and_then(|v| v.pointer("/value/ready")?.as_bool())
        .unwrap_or(false)
}
