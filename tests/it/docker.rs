//! The Docker image's and the compose example's files, checked without a
//! Docker engine: what the Dockerfile copies is in the build context, the
//! configs they ship are valid and serve the demo, and the compose example's
//! Apache httpd config really runs the demo's CGI pages behind sessiongate
//! (with Debian's apache2 standing in for the httpd image).
//!
//! `.ci/run` lints the Dockerfiles (hadolint) and the compose file (the
//! Compose Specification's schema); these tests check what a linter cannot.

use std::path::Path;

use crate::harness::binary::{command as sessiongate, repo_toml, set};
use crate::harness::programs::{Httpd, in_ci, system_program};
use crate::harness::{Binary, repo_root};

/// Where the Dockerfile puts things in the image.
const IMAGE_APP_DIR: &str = "/srv/sessiongate";
const IMAGE_USERS_FILE: &str = "/etc/sessiongate/users";
const IMAGE_VOLUME: &str = "/var/lib/sessiongate";

/// A key for configs that read `env:SESSIONGATE_KEY`.
const KEY: &str = "docker-test-key-0123456789-abcdefghijk";

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The sources of the Dockerfile's `COPY` lines that read the build context
/// (not `--from` another stage).
fn copied_from_context(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter_map(|line| line.trim().strip_prefix("COPY "))
        .filter(|args| !args.contains("--from="))
        .flat_map(|args| {
            let words: Vec<&str> = args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            // Every word but the last (the destination) is a source.
            words[..words.len().saturating_sub(1)]
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `.dockerignore`, written as an allowlist (`*`, then `!path`
/// lines), lets `source` into the build context.
fn allowed_by_dockerignore(dockerignore: &str, source: &str) -> bool {
    let source = source.trim_end_matches('/');
    dockerignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .map(|allowed| allowed.trim_end_matches('/'))
        .any(|allowed| source == allowed || source.starts_with(&format!("{allowed}/")))
}

#[test]
fn everything_the_dockerfile_copies_is_in_the_build_context() {
    let dockerignore = read(".dockerignore");
    assert_eq!(
        dockerignore
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty()),
        Some("*"),
        ".dockerignore is an allowlist: it starts by leaving everything out"
    );
    let sources = copied_from_context(&read("Dockerfile"));
    assert!(sources.contains(&"src".to_string()), "{sources:?}");
    for source in sources {
        assert!(
            repo_root().join(&source).exists(),
            "the Dockerfile copies {source}, which is not in the repository"
        );
        assert!(
            allowed_by_dockerignore(&dockerignore, &source),
            "the Dockerfile copies {source}, which .dockerignore leaves out of the build context"
        );
    }
    // And what must never be sent to a builder is not let in.
    for secret_or_bulky in ["target", ".git", "data", "config/sessiongate.toml"] {
        assert!(!allowed_by_dockerignore(&dockerignore, secret_or_bulky));
    }
}

/// `docker/sessiongate.toml` with the image's paths moved to where the same
/// files are in the repository (and the volume to `volume`).
fn image_config_here(volume: &Path) -> toml::Table {
    let root = repo_root().display().to_string();
    let text = read("docker/sessiongate.toml")
        .replace(IMAGE_USERS_FILE, &format!("{root}/config/users"))
        .replace(IMAGE_APP_DIR, &root)
        .replace(IMAGE_VOLUME, &volume.display().to_string());
    text.parse().expect("docker/sessiongate.toml is TOML")
}

#[test]
fn the_image_config_listens_on_all_interfaces_and_keeps_the_snapshot_in_the_volume() {
    let config = repo_toml("docker/sessiongate.toml");
    assert_eq!(config["server"]["listen"][0].as_str(), Some("0.0.0.0:8080"));
    let snapshot = config["store"]["snapshot"].as_str().expect("a snapshot");
    assert!(
        snapshot.starts_with(&format!("{IMAGE_VOLUME}/")),
        "{snapshot}"
    );
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(&format!("VOLUME {IMAGE_VOLUME}")));
    assert!(dockerfile.contains("EXPOSE 8080"));
}

#[tokio::test]
async fn the_image_config_serves_the_demo() {
    let volume = tempfile::tempdir().unwrap();
    let gate = Binary::from_table(image_config_here(volume.path()))
        .start()
        .await;
    let c = client();
    let home = c.get(gate.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200, "{}", gate.output());
    assert!(home.text().await.unwrap().contains("not signed in"));
    let members = c.get(gate.url("/members.cgi")).send().await.unwrap();
    assert_eq!(members.status(), 302);
    assert_eq!(
        members.headers()["location"],
        "/login.cgi?next=%2Fmembers.cgi"
    );
}

#[test]
fn the_compose_config_is_valid() {
    let out = sessiongate(&["check", "--config", "examples/compose/sessiongate.toml"])
        .env("SESSIONGATE_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("redis://redis:6379/0"), "{summary}");
    assert!(summary.contains("http://legacy:80"), "{summary}");
}

#[test]
fn the_compose_config_needs_the_key_from_the_environment() {
    let out = sessiongate(&["check", "--config", "examples/compose/sessiongate.toml"])
        .env_remove("SESSIONGATE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Debian's httpd and where its modules are.
fn apache() -> Option<(std::path::PathBuf, &'static Path)> {
    let binary = system_program(
        "Apache httpd",
        &["/usr/sbin/apache2", "apache2"],
        "apache2-bin",
    )?;
    let modules = Path::new("/usr/lib/apache2/modules");
    if !modules.join("mod_cgid.so").is_file() {
        assert!(!in_ci(), "apache2-bin is installed without mod_cgid");
        eprintln!("SKIPPED: no mod_cgid.so in {}", modules.display());
        return None;
    }
    Some((binary, modules))
}

/// docker-compose.yml without Docker: the compose example's httpd config
/// runs the demo's CGI pages, and its sessiongate config, pointed at that
/// httpd, gives them sessions. Only the addresses change, and the store is
/// the memory one (the Redis store has its own tests).
#[tokio::test]
async fn the_compose_backend_httpd_runs_the_demo_behind_sessiongate() {
    let Some((apache2, modules)) = apache() else {
        return;
    };
    let httpd = Httpd::start(&apache2, modules, &read("examples/httpd/httpd-cgi.conf")).await;

    let mut config = repo_toml("examples/compose/sessiongate.toml");
    let backend = format!("http://127.0.0.1:{}", httpd.port);
    for route in config["route"].as_array_mut().expect("routes") {
        assert_eq!(route["upstream"].as_str(), Some("http://legacy:80"));
        route["upstream"] = backend.clone().into();
    }
    config.insert("store".into(), toml::Table::new().into());
    set(&mut config, "store", "kind", "memory".into());
    let gate = Binary::from_table(config)
        .env("SESSIONGATE_KEY", KEY)
        .start()
        .await;
    let logs = || format!("{}\n{}", gate.output(), httpd.output());
    let c = client();

    let home = c.get(gate.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200, "{}", logs());
    assert!(home.text().await.unwrap().contains("not signed in"));

    for expected in 1..=2 {
        let page = c.get(gate.url("/counter.cgi")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{}", logs());
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&format!("<p class=\"big\">{expected}</p>")),
            "visit {expected}: {html}"
        );
    }

    // A client cannot sign itself in with a header of its own, in any
    // spelling: sessiongate strips them, httpd drops the underscored ones.
    for forged in ["X-Session-User", "X_Session_User", "x-session-user"] {
        let page = c
            .get(gate.url("/"))
            .header(forged, "mallory")
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        assert!(html.contains("not signed in"), "{forged}: {html}");
        assert!(!html.contains("mallory"), "{forged}: {html}");
    }

    let r = c.get(gate.url("/members.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/login.cgi?next=%2Fmembers.cgi");

    let r = c
        .post(gate.url("/login.cgi"))
        .form(&[
            ("username", "alice"),
            ("password", "wonderland"),
            ("next", "/members.cgi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", logs());
    assert_eq!(r.headers()["location"], "/members.cgi");
    assert!(
        r.headers().get("x-session-login").is_none(),
        "sessiongate consumes the control header"
    );

    let members = c.get(gate.url("/members.cgi")).send().await.unwrap();
    assert_eq!(members.status(), 200, "{}", logs());
    let html = members.text().await.unwrap();
    assert!(
        html.contains("Welcome to the lounge, <b>alice</b>"),
        "{html}"
    );
    assert!(
        html.contains("count=2"),
        "the session kept its data: {html}"
    );

    let r = c.get(gate.url("/logout.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = c.get(gate.url("/members.cgi")).send().await.unwrap();
    assert_eq!(r.status(), 302, "signed out");
}
