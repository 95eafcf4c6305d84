//! The expiry warning in a real browser: headless Chromium on a page
//! behind a route with `inject_expiry_warning = true` and a short
//! `idle_timeout`. The page shows the warning before the idle deadline;
//! its button keeps the session alive past the deadline it had; left
//! alone, the session ends and the page says so, with a link to sign in.
//!
//! The proxy runs in this process with a clock the test moves, so that
//! "a minute before the end" takes a few seconds: the script learns how
//! long is left from `/status`, which reads that clock.

use fantoccini::Locator;
use fantoccini::elements::Element;

use crate::browser::{Browser, ONE_BROWSER_AT_A_TIME};
use crate::harness::process::within;
use crate::harness::{BUDGET, Backend, KEY, Proxy, Reply};

/// The idle timeout: the warning shows 60 s before the end, so the first
/// look (62 s left) schedules the next one two seconds later.
const IDLE: u64 = 62;

/// Every page names an icon of its own (`data:`), so that the browser
/// fetches no `/favicon.ico`: that request would extend the session at a
/// moment of the browser's choosing.
async fn app() -> Backend {
    Backend::with(|seen| {
        let html = |body: &str| {
            let body = body.replace(
                "<html>",
                "<html><head><link rel=\"icon\" href=\"data:,\"></head>",
            );
            Reply::ok(&body).header("content-type", "text/html; charset=utf-8")
        };
        match seen.uri.split('?').next().unwrap_or("") {
            "/signin" => html("<!DOCTYPE html><html><body><p>signed in</p></body></html>")
                .header("X-Session-Login", "alice"),
            "/login" => html("<!DOCTYPE html><html><body><p>please sign in</p></body></html>"),
            _ => html("<!DOCTYPE html><html><body><h1>The legacy page</h1></body></html>"),
        }
    })
    .await
}

fn config(backend: &Backend) -> String {
    format!(
        r#"[session]
secret_keys = ["{KEY}"]
idle_timeout = "{IDLE}s"
touch_interval = "1s"

[login]
source = "backend"
page = "/login"

[[route]]
path = "/app/"
upstream = "{url}"
access = "login"
inject_expiry_warning = true

[[route]]
path = "/"
upstream = "{url}"
access = "public"
"#,
        url = backend.url()
    )
}

/// The warning's box, once it shows text containing `text`.
async fn banner_saying(b: &Browser, text: &str) -> Element {
    let found = within(BUDGET, async || {
        let el = b
            .client
            .find(Locator::Css(".sessiongate-expiry"))
            .await
            .ok()?;
        let shown = el.is_displayed().await.ok()? && el.text().await.ok()?.contains(text);
        shown.then_some(el)
    })
    .await;
    match found {
        Some(el) => el,
        None => {
            let asked = b
                .client
                .execute_async(
                    "const done = arguments[0]; fetch('/.sessiongate/status').then(r => r.text()).then(done, e => done(String(e)))",
                    vec![],
                )
                .await;
            panic!(
                "no warning saying {text:?} after {BUDGET:?}\n{}\n/status now: {asked:?}",
                b.body_text().await
            )
        }
    }
}

async fn banner_gone(b: &Browser) {
    let gone = within(BUDGET, async || {
        let el = b
            .client
            .find(Locator::Css(".sessiongate-expiry"))
            .await
            .ok()?;
        (!el.is_displayed().await.ok()?).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the warning stayed\n{}",
        b.body_text().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warning_shows_keeps_the_session_and_says_when_it_ended() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let backend = app().await;
    let proxy = Proxy::start(&config(&backend)).await;

    b.goto(&proxy.url("/signin")).await;
    assert!(b.body_text().await.contains("signed in"));
    b.goto(&proxy.url("/app/page")).await;
    assert!(b.body_text().await.contains("The legacy page"));
    let source = b.client.source().await.expect("the page source");
    assert!(source.contains("/.sessiongate/session.js"), "{source}");

    // Ten seconds on: 52 s left, inside the last minute.
    proxy.advance(10);
    let banner = banner_saying(&b, "You will be signed out in").await;
    b.screenshot("expiry-warning").await;
    let button = banner
        .find(Locator::Css("button"))
        .await
        .expect("the button");
    assert_eq!(button.text().await.unwrap(), "Stay signed in");
    let alert = banner
        .find(Locator::Css("[role=alert]"))
        .await
        .expect("the spoken warning");
    assert!(
        alert
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default()
            .contains("about a minute")
    );

    // Stay signed in: the idle deadline starts again, the warning goes.
    button.click().await.expect("press the button");
    banner_gone(&b).await;
    // Past the deadline the session had before the button: still alive.
    proxy.advance(IDLE - 10 + 3);
    b.goto(&proxy.url("/app/page")).await;
    b.wait_for_path("/app/page").await;
    assert!(b.body_text().await.contains("The legacy page"));

    // Left alone this time: the warning, then the end.
    proxy.advance(IDLE - 3);
    banner_saying(&b, "You will be signed out in").await;
    proxy.advance(10);
    let ended = banner_saying(&b, "You have been signed out.").await;
    b.screenshot("expiry-ended").await;
    let link = ended
        .find(Locator::LinkText("Sign in again"))
        .await
        .expect("the sign-in link");
    let href = link.attr("href").await.unwrap().unwrap_or_default();
    assert!(
        href.ends_with("/login?next=%2Fapp%2Fpage&expired=1"),
        "{href}"
    );
    link.click().await.expect("follow the link");
    b.wait_for_path("/login").await;
    // The session really ended: the page sends the browser to sign in.
    b.goto(&proxy.url("/app/page")).await;
    b.wait_for_path("/login").await;

    b.close().await;
}

/// Two windows of one session: both warn; "Stay signed in" in one, and
/// the other puts its warning away when it next asks (it asks again
/// before the end, never trusting its own countdown alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_in_one_window_is_seen_by_the_other() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let backend = app().await;
    let proxy = Proxy::start(&config(&backend)).await;

    b.goto(&proxy.url("/signin")).await;
    b.goto(&proxy.url("/app/first")).await;
    let first = b.client.window().await.expect("the first window");
    let second = b.client.new_window(false).await.expect("a second window");
    b.client
        .switch_to_window(second.handle.clone())
        .await
        .expect("to the second window");
    b.goto(&proxy.url("/app/second")).await;

    // Eight seconds left: both warn.
    proxy.advance(IDLE - 8);
    let banner = banner_saying(&b, "You will be signed out in").await;
    b.client
        .switch_to_window(first.clone())
        .await
        .expect("to the first window");
    banner_saying(&b, "You will be signed out in").await;

    // The second window keeps the session; the first one sees it.
    b.client
        .switch_to_window(second.handle)
        .await
        .expect("to the second window");
    banner
        .find(Locator::Css("button"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("press the button");
    banner_gone(&b).await;
    b.client
        .switch_to_window(first)
        .await
        .expect("to the first window");
    banner_gone(&b).await;
    // Past the old deadline the first window's page still works.
    proxy.advance(10);
    b.client.refresh().await.expect("reload");
    b.wait_for_path("/app/first").await;
    assert!(b.body_text().await.contains("The legacy page"));

    b.close().await;
}
