//! System programs for end-to-end tests, each on 127.0.0.1 and killed when
//! its handle drops: Apache httpd and chromedriver.
//!
//! They may be missing on a developer's machine: a test then says so and
//! returns. In CI (`CI` set), where `.ci/run` installs them, a missing one
//! fails the test instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    /// mounted site the repository's `examples/legacy-site`. Ready when `/`
    /// answers 200, which needs a working CGI daemon.
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
