//! `sessiongate check`: what would break a site is refused (or warned
//! about) before the site is up, every problem at once, each at its
//! `file:line:col`; `--format json` for tools.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::KEY;
use crate::harness::binary::command as sessiongate;

/// A config written into a directory of its own, checked from there (so
/// relative paths, the default users file among them, resolve inside it).
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Site {
    fn new(config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessiongate.toml");
        std::fs::write(&path, config).unwrap();
        Site { dir, config: path }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec!["check", "--config", "sessiongate.toml"];
        args.extend_from_slice(extra);
        sessiongate(&args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs `check`, expects `code`, and returns stdout and stderr.
    fn expect(&self, code: i32) -> (String, String) {
        let out = self.check(&[]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        (stdout, stderr)
    }

    /// Runs `check --format json`, expects `code`, returns the findings.
    fn json(&self, code: i32) -> Vec<serde_json::Value> {
        let out = self.check(&["--format", "json"]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(code), "{stdout}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str::<Vec<serde_json::Value>>(&stdout).unwrap()
    }
}

/// `[session]` with a valid key, and `extra` lines in it.
fn session(extra: &str) -> String {
    format!("[session]\nsecret_keys = [\"{KEY}\"]\n{extra}\n")
}

fn route(path: &str, upstream: &str, access: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\naccess = \"{access}\"\n\n")
}

/// The stderr line that starts `sessiongate.toml:LINE:COL: `, for a
/// message that contains `says`.
fn line_at(stderr: &str, line: usize, col: usize, says: &str) {
    let at = format!("sessiongate.toml:{line}:{col}: ");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&at) && l.contains(says)),
        "no {at}...{says} in\n{stderr}"
    );
}

/// Every stderr line is `file:line:col: ...`.
fn all_positioned(stderr: &str) {
    for line in stderr.lines() {
        let mut parts = line.splitn(4, ':');
        let (_file, l, c) = (parts.next(), parts.next(), parts.next());
        assert!(
            l.is_some_and(|l| l.parse::<usize>().is_ok())
                && c.is_some_and(|c| c.parse::<usize>().is_ok()),
            "not file:line:col: {line}"
        );
    }
}

#[test]
fn a_backend_login_page_behind_login_is_a_loop() {
    let site = Site::new(&format!(
        "{}[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n\n{}",
        session(""),
        route("/", "http://127.0.0.1:9000", "login")
    ));
    let (stdout, stderr) = site.expect(1);
    assert!(stdout.is_empty(), "{stdout}");
    line_at(&stderr, 6, 8, "login.page \"/login.cgi\" is on route \"/\"");
    line_at(&stderr, 6, 8, "sent to sign in again, forever");

    // On a route of its own that anyone may reach, it is fine.
    let site = Site::new(&format!(
        "{}[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n\n{}{}",
        session(""),
        route("/", "http://127.0.0.1:9000", "login"),
        route("/login.cgi", "http://127.0.0.1:9000", "public")
    ));
    site.expect(0);

    // On no route at all, nobody could sign in.
    let site = Site::new(&format!(
        "{}[login]\nsource = \"backend\"\npage = \"/login.cgi\"\n\n{}",
        session(""),
        route("/app/", "http://127.0.0.1:9000", "login")
    ));
    let (_, stderr) = site.expect(1);
    line_at(&stderr, 6, 8, "is on no route");
}

#[test]
fn ports_out_of_range_are_refused_where_they_are() {
    let site = Site::new(&format!(
        "[server]\nlisten = \"127.0.0.1:70000\"\n\n{}{}{}",
        session(""),
        route("/", "http://127.0.0.1:99999", "public"),
        route("/zero/", "http://127.0.0.1:0", "public"),
    ));
    let (_, stderr) = site.expect(1);
    line_at(&stderr, 2, 10, "port 70000 is out of range");
    line_at(
        &stderr,
        9,
        12,
        "port 99999 is out of range; a port is 1 to 65535",
    );
    line_at(&stderr, 14, 12, "port 0 is out of range");
    all_positioned(&stderr);
}

