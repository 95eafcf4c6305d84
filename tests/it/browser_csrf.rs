//! The cross-site shield in headless Chromium: a page on a second origin
//! (another 127.0.0.1 port: the same *site*, so the browser sends the
//! `SameSite=Lax` session cookie along) auto-submits a form to the proxied
//! application and gets the 403 page, and nothing reaches the backend;
//! the same form on the application's own page goes through.
//!
//! Follows tests/it/browser.rs (one browser at a time; without Chromium the
//! test says so and returns, except in CI).

use fantoccini::Locator;

use crate::browser::{Browser, ONE_BROWSER_AT_A_TIME};
use crate::harness::{Backend, Proxy, Reply, config};

/// The application's page with its form.
const FORM_PAGE: &str = "<!DOCTYPE html><html><head><title>Guestbook</title></head><body>\
<form method=\"post\" action=\"/app/submit\">\
<input id=\"comment\" name=\"comment\"><button id=\"send\" type=\"submit\">Send</button>\
</form></body></html>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_origins_form_is_refused_and_our_own_goes_through() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = Backend::with(|seen| match seen.uri.as_str() {
        "/app/submit" => Reply::ok(&format!(
            "<!DOCTYPE html><p id=\"thanks\">Thanks for {}</p>",
            String::from_utf8_lossy(&seen.body)
        ))
        .header("content-type", "text/html"),
        _ => Reply::ok(FORM_PAGE).header("content-type", "text/html"),
    })
    .await;
    let proxy = Proxy::start(&config(&[("/app/", &app.url(), "session")], "")).await;
    let target = proxy.url("/app/submit");
    // The attacker's page: a hidden form posted as soon as it loads.
    let attacker = Backend::with(move |_| {
        Reply::ok(&format!(
            "<!DOCTYPE html><html><body><form id=\"f\" method=\"post\" action=\"{target}\">\
             <input type=\"hidden\" name=\"comment\" value=\"forged\"></form>\
             <script>document.getElementById('f').submit()</script></body></html>"
        ))
        .header("content-type", "text/html")
    })
    .await;

    // A visit first: the browser holds the application's session cookie.
    b.goto(&proxy.url("/app/form.html")).await;
    b.find(Locator::Id("comment")).await;
    assert!(
        b.client.get_named_cookie("sg_session").await.is_ok(),
        "a session cookie"
    );

    b.goto(&format!("{}/attack.html", attacker.url())).await;
    b.wait_for_path("/app/submit").await;
    let refused = b.body_text().await;
    assert!(refused.contains("sent from another site"), "{refused}");
    b.screenshot("csrf-refused").await;
    assert!(
        app.seen().iter().all(|s| s.method != "POST"),
        "the forged form reached the backend: {:?}",
        app.seen()
    );
    let setup = proxy.gate().setup();
    let meter = setup.route(None, "/app/submit").expect("the route").meter;
    assert_eq!(meter.csrf_refused(), 1);

    // The same form from the application's own page.
    b.goto(&proxy.url("/app/form.html")).await;
    b.fill("#comment", "hello").await;
    b.click(Locator::Id("send")).await;
    b.wait_for_path("/app/submit").await;
    let thanks = b.find(Locator::Id("thanks")).await;
    assert_eq!(
        thanks.text().await.expect("the answer"),
        "Thanks for comment=hello"
    );
    let posted = app.seen_with("POST");
    assert_eq!(posted.len(), 1);
    assert_eq!(&posted[0].body[..], b"comment=hello");
    assert_eq!(meter.csrf_refused(), 1);

    b.close().await;
}
