//! The file-based login pieces against real files: the users file and its
//! reloading, and the login page template.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sessiongate::login::{LoginPage, PageContext, PageError, UsersError, UsersFile, UsersSource};
use tempfile::TempDir;

/// `htpasswd -bnB -C 5 alice 'correct horse'`.
const ALICE: &str = "alice:$2y$05$8GZGcB76O/vrMDfbnLsspuETEb.ZaPA/atHhCzSgQhhJyk31FFTzC";
/// `htpasswd -bnB -C 4 bob 'tr0ub4dor&3'`.
const BOB: &str = "bob:$2y$04$tp9XPZ.hBRrma9StnSTQC.7XLfwgDnATk1mwJLhrqkkqw5o2Ba/Uy";
/// `htpasswd -bnB -C 4 carol ''`: same length as BOB's line.
const CAROL: &str = "carol:$2y$04$dC/j11llKO4uVqK/AbX.SuRvKIL3thPtTrs8zQ2HRfS3ygY9XKyFW";

fn users_file(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("users");
    fs::write(&path, text).unwrap();
    path
}

/// Rewrites the file and moves its modification time forward, so that the
/// change is seen even on file systems with coarse timestamps.
fn rewrite(path: &Path, text: &str, age: u64) {
    fs::write(path, text).unwrap();
    let stamp = SystemTime::now() + Duration::from_secs(age);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
}

#[test]
fn loads_a_users_file_from_disk() {
    let dir = TempDir::new().unwrap();
    let hash = sessiongate::login::hash_password("s3cret").unwrap();
    let path = users_file(&dir, &format!("# staff\n{ALICE}\n\ndave:{hash}\n"));
    let users = UsersFile::load(&path).unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.verify("alice", "correct horse"));
    assert!(users.verify("dave", "s3cret"));
    assert!(!users.verify("dave", "correct horse"));
    assert!(!users.verify("nobody", "s3cret"));
}

#[test]
fn malformed_lines_are_reported_as_file_line_column() {
    let dir = TempDir::new().unwrap();
    let cases = [
        (
            format!("{ALICE}\n\n# ok so far\nbroken line\n"),
            4,
            "expected user:hash",
        ),
        (format!("{ALICE}\n:{}\n", &BOB[4..]), 2, "empty user name"),
        (
            format!("{ALICE}\n{BOB}\n{ALICE}\n"),
            3,
            "duplicate user \"alice\" (first defined on line 1)",
        ),
        (
            "eve:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n".to_owned(),
            1,
            "unsupported hash scheme",
        ),
        ("eve:plaintext\n".to_owned(), 1, "unknown hash format"),
        (
            format!("ev e{}\n", &BOB[3..]),
            1,
            "whitespace or a control character",
        ),
        (
            format!("{BOB}\nev\u{1b}e{}\n", &BOB[3..]),
            2,
            "whitespace or a control character",
        ),
    ];
    for (text, line, message) in cases {
        let path = users_file(&dir, &text);
        let err = UsersFile::load(&path).unwrap_err();
        assert!(
            matches!(&err, UsersError::Malformed { line: l, .. } if *l == line),
            "{err:?}"
        );
        let shown = err.to_string();
        let prefix = format!("{}:{line}:1: ", path.display());
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} should start with {prefix:?}"
        );
        assert!(
            shown.contains(message),
            "{shown:?} should contain {message:?}"
        );
    }
}

#[test]
fn unreadable_users_file_is_an_error() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("absent");
    let err = UsersFile::load(&missing).unwrap_err();
    assert!(matches!(err, UsersError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&missing.display().to_string()));
    assert!(UsersSource::load(&missing).is_err());

    let not_utf8 = dir.path().join("binary");
    fs::write(&not_utf8, b"alice:\xff\xfe\n").unwrap();
    assert!(matches!(
        UsersFile::load(&not_utf8),
        Err(UsersError::Read { .. })
    ));
}

#[test]
fn source_reloads_when_the_file_changes() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{ALICE}\n"));
    let source = UsersSource::load(&path).unwrap();
    assert_eq!(source.path(), path);
    assert!(source.verify("alice", "correct horse"));
    assert!(!source.refresh_if_changed().unwrap(), "nothing changed yet");

    rewrite(&path, &format!("{ALICE}\n{BOB}\n"), 1);
    assert!(source.refresh_if_changed().unwrap());
    assert_eq!(source.current().len(), 2);
    assert!(source.verify("bob", "tr0ub4dor&3"));
    assert!(!source.refresh_if_changed().unwrap(), "already up to date");
}

#[test]
fn source_sees_a_change_of_length_alone() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{ALICE}\n"));
    let source = UsersSource::load(&path).unwrap();
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, format!("{ALICE}\n{BOB}\n")).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert!(source.refresh_if_changed().unwrap());
    assert!(source.current().contains("bob"));
}

#[test]
fn source_sees_a_change_of_time_alone() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{BOB}\n"));
    let source = UsersSource::load(&path).unwrap();
    // Same length, different user: only the modification time tells.
    assert_eq!(BOB.len() + 2, CAROL.len());
    rewrite(
        &path,
        &format!("{}\n", CAROL[2..].replacen("rol", "bob", 1)),
        5,
    );
    assert!(source.refresh_if_changed().unwrap());
    assert!(source.verify("bob", ""), "the new hash is in force");
}