#[test]
fn unknown_upstream_schemes_name_the_accepted_ones() {
    let site = Site::new(&format!(
        "{}{}",
        session(""),
        route("/", "redis://127.0.0.1:6379", "public")
    ));
    let (_, stderr) = site.expect(1);
    line_at(
        &stderr,
        6,
        12,
        "must start with http://, https://, cgi:, static: or fastcgi:",
    );
}

#[test]
fn durations_are_refused_in_our_words_all_at_once() {
    let site = Site::new(&format!(
        "{}{}",
        session(
            "idle_timeout = \"30 minutes\"\nmax_lifetime = \"1.5h\"\ntouch_interval = \"99999999999d\"\n"
        ),
        route("/", "http://127.0.0.1:9000", "public")
    ));
    let (_, stderr) = site.expect(1);
    let forms = "like \"90s\", \"30m\", \"12h\" or \"7d\", or a sum like \"1h30m\"";
    line_at(
        &stderr,
        3,
        16,
        "session.idle_timeout: invalid duration \"30 minutes\"",
    );
    line_at(&stderr, 3, 16, forms);
    line_at(
        &stderr,
        4,
        16,
        "session.max_lifetime: invalid duration \"1.5h\"",
    );
    line_at(&stderr, 5, 18, "longer than ten years");
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
}

#[test]
fn missing_files_and_directories_are_reported_at_the_key_that_names_them() {
    // The users file by default, needed by the login route; a CGI
    // directory; a static "directory" that is a file; and a type error in
    // the same file: all in one run.
    let site = Site::new(&format!(
        "{}{}{}{}",
        session("max_data_bytes = \"big\"\n"),
        route("/", "cgi:cgi-bin", "login"),
        route("/files/", "static:sessiongate.toml", "public"),
        "[login]\ngroups_file = \"groups\"\n"
    ));
    let (stdout, stderr) = site.expect(1);
    assert!(stdout.is_empty(), "{stdout}");
    line_at(
        &stderr,
        3,
        18,
        "session.max_data_bytes must be a whole number",
    );
    line_at(&stderr, 7, 12, "CGI directory \"cgi-bin\" does not exist");
    line_at(
        &stderr,
        8,
        10,
        "login.users_file is not set, and its default \"config/users\" does not exist",
    );
    line_at(
        &stderr,
        12,
        12,
        "static directory \"sessiongate.toml\" is not a directory",
    );
    line_at(
        &stderr,
        16,
        15,
        "login.groups_file: the groups file \"groups\" does not exist",
    );
    assert_eq!(stderr.lines().count(), 5, "{stderr}");

    // Once they exist, the config is valid; a users file named by its key
    // is reported there.
    std::fs::create_dir(site.path("cgi-bin")).unwrap();
    std::fs::write(site.path("groups"), "admins: alice\n").unwrap();
    std::fs::create_dir(site.path("www")).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{}{}{}{}",
            session(""),
            route("/", "cgi:cgi-bin", "login"),
            route("/files/", "static:www", "public"),
            "[login]\ngroups_file = \"groups\"\nusers_file = \"users\"\n"
        ),
    )
    .unwrap();
    let (_, stderr) = site.expect(1);
    line_at(
        &stderr,
        16,
        14,
        "login.users_file: the users file \"users\" does not exist",
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    std::fs::write(site.path("users"), "").unwrap();
    let (stdout, _) = site.expect(0);
    assert!(stdout.contains("(valid)"), "{stdout}");
}

#[test]
fn a_malformed_users_file_is_reported_at_its_own_line() {
    let site = Site::new(&format!(
        "{}[login]\nusers_file = \"users\"\n\n{}",
        session(""),
        route("/", "http://127.0.0.1:9000", "login")
    ));
    std::fs::write(site.path("users"), "# people\nalice\n").unwrap();
    let (_, stderr) = site.expect(1);
    assert!(stderr.starts_with("users:2:1: "), "{stderr}");
}

