//! The interrupted form in headless Chromium: a signed-in user's session
//! ends while they fill in a form (a short `idle_timeout`, the proxy's
//! clock moved past it); they submit it, are sent to the built-in login
//! page which says the form will be sent after they sign in, sign in, and
//! see the backend's answer to the form they had filled in.
//!
//! Follows tests/it/browser.rs (one browser at a time; without Chromium the
//! test says so and returns, except in CI).

use fantoccini::Locator;

use crate::browser::{Browser, ONE_BROWSER_AT_A_TIME};
use crate::harness::{Backend, Proxy, Reply, config};

/// The application's page with its form.
const FORM_PAGE: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Expenses</title></head><body>\
<form method=\"post\" action=\"/members/save?sheet=4\">\
<textarea id=\"note\" name=\"note\"></textarea>\
<button id=\"send\" type=\"submit\">Save</button>\
</form></body></html>";

async fn sign_in(b: &Browser) {
    b.wait_for_path("/.sessiongate/login").await;
    b.fill("#username", "alice").await;
    b.fill("#password", "wonderland").await;
    b.click(Locator::Css("button[type=submit]")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_sent_after_the_session_ended_lands_after_the_sign_in() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = Backend::with(|seen| {
        if seen.method == "POST" {
            let user = seen.header("x-session-user").unwrap_or_default();
            return Reply::ok(&format!(
                "<!DOCTYPE html><p id=\"saved\">Saved for {user}: {}</p>",
                String::from_utf8_lossy(&seen.body)
            ))
            .header("content-type", "text/html");
        }
        Reply::ok(FORM_PAGE).header("content-type", "text/html")
    })
    .await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let users = dir.path().join("users");
    let hash = sessiongate::login::hash_password("wonderland").expect("a hash");
    std::fs::write(&users, format!("alice:{hash}\n")).expect("the users file");
    let proxy = Proxy::start(&config(
        &[("/members/", &app.url(), "login")],
        &format!(
            "idle_timeout = \"5m\"\n\n[login]\nusers_file = \"{}\"\n",
            users.display()
        ),
    ))
    .await;

    b.goto(&proxy.url("/members/form")).await;
    sign_in(&b).await;
    b.wait_for_path("/members/form").await;
    b.fill("#note", "taxi to the airport, 42 €").await;
    // Twenty minutes of typing: the session is over when the form leaves.
    proxy.advance(20 * 60);
    b.click(Locator::Id("send")).await;
    b.wait_for_path("/.sessiongate/login").await;
    let page = b.body_text().await;
    assert!(
        page.contains("will be sent again after you sign in"),
        "{page}"
    );
    b.screenshot("replay-login").await;
    assert!(
        app.seen().iter().all(|s| s.method != "POST"),
        "kept, not sent"
    );

    sign_in(&b).await;
    b.wait_for_path("/members/save").await;
    let saved = b.find(Locator::Id("saved")).await;
    assert_eq!(
        saved.text().await.expect("the answer"),
        "Saved for alice: note=taxi+to+the+airport%2C+42+%E2%82%AC"
    );
    let posted = app.seen_with("POST");
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].uri, "/members/save?sheet=4");
    assert!(
        b.client.get_named_cookie("sg_kept").await.is_err(),
        "the one-time cookie is gone"
    );

    // A reload is a visit: the form is not sent twice.
    b.client.refresh().await.expect("reload");
    b.find(Locator::Id("send")).await;
    assert_eq!(app.seen_with("POST").len(), 1);

    b.close().await;
}
