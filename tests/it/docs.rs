//! The docs cannot drift from the code: every whole config in `README.md`
//! and `docs/*.md` is accepted by `sessiongate check`, and the README's
//! five-minute site answers as its transcript says.
//!
//! A ```toml block is a whole config unless it is marked as a part of one,
//! with the fence's info string `toml excerpt` (or a first line
//! `# (excerpt)`); an excerpt must still be TOML.

use std::path::{Path, PathBuf};

use crate::harness::binary::command as sessiongate;
use crate::harness::{Binary, repo_root};

/// A key for configs that read `env:SESSIONGATE_KEY`.
const KEY: &str = "docs-test-key-0123456789-abcdefghijklmn";
/// A key for configs that read `env:SESSIONGATE_SIGN_KEY`.
const SIGN_KEY: &str = "docs-test-sign-key-0123456789-abcdefgh";

/// A fenced block of a Markdown file.
struct Block {
    file: PathBuf,
    line: usize,
    info: String,
    text: String,
}

impl Block {
    fn is_excerpt(&self) -> bool {
        self.info.split_whitespace().any(|w| w == "excerpt")
            || self.text.lines().next() == Some("# (excerpt)")
    }

    fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// The fenced blocks of `file` (fences of three backticks at the start of
/// a line, as the docs write them; indented ones inside lists too).
fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let mut found = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match (open.take(), trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    file: file.strip_prefix(repo_root()).unwrap_or(file).to_path_buf(),
                    line: i + 1,
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(block), Some(_)) => found.push(block),
            (Some(mut block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    assert!(
        open.is_none(),
        "{}: a fence is never closed",
        file.display()
    );
    found
}

/// README.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn toml_blocks() -> Vec<Block> {
    doc_files()
        .iter()
        .flat_map(|f| blocks(f))
        .filter(|b| b.info.split_whitespace().next() == Some("toml"))
        .collect()
}

/// A directory that looks like the checkout to a config's relative paths
/// (`config/`, `examples/`), with the README's `mysite/cgi-bin` besides.
fn checkout_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for shipped in ["config", "examples"] {
        std::os::unix::fs::symlink(repo_root().join(shipped), dir.path().join(shipped))
            .expect("link into the checkout");
    }
    std::fs::create_dir_all(dir.path().join("mysite/cgi-bin")).expect("mysite/cgi-bin");
    dir
}

#[test]
fn every_whole_config_in_the_docs_passes_check() {
    let dir = checkout_like();
    let blocks = toml_blocks();
    let mut whole = 0;
    for block in &blocks {
        if let Err(e) = block.text.parse::<toml::Table>() {
            panic!("{}: not TOML: {e}", block.place());
        }
        if block.is_excerpt() {
            continue;
        }
        whole += 1;
        let path = dir.path().join("config-under-test.toml");
        std::fs::write(&path, &block.text).expect("write the config");
        let out = sessiongate(&["check", "--config", "config-under-test.toml"])
            .current_dir(dir.path())
            .env("SESSIONGATE_KEY", KEY)
            .env("SESSIONGATE_SIGN_KEY", SIGN_KEY)
            .output()
            .expect("run sessiongate check");
        assert!(
            out.status.success(),
            "{}: `sessiongate check` refuses this config:\n{}{}",
            block.place(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The README's minimal config and the reference, at least.
    assert!(whole >= 2, "only {whole} whole configs found");
}

/// The README's first config: the five-minute site's.
fn readme_minimal_config() -> Block {
    blocks(&repo_root().join("README.md"))
        .into_iter()
        .find(|b| b.info == "toml")
        .expect("a whole config in the README")
}

#[test]
fn the_readme_minimal_config_is_short_and_whole() {
    let config = readme_minimal_config();
    assert!(!config.is_excerpt());
    let lines = config.text.lines().count();
    assert!(lines <= 15, "the minimal config has {lines} lines");
}

/// The five-minute site as the README writes it (its config, its script),
/// answers what the README's transcript shows.
#[tokio::test]
async fn the_readme_five_minute_site_answers_as_its_transcript_says() {
    let readme = blocks(&repo_root().join("README.md"));
    let script = readme
        .iter()
        .find(|b| b.info == "sh" && b.text.starts_with("#!/bin/sh"))
        .expect("the five-minute site's CGI script");
    assert!(script.text.lines().count() <= 3, "{}", script.text);
    let transcript = readme
        .iter()
        .find(|b| b.info == "text" && b.text.contains("$ curl"))
        .expect("the five-minute site's curl transcript");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let cgi = dir.path().join("cgi-bin");
    std::fs::create_dir(&cgi).expect("cgi-bin/");
    let hello = cgi.join("hello.cgi");
    std::fs::write(&hello, &script.text).expect("write hello.cgi");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut config: toml::Table = readme_minimal_config().text.parse().expect("TOML");
    let route = &mut config["route"].as_array_mut().expect("a route")[0];
    assert_eq!(route["upstream"].as_str(), Some("cgi:mysite/cgi-bin"));
    route["upstream"] = format!("cgi:{}", cgi.display()).into();
    let gate = Binary::from_table(config)
        .env("SESSIONGATE_KEY", KEY)
        .start()
        .await;

    // Each command of the transcript, run with reqwest; its body must be the
    // transcript's last line before the next command.
    let with_jar = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut commands = 0;
    let lines: Vec<&str> = transcript.text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(command) = line.strip_prefix("$ curl ") else {
            continue;
        };
        commands += 1;
        let url = command
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a URL");
        let path = &url[url.find("/hello").expect("the script's path")..];
        let expected = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("$ "))
            .last()
            .expect("an answer");
        let client = if command.contains("-b jar") {
            with_jar.clone()
        } else {
            reqwest::Client::new()
        };
        let mut request = client.get(gate.url(path));
        if let Some(forged) = command.split('"').nth(1) {
            let (name, value) = forged.split_once(": ").expect("a header");
            request = request.header(name, value);
        }
        let body = request.send().await.unwrap().text().await.unwrap();
        assert_eq!(body.trim_end(), *expected, "{line}\n{}", gate.output());
    }
    assert!(commands >= 3, "{}", transcript.text);
}
