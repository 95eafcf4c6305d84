use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn minimal() -> String {
    format!(
        "[session]\nsecret_keys = [\"{KEY}\"]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n"
    )
}

#[test]
fn minimal_config_gets_spec_defaults() {
    let c: Config = minimal().parse().unwrap();
    assert_eq!(c.server.listen, vec!["0.0.0.0:8080".parse().unwrap()]);
    assert_eq!(c.session.cookie_name, "sg_session");
    assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.session.max_lifetime, Duration::from_secs(86400));
    assert_eq!(c.session.cookie_same_site, SameSite::Lax);
    assert_eq!(c.session.cookie_secure, CookieSecure::Auto);
    assert_eq!(c.store.kind, StoreKind::Memory);
    assert_eq!(c.store.max_sessions, 1_000_000);
    assert_eq!(c.login.prefix, "/.sessiongate");
    assert_eq!(c.headers.prefix, "X-Session-");
    assert_eq!(c.headers.names.user.as_str(), "x-session-user");
    assert_eq!(c.routes[0].access, Access::Public);
}

#[test]
fn durations_need_units() {
    assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
    assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
    assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("soon").is_err());
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let text = minimal().replace(
        "[session]\nsecret_keys",
        "[session]\nidle_timout = \"5m\"\nsecret_keys",
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].col), (2, 1));
    assert!(
        errs[0].message.contains("idle_timout"),
        "{}",
        errs[0].message
    );
}

#[test]
fn every_error_is_reported() {
    let text = "[server]\nlisten = [\"nope\"]\nbogus = 1\n\n[session]\nsecret_keys = [\"short\"]\nidle_timeout = \"5\"\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\naccess = \"maybe\"\n";
    let errs = text.parse::<Config>().unwrap_err().0;
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    // bogus key (3), bad duration (7), bad access (12) are found in the
    // first pass; once they are gone the remaining values are checked.
    assert!(lines.contains(&3), "{errs:?}");
    assert!(lines.contains(&7), "{errs:?}");
    assert!(lines.contains(&12), "{errs:?}");
}

#[test]
fn semantic_errors_name_their_line() {
    let text = "[server]\nlisten = [\"nope\"]\n\n[session]\nsecret_keys = [\"short\"]\n\n[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n";
    let errs = text.parse::<Config>().unwrap_err().0;
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 5, 9], "{errs:?}");
    assert!(errs[1].message.contains("at least 32"));
}