#[test]
fn cookie_path_must_cover_the_builtin_login_when_it_is_used() {
    let site = Site::new(&format!(
        "{}{}",
        session("cookie_path = \"/app\"\n"),
        route("/app/", "http://127.0.0.1:9000", "login")
    ));
    std::fs::create_dir(site.path("config")).unwrap();
    std::fs::write(site.path("config/users"), "").unwrap();
    let (_, stderr) = site.expect(1);
    line_at(
        &stderr,
        3,
        15,
        "session.cookie_path \"/app\" does not cover login.prefix \"/.sessiongate\"",
    );
    // With a backend login the built-in pages are never shown.
    std::fs::write(
        &site.config,
        format!(
            "{}[login]\nsource = \"backend\"\npage = \"/app/login\"\n\n{}",
            session("cookie_path = \"/app\"\n"),
            route("/app/", "http://127.0.0.1:9000", "session")
        ),
    )
    .unwrap();
    site.expect(0);
}

#[test]
fn cookie_secure_on_plain_http_and_idle_past_lifetime_are_warnings() {
    let site = Site::new(&format!(
        "{}{}",
        session("cookie_secure = true\nidle_timeout = \"2d\"\n"),
        route("/", "http://127.0.0.1:9000", "public")
    ));
    let (stdout, stderr) = site.expect(0);
    assert!(stdout.contains("(valid)"), "{stdout}");
    line_at(
        &stderr,
        3,
        17,
        "warning: session.cookie_secure = true, but the proxy serves plain HTTP",
    );
    line_at(
        &stderr,
        3,
        17,
        "browsers will not send a Secure cookie back over http://",
    );
    line_at(
        &stderr,
        4,
        16,
        "warning: session.idle_timeout (2d) is longer than session.max_lifetime (1d); max_lifetime wins: sessions end after 1d",
    );
    all_positioned(&stderr);

    // Behind a proxy that terminates TLS, Secure is what it should be.
    std::fs::write(
        &site.config,
        format!(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n\n{}{}",
            session("cookie_secure = true\n"),
            route("/", "http://127.0.0.1:9000", "public")
        ),
    )
    .unwrap();
    let (_, stderr) = site.expect(0);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn json_lists_every_finding_for_tools() {
    let site = Site::new(&format!(
        "{}{}",
        session("idle_timeout = \"1.5h\"\ncookie_secure = true\n"),
        route("/", "cgi:nowhere", "public")
    ));
    let found = site.json(1);
    let brief: Vec<(String, u64, u64, String)> = found
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let file = "sessiongate.toml".to_string();
    assert_eq!(
        brief,
        vec![
            (file.clone(), 3, 16, "error".to_string()),
            (file.clone(), 8, 12, "error".to_string()),
            (file, 4, 17, "warning".to_string()),
        ],
        "{found:?}"
    );
    assert!(
        found[1]["message"]
            .as_str()
            .unwrap()
            .contains("CGI directory \"nowhere\" does not exist")
    );

    // Valid: the warnings alone, and exit 0; nothing else on stdout.
    std::fs::create_dir(site.path("nowhere")).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{}{}",
            session("cookie_secure = true\n"),
            route("/", "cgi:nowhere", "public")
        ),
    )
    .unwrap();
    let found = site.json(0);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["severity"], "warning");

    // Nothing to say: an empty list.
    std::fs::write(
        &site.config,
        format!("{}{}", session(""), route("/", "cgi:nowhere", "public")),
    )
    .unwrap();
    assert!(site.json(0).is_empty());
}

#[test]
fn json_reports_an_unreadable_config_at_its_start() {
    let out = sessiongate(&[
        "check",
        "--config",
        "/nonexistent/x.toml",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["file"], "/nonexistent/x.toml");
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot read config file")
    );
}

/// The shipped example configs stay valid under the stricter checks.
#[test]
fn the_shipped_configs_pass() {
    for config in shipped_configs() {
        let out = sessiongate(&["check", "--config", config.to_str().unwrap()])
            .env("SESSIONGATE_KEY", KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}:\n{}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `.toml` under `config/` and `examples/` that is a sessiongate config.
fn shipped_configs() -> Vec<PathBuf> {
    let root = crate::harness::repo_root();
    let mut found = Vec::new();
    for dir in ["config", "examples"] {
        collect_configs(&root.join(dir), &mut found);
    }
    found
}

fn collect_configs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_configs(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml")
            && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("[[route]]"))
        {
            found.push(path);
        }
    }
}
