//! `upstream = "static:DIR"` through the proxy, against real files in a
//! temporary directory: what is served, how, and what never is.

use crate::harness::form::{ALICE, ALICE_PASSWORD, form_sign_in};
use crate::harness::*;

/// The bytes of a 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x60, 0x60, 0xf8,
    0x0f, 0x00, 0x01, 0x04, 0x01, 0x00, 0x5f, 0xe5, 0xc3, 0x4b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// What the file outside DIR says; it must never reach a client.
const SECRET: &str = "the secret outside the site";

/// The big file: a few MB of a pattern that shows any byte out of place.
fn big() -> Vec<u8> {
    (0..5 * 1024 * 1024 + 123)
        .map(|i: u32| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

/// A site in a temporary directory, served by a proxy: `/static/` (public)
/// and `/members/` (login) both serve `site/`; `/` is a backend.
struct Site {
    proxy: Proxy,
    _backend: Backend,
    dir: tempfile::TempDir,
}

impl Site {
    async fn start() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        let write = |name: &str, bytes: &[u8]| {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write("index.html", b"<h1>home</h1>");
        write("style.css", b"body { color: #333 }");
        write("logo.png", PNG);
        write("app.js", b"console.log('plain')");
        write("app.js.gz", b"pretend this is gzip");
        write("docs/index.html", b"<h1>docs</h1>");
        write("empty/readme.txt", b"no index here");
        write(".git/config", b"[core] secret");
        write(".htpasswd", b"alice:hash");
        write("big.bin", &big());
        std::fs::create_dir_all(root.join("nothing")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("style.css"), root.join("same.css")).unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{ALICE}\n")).unwrap();

        let backend = Backend::start().await;
        let files = format!("static:{}", root.display());
        let proxy = Proxy::start(&config(
            &[
                ("/static/", &files, "public"),
                ("/members/", &files, "login"),
                ("/", &backend.url(), "public"),
            ],
            &format!("[login]\nusers_file = \"{}\"\n", users.display()),
        ))
        .await;
        Site {
            proxy,
            _backend: backend,
            dir,
        }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("site")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client().get(self.proxy.url(path)).send().await.unwrap()
    }

    /// The response to raw request-target `target`, sent byte for byte
    /// (reqwest would resolve dot segments itself).
    async fn raw_get(&self, target: &str) -> String {
        raw(
            self.proxy.addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

#[tokio::test]
async fn files_come_with_their_content_type_and_validators() {
    let site = Site::start().await;
    for (path, content_type, body) in [
        (
            "/static/style.css",
            "text/css",
            &b"body { color: #333 }"[..],
        ),
        ("/static/logo.png", "image/png", PNG),
        ("/static/index.html", "text/html", b"<h1>home</h1>"),
        ("/static/same.css", "text/css", b"body { color: #333 }"),
    ] {
        let r = site.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), content_type, "{path}");
        assert_eq!(header(&r, "content-length"), body.len().to_string());
        assert!(header(&r, "etag").starts_with("W/\""), "{path}");
        assert!(!header(&r, "last-modified").is_empty(), "{path}");
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert_eq!(header(&r, "accept-ranges"), "bytes");
        assert_eq!(r.bytes().await.unwrap(), body, "{path}");
    }
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let site = Site::start().await;
    let r = client()
        .head(site.proxy.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/css");
    assert_eq!(header(&r, "content-length"), "20");
    assert!(!header(&r, "etag").is_empty());
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let site = Site::start().await;
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = client()
            .request(method.clone(), site.proxy.url("/static/style.css"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(header(&r, "allow"), "GET, HEAD", "{method}");
    }
}

#[tokio::test]
async fn an_unchanged_file_is_not_modified_by_etag_or_date() {
    let site = Site::start().await;
    let first = site.get("/static/style.css").await;
    let etag = header(&first, "etag").to_owned();
    let modified = header(&first, "last-modified").to_owned();

    let by_tag = client()
        .get(site.proxy.url("/static/style.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(by_tag.status(), 304);
    assert_eq!(header(&by_tag, "etag"), etag);
    assert_eq!(header(&by_tag, "cache-control"), "no-cache");
    assert!(by_tag.bytes().await.unwrap().is_empty());

    let by_date = client()
        .get(site.proxy.url("/static/style.css"))
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(by_date.status(), 304);
    assert_eq!(header(&by_date, "etag"), etag);

    // Another tag wins over a date that would match (RFC 9110 13.2.2).
    let other_tag = client()
        .get(site.proxy.url("/static/style.css"))
        .header("if-none-match", "W/\"something-else\"")
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(other_tag.status(), 200);

    // A changed file is a new version: its old validators no longer match.
    std::fs::write(site.root().join("style.css"), "body { color: #000; }").unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(site.root().join("style.css"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let changed = client()
        .get(site.proxy.url("/static/style.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(header(&changed, "etag"), etag);
    assert_eq!(changed.text().await.unwrap(), "body { color: #000; }");
}

#[tokio::test]
async fn ranges_are_partial_content_or_416() {
    let site = Site::start().await;
    let part = client()
        .get(site.proxy.url("/static/style.css"))
        .header("range", "bytes=5-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-range"), "bytes 5-9/20");
    assert_eq!(part.text().await.unwrap(), "{ col");

    let suffix = client()
        .get(site.proxy.url("/static/style.css"))
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.text().await.unwrap(), "33 }");

    let beyond = client()
        .get(site.proxy.url("/static/style.css"))
        .header("range", "bytes=100-200")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(header(&beyond, "content-range"), "bytes */20");

    // A range for another version of the file gets the whole file.
    let stale = client()
        .get(site.proxy.url("/static/style.css"))
        .header("range", "bytes=5-9")
        .header("if-range", "Thu, 01 Jan 1970 00:00:01 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.text().await.unwrap(), "body { color: #333 }");
}

#[tokio::test]
async fn directories_serve_their_index_or_nothing() {
    let site = Site::start().await;
    let r = site.get("/static/docs/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html");
    assert_eq!(r.text().await.unwrap(), "<h1>docs</h1>");

    let r = site.get("/static/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "<h1>home</h1>");

    let r = site.get("/static/docs?tab=2&x").await;
    assert_eq!(r.status(), 301);
    assert_eq!(header(&r, "location"), "/static/docs/?tab=2&x");

    // No listing: a directory without index.html is not there.
    for path in ["/static/empty/", "/static/nothing/", "/static/style.css/"] {
        let r = site.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(!r.text().await.unwrap().contains("readme.txt"), "{path}");
    }
}

#[tokio::test]
async fn dot_files_are_not_there() {
    let site = Site::start().await;
    for path in [
        "/static/.git/config",
        "/static/.htpasswd",
        "/static/%2ehtpasswd",
        "/static/.git/",
        "/static/docs/../.htpasswd",
    ] {
        let r = site.raw_get(path).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        assert!(!r.contains("secret") && !r.contains("alice"), "{path}: {r}");
    }
}

#[tokio::test]
async fn nothing_outside_the_directory_is_served() {
    let site = Site::start().await;
    for path in [
        "/static/out.txt",
        "/static/up/secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..%5Csecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/x/%2E%2E/%2E%2E/secret.txt",
    ] {
        let r = site.raw_get(path).await;
        assert!(!r.contains(SECRET), "{path}: {r}");
        // Dot segments are resolved before routing: `/static/../x` is `/x`,
        // the backend's business, never a file above the directory.
        let backend_answered = r.ends_with("\r\n\r\nok");
        assert!(
            !r.starts_with("HTTP/1.1 200") || backend_answered,
            "{path}: {r}"
        );
    }
}

#[tokio::test]
async fn a_precompressed_sibling_is_served_to_clients_that_take_it() {
    let site = Site::start().await;
    let gz = client()
        .get(site.proxy.url("/static/app.js"))
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(header(&gz, "vary"), "accept-encoding");
    assert!(header(&gz, "content-type").contains("javascript"));
    assert_eq!(gz.text().await.unwrap(), "pretend this is gzip");

    let plain = client()
        .get(site.proxy.url("/static/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(header(&plain, "vary"), "accept-encoding");
    assert_eq!(plain.text().await.unwrap(), "console.log('plain')");

    // A sibling that leads out of the directory is never served.
    std::os::unix::fs::symlink(
        site.dir.path().join("secret.txt"),
        site.root().join("style.css.gz"),
    )
    .unwrap();
    let r = client()
        .get(site.proxy.url("/static/style.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-encoding"), "");
    assert_eq!(r.text().await.unwrap(), "body { color: #333 }");
}

#[tokio::test]
async fn a_login_route_sends_visitors_to_sign_in_first() {
    let site = Site::start().await;
    let r = site.get("/members/style.css").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        header(&r, "location"),
        "/.sessiongate/login?next=%2Fmembers%2Fstyle.css"
    );

    let cookie = form_sign_in(&site.proxy, "alice", ALICE_PASSWORD).await;
    let r = client()
        .get(site.proxy.url("/members/style.css"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "private, no-cache");
    assert_eq!(r.text().await.unwrap(), "body { color: #333 }");
}

#[tokio::test]
async fn a_big_file_streams_whole_and_in_ranges() {
    let site = Site::start().await;
    let expected = big();
    let r = site.get("/static/big.bin").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), expected.len().to_string());
    let got = r.bytes().await.unwrap();
    assert!(got == expected, "the big file differs");

    let (start, end) = (3_000_001usize, 4_200_000usize);
    let r = client()
        .get(site.proxy.url("/static/big.bin"))
        .header("range", format!("bytes={start}-{end}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let got = r.bytes().await.unwrap();
    assert!(got == expected[start..=end], "the range differs");
}

#[tokio::test]
async fn a_missing_static_directory_fails_the_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    for missing in [dir.path().join("nope"), file] {
        let text = config(
            &[("/", &format!("static:{}", missing.display()), "public")],
            "",
        );
        let config: sessiongate::config::Config = text.parse().unwrap();
        let e = sessiongate::setup::Setup::build(config)
            .err()
            .expect("a setup error");
        assert!(e.to_string().contains("static directory"), "{e}");
    }
}

#[tokio::test]
async fn static_routes_refuse_upgrades() {
    let site = Site::start().await;
    let answer = raw(
        site.proxy.addr,
        b"GET /static/index.html HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
}

/// The largest file read whole in the lookup (`files::content::SMALL_FILE`).
const SMALL_FILE: usize = 64 * 1024;

#[tokio::test]
async fn files_either_side_of_the_read_limit_are_byte_exact() {
    let site = Site::start().await;
    let pattern = big();
    // Read whole in the lookup; one byte over, streamed from the open file;
    // and several chunks' worth, streamed too.
    for len in [SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 7] {
        let name = format!("edge-{len}.bin");
        std::fs::write(site.root().join(&name), &pattern[..len]).unwrap();
        let path = format!("/static/{name}");

        let r = site.get(&path).await;
        assert_eq!(r.status(), 200, "{len}");
        assert_eq!(header(&r, "content-length"), len.to_string(), "{len}");
        assert!(r.bytes().await.unwrap() == pattern[..len], "{len}: whole");

        let (start, end) = (len / 3, len - 2);
        let r = client()
            .get(site.proxy.url(&path))
            .header("range", format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{len}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {start}-{end}/{len}")
        );
        assert!(
            r.bytes().await.unwrap() == pattern[start..=end],
            "{len}: range"
        );

        let r = client().head(site.proxy.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{len}");
        assert_eq!(header(&r, "content-length"), len.to_string(), "{len}");
        assert!(r.bytes().await.unwrap().is_empty(), "{len}: HEAD");
    }
}

#[tokio::test]
async fn a_file_replaced_between_two_requests_is_served_new() {
    let site = Site::start().await;
    let file = site.root().join("news.txt");
    std::fs::write(&file, "first edition").unwrap();
    let first = site.get("/static/news.txt").await;
    let first_tag = header(&first, "etag").to_owned();
    assert_eq!(first.text().await.unwrap(), "first edition");

    // Another size, written in place.
    std::fs::write(&file, "the second edition").unwrap();
    let second = site.get("/static/news.txt").await;
    let second_tag = header(&second, "etag").to_owned();
    assert_ne!(second_tag, first_tag);
    assert_eq!(second.text().await.unwrap(), "the second edition");

    // The same size, another time: a new file renamed over the old one, as
    // deployments do.
    let staged = site.root().join("news.txt.new");
    std::fs::write(&staged, "the THIRD edition!").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(7))
        .unwrap();
    std::fs::rename(&staged, &file).unwrap();
    let third = client()
        .get(site.proxy.url("/static/news.txt"))
        .header("if-none-match", &second_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
    assert_ne!(header(&third, "etag"), second_tag);
    assert_eq!(third.text().await.unwrap(), "the THIRD edition!");
}

#[tokio::test]
async fn date_preconditions_on_a_small_file() {
    let site = Site::start().await;
    let get = |name: &'static str, value: &'static str| {
        client()
            .get(site.proxy.url("/static/style.css"))
            .header(name, value)
            .send()
    };
    let past = "Thu, 01 Jan 1970 00:00:01 GMT";
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";

    let r = get("if-unmodified-since", past).await.unwrap();
    assert_eq!(r.status(), 412);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get("if-unmodified-since", future).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "body { color: #333 }");

    let r = get("if-modified-since", future).await.unwrap();
    assert_eq!(r.status(), 304);
    assert!(header(&r, "etag").starts_with("W/\""));
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get("if-modified-since", past).await.unwrap();
    assert_eq!(r.status(), 200);
    // A date that is no date is ignored, not refused.
    let r = get("if-modified-since", "yesterday").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "body { color: #333 }");
}

#[tokio::test]
async fn the_sibling_the_client_prefers_is_served_whole_in_ranges_and_to_head() {
    let site = Site::start().await;
    std::fs::write(site.root().join("app.js.br"), "pretend this is brotli").unwrap();
    let get = |accept: &'static str| {
        client()
            .get(site.proxy.url("/static/app.js"))
            .header("accept-encoding", accept)
            .send()
    };
    for (accept, encoding, body) in [
        ("gzip, deflate, br", "br", "pretend this is brotli"),
        ("gzip, br;q=0.5", "gzip", "pretend this is gzip"),
        ("br;q=0, gzip;q=0.1", "gzip", "pretend this is gzip"),
        ("identity, br;q=0.5", "", "console.log('plain')"),
    ] {
        let r = get(accept).await.unwrap();
        assert_eq!(r.status(), 200, "{accept}");
        assert_eq!(header(&r, "content-encoding"), encoding, "{accept}");
        assert!(
            header(&r, "content-type").contains("javascript"),
            "{accept}"
        );
        assert_eq!(r.text().await.unwrap(), body, "{accept}");
    }

    let part = client()
        .get(site.proxy.url("/static/app.js"))
        .header("accept-encoding", "br")
        .header("range", "bytes=16-21")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(header(&part, "content-encoding"), "br");
    assert_eq!(header(&part, "content-range"), "bytes 16-21/22");
    assert_eq!(part.text().await.unwrap(), "brotli");

    let head = client()
        .head(site.proxy.url("/static/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&head, "content-encoding"), "gzip");
    assert_eq!(header(&head, "content-length"), "20");
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_kept_small_file_rewritten_in_place_is_served_new() {
    let site = Site::start().await;
    let file = site.root().join("kept.css");
    std::fs::write(&file, "p { margin: 0 }").unwrap();
    // Small files are kept in memory once unchanged for two seconds (a
    // change in the same clock tick as the read could not be told apart
    // sooner); wait that long so that the next requests are served from
    // memory.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    for _ in 0..2 {
        let r = site.get("/static/kept.css").await;
        assert_eq!(r.text().await.unwrap(), "p { margin: 0 }");
    }

    // The same size and the same modification time: only the inode's
    // change time tells the new version from the old.
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "p { margin: 1 }").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let r = site.get("/static/kept.css").await;
    assert_eq!(r.text().await.unwrap(), "p { margin: 1 }");

    // Gone is gone.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(site.get("/static/kept.css").await.status(), 404);
}
