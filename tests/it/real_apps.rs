//! Applications nobody here wrote, from Debian, behind a `login` route with
//! the built-in login: gitweb (a Perl CGI application, its settings through
//! `env`, its stylesheet through `static:`) and Adminer (a PHP application
//! under php-fpm over FastCGI, with its own PHP session and POSTed forms).

use std::path::Path;
use std::process::Command;

use crate::harness::form::{ALICE, ALICE_PASSWORD, post_login};
use crate::harness::programs::{PhpFpm, system_program};
use crate::harness::{Proxy, browser, config};

/// User alice in `dir/users`, and the `[login]` section that names it.
fn login_section(dir: &Path) -> String {
    let users = dir.join("users");
    std::fs::write(&users, format!("{ALICE}\n")).unwrap();
    format!("[login]\nusers_file = \"{}\"\n", users.display())
}

/// A browser signed in as alice through the built-in login page.
async fn signed_in(proxy: &Proxy) -> reqwest::Client {
    let c = browser();
    let resp = post_login(&c, proxy, "alice", ALICE_PASSWORD).await;
    assert_eq!(resp.status(), 303);
    c
}

/// Runs git with a fixed identity; panics on failure.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=tester@example.org",
        ])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn gitweb_behind_the_login_with_env_settings_and_static_files() {
    let Some(cgi) = system_program("gitweb", &["/usr/share/gitweb/gitweb.cgi"], "gitweb") else {
        return;
    };
    let gitweb_dir = cgi.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A project with one commit, as a bare repository under the project root.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("README"), "hello from the legacy site\n").unwrap();
    git(&work, &["add", "README"]);
    git(
        &work,
        &["commit", "-q", "-m", "The first commit of the demo project"],
    );
    let projects = dir.path().join("projects");
    std::fs::create_dir(&projects).unwrap();
    git(
        dir.path(),
        &["clone", "-q", "--bare", "work", "projects/demo.git"],
    );
    // gitweb reads its settings from the file GITWEB_CONFIG names: the
    // route's env passes it, as Apache's SetEnv would.
    let gitweb_conf = dir.path().join("gitweb.conf");
    std::fs::write(
        &gitweb_conf,
        format!(
            "our $projectroot = \"{}\";\nour @stylesheets = (\"static/gitweb.css\");\n\
             our $site_name = \"Legacy projects\";\n",
            projects.display()
        ),
    )
    .unwrap();
    let mut text = config(&[], &login_section(dir.path()));
    text.push_str(&format!(
        "\n[[route]]\npath = \"/git/\"\nupstream = \"cgi:{}\"\naccess = \"login\"\n\
         env = {{ GITWEB_CONFIG = \"{}\" }}\n\
         \n[[route]]\npath = \"/git/static/\"\nupstream = \"static:{}\"\naccess = \"login\"\n",
        gitweb_dir.display(),
        gitweb_conf.display(),
        gitweb_dir.join("static").display(),
    ));
    let proxy = Proxy::start(&text).await;

    // Not signed in: the login page, not gitweb.
    let resp = browser()
        .get(proxy.url("/git/gitweb.cgi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);

    let c = signed_in(&proxy).await;
    let resp = c.get(proxy.url("/git/gitweb.cgi")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Legacy projects"), "{html}");
    assert!(html.contains("demo.git"), "{html}");
    assert!(html.contains("static/gitweb.css"), "{html}");

    let resp = c
        .get(proxy.url("/git/gitweb.cgi?p=demo.git;a=summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("The first commit of the demo project"),
        "{html}"
    );

    // PATH_INFO addressing, as gitweb's own links may use it.
    let resp = c
        .get(proxy.url("/git/gitweb.cgi/demo.git/blob_plain/HEAD:/README"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello from the legacy site\n");

    // Its stylesheet, from the static route, behind the same login.
    let resp = c
        .get(proxy.url("/git/static/gitweb.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(resp.text().await.unwrap().contains("font-family"));
    let resp = browser()
        .get(proxy.url("/git/static/gitweb.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "the stylesheet is behind the login too");
}

/// The value of the hidden `token` input of an Adminer page.
fn adminer_token(html: &str) -> String {
    let at = html.find("name='token' value='").expect("a token field") + 20;
    html[at..at + html[at..].find('\'').unwrap()].to_string()
}

#[tokio::test]
async fn adminer_under_php_fpm_behind_the_login() {
    let Some(adminer) = system_program(
        "Adminer",
        &["/usr/share/adminer/adminer/sqlite.php"],
        "adminer php-sqlite3",
    ) else {
        return;
    };
    let Some(fpm) = PhpFpm::start().await else {
        return;
    };
    let root = adminer.parent().unwrap().parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut text = config(&[], &login_section(dir.path()));
    text.push_str(&format!(
        "\n[[route]]\npath = \"/adminer/\"\nupstream = \"fastcgi://{}\"\nroot = \"{}\"\naccess = \"login\"\n",
        fpm.addr,
        root.display()
    ));
    let proxy = Proxy::start(&text).await;
    let page = proxy.url("/adminer/sqlite.php");

    let resp = browser().get(&page).send().await.unwrap();
    assert_eq!(resp.status(), 302, "Adminer is behind the login");

    // Adminer's own login form, in its own PHP session, next to ours.
    let c = signed_in(&proxy).await;
    let resp = c.get(&page).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", fpm.output());
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("adminer_")),
        "Adminer's own cookies pass: {cookies:?}"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("auth[driver]"), "{html}");

    // The database file is Adminer's to create; php-fpm's children write it.
    let db = dir.path().join("legacy.db");
    std::fs::write(&db, "").unwrap();
    let db = db.display().to_string();
    let resp = c
        .post(&page)
        .form(&[
            ("auth[driver]", "sqlite"),
            ("auth[server]", ""),
            ("auth[username]", ""),
            ("auth[password]", "YOUR_PASSWORD_HERE"),
            ("auth[db]", db.as_str()),
        ])
        .send()
        .await
        .unwrap();
    // Signed in to Adminer: it sends the browser on to the database.
    assert_eq!(resp.status(), 302, "{}", fpm.output());
    let to = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains("sqlite="), "{to}");
    let html = c
        .get(proxy.url(&format!("/adminer/{}", to.trim_start_matches("/adminer/"))))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Invalid credentials"), "{html}");

    // A statement POSTed with Adminer's own anti-forgery token, then read back.
    let base = format!("{page}?sqlite=&username=&db={}", urlencode(&db));
    let html = c
        .get(format!("{base}&sql="))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = adminer_token(&html);
    let resp = c
        .post(format!("{base}&sql="))
        .form(&[
            (
                "query",
                "CREATE TABLE visits (who TEXT); INSERT INTO visits VALUES ('through sessiongate');",
            ),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Query executed OK"), "{html}");
    let html = c
        .get(format!("{base}&select=visits"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("through sessiongate"), "{html}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
