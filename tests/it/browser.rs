//! The demo in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the real `sessiongate` binary serving the demo's
//! CGI pages. It does what a person does: follows links, is sent to a login
//! page, types a password, submits, reloads, signs out.
//!
//! Needs Debian's `chromium` and `chromium-driver`, which `.ci/run`
//! installs. Without them each test says so and returns, except in CI,
//! where it fails. Screenshots of the login pages are left in
//! `target/tmp/browser/` for a look.

use std::path::PathBuf;

use crate::harness::binary::{repo_toml, set};
use crate::harness::process::within;
use crate::harness::programs::{ChromeDriver, system_program};
use crate::harness::{BUDGET, Binary};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "chromium", "chromium-browser"];
const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver", "chromedriver"];

/// Headless, and fit for a container: no sandbox (CI runs as root), no GPU,
/// no /dev/shm (small in containers), nothing fetched from the network, a
/// fresh profile every time (added per run).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1024,768",
];

/// One browser at a time: two Chromiums on the two cores CI has would slow
/// each other into timeouts.
pub(crate) static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A WebDriver session of headless Chromium; the driver stops on drop.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: ChromeDriver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` when Chromium or chromedriver is missing (and this is not CI).
    pub(crate) async fn start() -> Option<Browser> {
        let chromium = system_program("Chromium", CHROMIUM, "chromium")?;
        let chromedriver = system_program("chromedriver", CHROMEDRIVER, "chromium-driver")?;
        let driver = ChromeDriver::start(&chromedriver).await;
        let profile = tempfile::tempdir().expect("a temporary directory");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", driver.output()));
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits until the page's path is `path`, and returns the whole URL.
    pub(crate) async fn wait_for_path(&self, path: &str) -> url::Url {
        let arrived = within(BUDGET, async || {
            let url = self.client.current_url().await.expect("the current URL");
            (url.path() == path).then_some(url)
        })
        .await;
        match arrived {
            Some(url) => url,
            None => panic!(
                "still on {} after {BUDGET:?}, expected the path {path}\n{}",
                self.client.current_url().await.expect("the current URL"),
                self.body_text().await
            ),
        }
    }

    /// The page's visible text.
    pub(crate) async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no page body: {e})"),
        }
    }

    /// The element, or a failure that shows the page it was looked for on.
    pub(crate) async fn find(&self, locator: Locator<'_>) -> fantoccini::elements::Element {
        match self.client.find(locator).await {
            Ok(element) => element,
            Err(e) => panic!("find {locator:?}: {e}\n{}", self.body_text().await),
        }
    }

    pub(crate) async fn click(&self, locator: Locator<'_>) {
        self.find(locator)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {locator:?}: {e}"));
    }

    /// Empties the field and types `text` into it.
    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(Locator::Css(css)).await;
        field.clear().await.expect("clear the field");
        field.send_keys(text).await.expect("type into the field");
    }

    /// The visit counter on the counter page.
    async fn count(&self) -> u32 {
        let text = self
            .client
            .find(Locator::Css("p.big"))
            .await
            .expect("the counter")
            .text()
            .await
            .expect("the counter's text");
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("the counter shows {text:?}"))
    }

    /// Saves a screenshot under target/tmp/browser/ and says where.
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    pub(crate) async fn close(self) {
        let Browser { client, driver, .. } = self;
        if let Err(e) = client.close().await {
            panic!("closing the browser: {e}\n{}", driver.output());
        }
    }
}

fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The shipped demo (`config/sessiongate.toml`): the site checks passwords
/// itself in login.cgi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_chromium_with_the_sites_own_login_page() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let gate = Binary::from_table(repo_toml("config/sessiongate.toml"))
        .start()
        .await;

    b.goto(&gate.url("/")).await;
    assert!(b.body_text().await.contains("not signed in"));

    // The members' page sends an anonymous visitor to the site's login page.
    b.click(Locator::LinkText("Members' lounge")).await;
    let login = b.wait_for_path("/login.cgi").await;
    assert_eq!(
        query_param(&login, "next").as_deref(),
        Some("/members.cgi"),
        "{login}"
    );
    b.screenshot("login-cgi").await;

    b.fill("input[name=username]", "alice").await;
    b.fill("input[name=password]", "wonderland").await;
    b.click(Locator::Css("input[type=submit]")).await;
    b.wait_for_path("/members.cgi").await;
    let lounge = b.body_text().await;
    assert!(
        lounge.contains("Welcome to the lounge, alice"),
        "{lounge}\n{}",
        gate.output()
    );

    // The session cookie is HttpOnly: the page's scripts cannot read it.
    let cookie = b
        .client
        .get_named_cookie("sg_session")
        .await
        .expect("the session cookie");
    assert_eq!(cookie.http_only(), Some(true));
    let script_sees = b
        .client
        .execute("return document.cookie", vec![])
        .await
        .expect("run a script");
    assert!(
        !script_sees
            .as_str()
            .unwrap_or_default()
            .contains("sg_session"),
        "{script_sees}"
    );

    // The counter lives in the session: a reload counts one more visit.
    b.goto(&gate.url("/counter.cgi")).await;
    let first = b.count().await;
    b.client.refresh().await.expect("reload");
    assert_eq!(b.count().await, first + 1);
    b.client.refresh().await.expect("reload");
    assert_eq!(b.count().await, first + 2);

    // Signing out ends the session: the members' page asks for a login again.
    b.click(Locator::LinkText("Sign out")).await;
    b.wait_for_path("/").await;
    assert!(b.body_text().await.contains("not signed in"));
    b.goto(&gate.url("/members.cgi")).await;
    let again = b.wait_for_path("/login.cgi").await;
    assert_eq!(query_param(&again, "next").as_deref(), Some("/members.cgi"));

    b.close().await;
}

/// sessiongate's own login page (`login.source = "users_file"`, with the
/// demo users of `config/users`) in front of the same site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_login_page_in_chromium() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let mut config = repo_toml("config/sessiongate.toml");
    set(&mut config, "login", "source", "users_file".into());
    set(&mut config, "login", "users_file", "config/users".into());
    if let Some(login) = config.get_mut("login").and_then(|l| l.as_table_mut()) {
        login.remove("page");
    }
    let gate = Binary::from_table(config).start().await;

    b.goto(&gate.url("/members.cgi")).await;
    let login = b.wait_for_path("/.sessiongate/login").await;
    assert_eq!(
        query_param(&login, "next").as_deref(),
        Some("/members.cgi"),
        "{login}"
    );
    b.screenshot("login-builtin").await;

    // A wrong password: the page again, saying so.
    b.fill("#username", "alice").await;
    b.fill("#password", "not-the-password").await;
    b.click(Locator::Css("button[type=submit]")).await;
    // Same URL as before the submit: wait for the message, not the path.
    let waited = b
        .client
        .wait()
        .at_most(BUDGET)
        .for_element(Locator::Id("login-error"))
        .await;
    let error = match waited {
        Ok(error) => error,
        Err(e) => panic!("no error shown: {e}\n{}", b.body_text().await),
    };
    assert!(!error.text().await.expect("the error").is_empty());
    b.wait_for_path("/.sessiongate/login").await;
    b.screenshot("login-builtin-error").await;

    // The right one: on to `next`, signed in.
    b.fill("#username", "alice").await;
    b.fill("#password", "wonderland").await;
    b.click(Locator::Css("button[type=submit]")).await;
    b.wait_for_path("/members.cgi").await;
    let lounge = b.body_text().await;
    assert!(
        lounge.contains("Welcome to the lounge, alice"),
        "{lounge}\n{}",
        gate.output()
    );

    // The built-in logout, then the lounge is closed again.
    b.goto(&gate.url("/.sessiongate/logout")).await;
    b.wait_for_path("/").await;
    assert!(b.body_text().await.contains("not signed in"));
    b.goto(&gate.url("/members.cgi")).await;
    b.wait_for_path("/.sessiongate/login").await;

    b.close().await;
}
