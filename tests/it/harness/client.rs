//! Clients for the proxy: reqwest with or without a cookie jar (never
//! following redirects, which tests check themselves), its cookies, and raw
//! bytes over TCP for requests no well-behaved client would send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that follows no redirects and keeps no cookies: tests handle them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser-like client: keeps cookies, follows no redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every `Set-Cookie` of a response.
pub fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The `name=value` pair of our cookie in a response, if it sets one.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.starts_with("sg_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Sends raw bytes over HTTP/1.1 and returns the whole response text.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
