//! The built-in login form driven like a browser: fetch the page for its
//! CSRF token, post the form; and what a session cookie names.

use sessiongate::session::{SessionId, Signer};

use super::{KEY, Proxy, session_cookie};

/// `htpasswd -bnB -C 5 alice 'correct horse'`.
pub const ALICE: &str = "alice:$2y$05$8GZGcB76O/vrMDfbnLsspuETEb.ZaPA/atHhCzSgQhhJyk31FFTzC";
/// Alice's password.
pub const ALICE_PASSWORD: &str = "correct horse";
/// `htpasswd -bnB -C 4 bob 'tr0ub4dor&3'`.
pub const BOB: &str = "bob:$2y$04$tp9XPZ.hBRrma9StnSTQC.7XLfwgDnATk1mwJLhrqkkqw5o2Ba/Uy";
/// Bob's password.
pub const BOB_PASSWORD: &str = "tr0ub4dor&3";

/// The value of the hidden csrf field in a login page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\"").expect("a csrf field");
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
    let v = tag.find("value=\"").unwrap() + 7;
    tag[v..v + tag[v..].find('"').unwrap()].to_string()
}

/// Posts the login form as the browser `c` (which keeps cookies), after
/// fetching the page for its token; returns the answer.
pub async fn post_login(
    c: &reqwest::Client,
    proxy: &Proxy,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let page = c
        .get(proxy.url("/.sessiongate/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    c.post(proxy.url("/.sessiongate/login"))
        .form(&[
            ("username", user),
            ("password", password),
            ("next", "/"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in through the form as a new browser; returns the session
/// cookie's `name=value`.
pub async fn form_sign_in(proxy: &Proxy, user: &str, password: &str) -> String {
    let resp = post_login(&super::browser(), proxy, user, password).await;
    assert_eq!(resp.status(), 303, "signing in as {user}");
    session_cookie(&resp).expect("a login sets the session cookie")
}

/// The session id a `name=value` cookie signed with [`KEY`] names.
pub fn id_of(cookie: &str) -> SessionId {
    let value = cookie.split_once('=').map_or(cookie, |(_, v)| v);
    Signer::new(&[KEY.as_bytes().to_vec()])
        .decode(value, 0, u64::MAX)
        .map(|claims| claims.id)
        .unwrap_or_else(|e| panic!("not a cookie of ours: {cookie} ({e:?})"))
}
