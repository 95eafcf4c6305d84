//! System programs for end-to-end tests, each on 127.0.0.1 and killed when
//! its handle drops: Apache httpd and chromedriver.
//!
//! They may be missing on a developer's machine: a test then says so and
//! returns. In CI (`CI` set), where `.ci/run` installs them, a missing one
//! fails the test instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{Proc, free_port};
use super::repo_root;

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

/// Apache httpd (Debian's `apache2`) with a config written for the httpd
/// image, moved onto this machine: see [`Httpd::start`].
pub struct Httpd {
    pub port: u16,
    process: Proc,
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
    /// mounted site a copy of the repository's `examples/legacy-site` in that
    /// directory. Ready when `/` answers 200, which needs a working CGI daemon.
    ///
    /// The copy is what lets the test pass wherever the repository is
    /// cloned: started as root, httpd runs its children and the CGI scripts
    /// as `www-data`, which cannot reach a checkout inside a private
    /// directory (a `mktemp -d`, root's home); the copy is world-readable.
    pub async fn start(binary: &Path, modules_dir: &Path, conf: &str) -> Httpd {
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
        let site = root.path().join("legacy-site");
        copy_world_readable(&repo_root().join("examples/legacy-site"), &site);
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
        let mut process = Proc::spawn(command, "httpd");
        process
            .until("serving CGI", async || http_status(port, "/") == Some(200))
            .await;
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

/// Copies the tree `from` to `to` (which must not exist) with directories
/// and executables mode 0755 and other files 0644, whatever the modes (and
/// the umask) of the checkout: readable by a server's unprivileged user.
fn copy_world_readable(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    make_world_traversable(to);
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let meta =
            std::fs::metadata(&source).unwrap_or_else(|e| panic!("stat {}: {e}", source.display()));
        if meta.is_dir() {
            copy_world_readable(&source, &target);
        } else {
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", target.display()));
        }
    }
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
    process: Proc,
}

impl ChromeDriver {
    /// Starts `binary` on a free port; ready when its WebDriver status says so.
    pub async fn start(binary: &Path) -> ChromeDriver {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let mut process = Proc::spawn(command, "chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        process.until("ready", async || webdriver_ready(port)).await;
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

/// php-fpm (Debian's `php-fpm`) with a config of its own in a temporary
/// directory: one pool on a loopback TCP port and one on a unix socket,
/// each of two static children, serving the scripts of `docroot`.
pub struct PhpFpm {
    /// The TCP pool's address.
    pub addr: std::net::SocketAddr,
    /// The unix socket pool's path.
    pub socket: PathBuf,
    process: Proc,
    _dir: tempfile::TempDir,
}

/// Children in each php-fpm pool: what a proxy's `upstream_max_connections`
/// is best set to (see `upstream::fastcgi::pool`).
pub const PHP_FPM_CHILDREN: usize = 2;

impl PhpFpm {
    /// Starts php-fpm, or says it is missing (see [`system_program`]).
    pub async fn start() -> Option<PhpFpm> {
        let binary = php_fpm_binary()?;
        let dir = tempfile::tempdir().expect("a temporary directory");
        make_world_traversable(dir.path());
        let port = free_port();
        let socket = dir.path().join("php-fpm.sock");
        // As root, php-fpm wants a user for its children, and -R to allow it.
        let root = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        };
        let user = if root {
            "user = root\ngroup = root\n"
        } else {
            ""
        };
        let pool = |name: &str, listen: &str| {
            format!(
                "[{name}]\n{user}listen = {listen}\npm = static\npm.max_children = {PHP_FPM_CHILDREN}\n\
                 pm.status_path = /fpm-status\ncatch_workers_output = yes\n"
            )
        };
        let conf = format!(
            "[global]\nerror_log = {}\ndaemonize = no\n\n{}\n{}",
            dir.path().join("php-fpm.log").display(),
            pool("tcp", &format!("127.0.0.1:{port}")),
            pool("unix", &socket.display().to_string()),
        );
        let conf_path = dir.path().join("php-fpm.conf");
        std::fs::write(&conf_path, conf).expect("write the php-fpm config");
        let mut command = Command::new(&binary);
        command
            .arg("--fpm-config")
            .arg(&conf_path)
            .arg("--nodaemonize");
        if root {
            command.arg("--allow-to-run-as-root");
        }
        let mut process = Proc::spawn(command, "php-fpm");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_listening(addr).await;
        let log = dir.path().join("php-fpm.log");
        process
            .until("both pools ready", async || {
                socket.exists()
                    && std::fs::read_to_string(&log)
                        .is_ok_and(|l| l.contains("ready to handle connections"))
            })
            .await;
        Some(PhpFpm {
            addr,
            socket,
            process,
            _dir: dir,
        })
    }

    /// Kills php-fpm and all its children at once, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// php-fpm's log and output, for failure messages.
    pub fn output(&self) -> String {
        let log = std::fs::read_to_string(self._dir.path().join("php-fpm.log")).unwrap_or_default();
        format!("{}--- php-fpm.log ---\n{log}", self.process.output())
    }
}

/// The php-fpm binary: `php-fpm*` in /usr/sbin (Debian names it by version).
fn php_fpm_binary() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/sbin").ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("php-fpm"))
            })
            .max()
    });
    let found = found.map(|p| p.display().to_string());
    let candidates: Vec<&str> = found.iter().map(String::as_str).collect();
    system_program(
        "php-fpm",
        if candidates.is_empty() {
            &["/usr/sbin/php-fpm"]
        } else {
            &candidates
        },
        "php-fpm",
    )
}

/// Whether a tool from Debian's `prometheus` package is installed. In CI a
/// missing one fails the test; elsewhere the test is told to return.
pub fn prometheus_tool(name: &str) -> bool {
    let installed = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is needed by this test in CI: apt-get install prometheus"
    );
    eprintln!("skipped: {name} is not installed (apt-get install prometheus)");
    false
}

/// Runs `promtool check metrics` on `text`: its exit status and output.
pub fn promtool(text: &str) -> (bool, String) {
    let out = output_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Runs `command` with `input` on its standard input, and waits for its
/// exit status and output.
pub fn output_with_stdin(command: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