#[test]
fn secrets_resolve_from_env_and_file() {
    let dir = std::env::temp_dir().join(format!("sg-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let text = minimal().replace(
        &format!("[\"{KEY}\"]"),
        &format!(
            "[\"file:{}\", \"env:SG_TEST_UNSET_VARIABLE\"]",
            file.display()
        ),
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    assert!(
        errs[0]
            .message
            .contains("SG_TEST_UNSET_VARIABLE is not set")
    );
    let text = minimal().replace(
        &format!("[\"{KEY}\"]"),
        &format!("[\"file:{}\"]", file.display()),
    );
    let c: Config = text.parse().unwrap();
    assert_eq!(c.session.secret_keys, vec![KEY.as_bytes().to_vec()]);
}

#[test]
fn secret_files_that_never_end_or_block_are_refused() {
    // Each check runs on its own thread so that a regression fails the
    // test instead of hanging it.
    fn resolved_within_a_few_seconds(spec: String) -> Result<String, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(resolve_secret(&spec, &SystemSecrets).map_err(|e| e.to_string()))
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("resolve_secret returned within five seconds")
    }
    let dir = tempfile::tempdir().unwrap();

    let err = resolved_within_a_few_seconds("file:/dev/zero".into()).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");

    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = resolved_within_a_few_seconds(format!("file:{}", fifo.display())).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");

    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'k'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();
    let err = resolved_within_a_few_seconds(format!("file:{}", big.display())).unwrap_err();
    assert!(err.contains("larger than 64 KiB"), "{err}");

    let largest = dir.path().join("largest");
    std::fs::write(&largest, vec![b'k'; MAX_SECRET_FILE_BYTES as usize]).unwrap();
    let key = resolved_within_a_few_seconds(format!("file:{}", largest.display())).unwrap();
    assert_eq!(key.len(), MAX_SECRET_FILE_BYTES as usize);

    let err = resolved_within_a_few_seconds(format!("file:{}", dir.path().display())).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    let err = resolved_within_a_few_seconds("file:/nonexistent/key".into()).unwrap_err();
    assert!(err.contains("cannot read secret file"), "{err}");
}

#[test]
fn upstreams_parse() {
    assert!(matches!(
        parse_upstream("cgi:site/cgi-bin"),
        Ok(Upstream::Cgi(_))
    ));
    assert!(matches!(
        parse_upstream("http://127.0.0.1:8000"),
        Ok(Upstream::Http { .. })
    ));
    assert!(matches!(
        parse_upstream("https://example.org/"),
        Ok(Upstream::Http { .. })
    ));
    assert!(parse_upstream("http://127.0.0.1:8000/app").is_err());
    assert!(parse_upstream("ftp://x").is_err());
    assert!(parse_upstream("cgi:").is_err());
}

#[test]
fn header_names_fold_underscores_and_dots() {
    assert_eq!(normalize_header_name("X_Session.User"), "x-session-user");
}

#[test]
fn syntax_error_has_position() {
    let errs = "[server\nlisten = 1".parse::<Config>().unwrap_err().0;
    assert_eq!(errs[0].line, 1);
}

#[test]
fn redis_needs_url() {
    let text = format!("{}\n[store]\nkind = \"redis\"\n", minimal());
    let errs = text.parse::<Config>().unwrap_err().0;
    assert!(errs[0].message.contains("store.url"), "{errs:?}");
}

#[test]
fn redirect_http_needs_tls() {
    let text = minimal().replace(
        "[session]",
        "[server]\nredirect_http = \"127.0.0.1:8081\"\n\n[session]",
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    assert!(
        errs.iter().any(|e| e.message.contains("needs server.tls")),
        "{errs:?}"
    );
    let text = minimal().replace(
        "[session]",
        "[server]\ntls = { cert = \"c.pem\", key = \"k.pem\" }\nredirect_http = [\"127.0.0.1:8081\"]\nupstream_ca = \"ca.pem\"\n\n[session]",
    );
    let c: Config = text.parse().unwrap();
    assert_eq!(
        c.server.redirect_http,
        vec!["127.0.0.1:8081".parse().unwrap()]
    );
    assert_eq!(c.server.upstream_ca, Some(PathBuf::from("ca.pem")));
    assert!(c.summary().contains("redirect: http://127.0.0.1:8081"));
}

#[test]
fn connection_keys_have_spec_defaults() {
    let c: Config = minimal().parse().unwrap();
    assert_eq!(c.server.request_header_timeout, Duration::from_secs(30));
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.server.max_connections, None);
    assert_eq!(c.server.upstream_max_connections, 256);
    assert!(c.server.hsts.is_none());
    let summary = c.summary();
    assert!(summary.contains("from the open files limit"), "{summary}");
    assert!(summary.contains("at most 256 per upstream"), "{summary}");
    assert!(!summary.contains("hsts"), "{summary}");
}

#[test]
fn connection_keys_are_read() {
    let text = format!(
        "[server]\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\nrequest_header_timeout = \"5s\"\nkeepalive_timeout = \"2m\"\nmax_connections = 500\nupstream_max_connections = 8\nhsts = \"max-age=31536000; includeSubDomains\"\n\n{}",
        minimal()
    );
    let c: Config = text.parse().unwrap();
    assert_eq!(c.server.request_header_timeout, Duration::from_secs(5));
    assert_eq!(c.server.keepalive_timeout, Duration::from_secs(120));
    assert_eq!(c.server.max_connections, Some(500));
    assert_eq!(c.server.upstream_max_connections, 8);
    assert_eq!(
        c.server.hsts.as_ref().map(|v| v.as_bytes()),
        Some(&b"max-age=31536000; includeSubDomains"[..])
    );
    let summary = c.summary();
    assert!(summary.contains("connections: at most 500"), "{summary}");
    assert!(
        summary.contains("hsts: max-age=31536000; includeSubDomains"),
        "{summary}"
    );
}

#[test]
fn bad_connection_keys_name_their_position() {
    let text = format!(
        "[server]\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\nrequest_header_timeout = \"0s\"\nkeepalive_timeout = \"500ms\"\nmax_connections = 0\nupstream_max_connections = 0\nhsts = \"max-age=1y\"\n\n{}",
        minimal()
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    let found: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(
        found,
        vec![(3, 26), (4, 21), (5, 19), (6, 28), (7, 8)],
        "{errs:?}"
    );
    assert!(
        errs[0]
            .message
            .contains("request_header_timeout must be at least one second")
    );
    assert!(
        errs[1]
            .message
            .contains("keepalive_timeout must be at least one second")
    );
    assert!(
        errs[2]
            .message
            .contains("max_connections must be at least 1")
    );
    assert!(
        errs[3]
            .message
            .contains("upstream_max_connections must be at least 1")
    );
    assert!(errs[4].message.contains("max-age=SECONDS"), "{}", errs[4]);
    assert_eq!(
        errs[4].to_string().split(':').take(3).collect::<Vec<_>>(),
        ["<config>", "7", "8"]
    );
}

#[test]
fn a_duration_without_unit_or_a_wrong_type_is_reported_where_it_is() {
    let text = format!(
        "[server]\nkeepalive_timeout = \"75\"\nmax_connections = \"many\"\n\n{}",
        minimal()
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3], "{errs:?}");
    assert!(errs[0].message.contains("needs a unit"), "{errs:?}");
}

#[test]
fn hsts_needs_tls() {
    let text = format!("[server]\nhsts = \"max-age=600\"\n\n{}", minimal());
    let errs = text.parse::<Config>().unwrap_err().0;
    assert_eq!((errs[0].line, errs[0].col), (2, 8), "{errs:?}");
    assert!(errs[0].message.contains("needs server.tls"), "{errs:?}");
}

#[test]
fn redirect_http_must_not_reuse_a_listen_address() {
    let text = minimal().replace(
        "[session]",
        "[server]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }\nredirect_http = \"127.0.0.1:8443\"\n\n[session]",
    );
    let errs = text.parse::<Config>().unwrap_err().0;
    assert!(
        errs.iter()
            .any(|e| e.message.contains("also in server.listen")),
        "{errs:?}"
    );
}