#[test]
fn failed_reload_keeps_the_old_users_and_reports_once() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{ALICE}\n"));
    let source = UsersSource::load(&path).unwrap();

    rewrite(&path, &format!("{ALICE}\nbroken\n"), 1);
    let err = source.refresh_if_changed().unwrap_err();
    assert!(
        err.to_string()
            .ends_with(":2:1: expected user:hash (no colon found)"),
        "{err}"
    );
    assert!(
        source.verify("alice", "correct horse"),
        "old users still in force"
    );
    assert!(
        !source.refresh_if_changed().unwrap(),
        "the same broken file is not reported twice"
    );

    let err = source.reload().unwrap_err();
    assert!(matches!(err, UsersError::Malformed { line: 2, .. }));
    assert!(source.verify("alice", "correct horse"));

    rewrite(&path, &format!("{BOB}\n"), 2);
    assert!(source.refresh_if_changed().unwrap());
    assert!(!source.current().contains("alice"));
    assert!(source.verify("bob", "tr0ub4dor&3"));
}

#[test]
fn deleted_file_keeps_the_old_users_until_it_returns() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{ALICE}\n"));
    let source = UsersSource::load(&path).unwrap();

    fs::remove_file(&path).unwrap();
    assert!(matches!(
        source.refresh_if_changed(),
        Err(UsersError::Read { .. })
    ));
    assert!(!source.refresh_if_changed().unwrap(), "reported once");
    assert!(source.verify("alice", "correct horse"));

    fs::write(&path, format!("{BOB}\n")).unwrap();
    assert!(source.refresh_if_changed().unwrap());
    assert!(source.verify("bob", "tr0ub4dor&3"));
}

#[test]
fn reload_reads_even_an_unchanged_looking_file() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{BOB}\n"));
    let source = UsersSource::load(&path).unwrap();
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    // Same length and the same modification time: invisible to
    // refresh_if_changed, which is what SIGHUP is for.
    fs::write(&path, format!("{}\n", CAROL[2..].replacen("rol", "bob", 1))).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    assert!(!source.refresh_if_changed().unwrap());
    assert!(source.verify("bob", "tr0ub4dor&3"));
    source.reload().unwrap();
    assert!(source.verify("bob", ""));
    assert!(!source.refresh_if_changed().unwrap());
}

#[tokio::test]
async fn verify_blocking_runs_off_the_async_threads() {
    let dir = TempDir::new().unwrap();
    let path = users_file(&dir, &format!("{ALICE}\n{BOB}\n"));
    let source = Arc::new(UsersSource::load(&path).unwrap());
    let attempts = [
        ("alice", "correct horse", true),
        ("alice", "wrong", false),
        ("bob", "tr0ub4dor&3", true),
        ("nobody", "tr0ub4dor&3", false),
    ];
    let mut tasks = Vec::new();
    for (user, password, _) in attempts {
        let source = Arc::clone(&source);
        tasks.push(tokio::spawn(async move {
            source
                .verify_blocking(user.to_owned(), password.to_owned())
                .await
        }));
    }
    for (task, (user, password, expected)) in tasks.into_iter().zip(attempts) {
        assert_eq!(task.await.unwrap(), expected, "{user}:{password}");
    }
}

#[test]
fn template_file_renders_with_escaped_values() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("login.html");
    fs::write(
        &path,
        "<!doctype html>\n<form method=post action=\"{{action}}\">\n\
         <input type=hidden name=csrf value=\"{{csrf}}\">\n\
         <input type=hidden name=next value=\"{{next}}\">\n\
         <input name=username value=\"{{username}}\">\n\
         <p role=alert>{{error}}</p><p role=status>{{message}}</p>\n</form>\n",
    )
    .unwrap();
    let page = LoginPage::from_template_file(&path).unwrap();
    let html = page.render(&PageContext {
        action: "/.sessiongate/login",
        next: "/a?b=1&c=2",
        csrf: "t",
        username: "<script>alert(1)</script>",
        message: Some("Your session has expired."),
        error: None,
        remember: false,
    });
    assert!(
        html.contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{html}"
    );
    assert!(html.contains("value=\"/a?b=1&amp;c=2\""));
    assert!(html.contains("<p role=alert></p><p role=status>Your session has expired.</p>"));
}

#[test]
fn template_errors_name_the_file_and_position() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("login.html");
    fs::write(&path, "<form>\n{{csrf}}\n  {{password}}\n</form>\n").unwrap();
    let err = LoginPage::from_template_file(&path).unwrap_err();
    assert!(
        matches!(
            err,
            PageError::Template {
                line: 3,
                column: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}:3:3: unknown placeholder {{{{password}}}}",
            path.display()
        )),
        "{err}"
    );

    let missing = dir.path().join("absent.html");
    assert!(matches!(
        LoginPage::from_template_file(&missing),
        Err(PageError::Read { .. })
    ));
}
