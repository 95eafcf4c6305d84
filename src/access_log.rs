//! The access log line: one per request, written when its response body
//! ends, with the real byte count and duration.
//!
//! Text lines are formatted here directly, piece by piece, into a reused
//! buffer and handed to the log writer whole ([`crate::logging`]); JSON
//! lines go through `tracing` with separate fields.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::session::LogTag;

/// One access log line: client, method, path, status, bytes, duration,
/// route, user, and a short hash of the session id (never the id).
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub started: Instant,
    /// Client IP.
    pub client: IpAddr,
    /// Method.
    pub method: http::Method,
    /// Path, without the query (queries may carry secrets).
    pub path: String,
    /// Status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// The route's path, or `-`.
    pub route: Arc<str>,
    /// Logged-in user.
    pub user: Option<Arc<str>>,
    /// Short hash of the session id.
    pub session: Option<LogTag>,
    /// The body ended with an error or the client went away.
    pub aborted: bool,
}

thread_local! {
    /// The line being formatted, reused from request to request.
    static TEXT_LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The timestamp's `YYYY-MM-DDTHH:MM:SS` for the current second.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Whether access lines carry their facts as separate fields (JSON logs)
/// rather than as one preformatted message (text logs, where formatting a
/// dozen fields costs several times more than the line itself).
static STRUCTURED: AtomicBool = AtomicBool::new(false);

/// Chooses separate fields (for `log.format = "json"`) or one message.
pub fn structured_access_log(on: bool) {
    STRUCTURED.store(on, Ordering::Relaxed);
}

impl AccessRecord {
    /// Writes the line (called once, when the response body is done).
    pub(crate) fn write(&self) {
        if let Some(output) = crate::logging::direct_access() {
            TEXT_LINE.with_borrow_mut(|line| {
                line.clear();
                self.format_text(line);
                output.append(line.as_bytes());
            });
            return;
        }
        // Integer arithmetic: formatting a float costs more than the rest of the line.
        let micros = self.started.elapsed().as_micros();
        let duration = format_args!("{}.{:03}", micros / 1000, micros % 1000);
        let user = self.user.as_deref().unwrap_or("-");
        let hex = self.session.map(|tag| tag.hex());
        let session = hex
            .as_ref()
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or("-");
        if !STRUCTURED.load(Ordering::Relaxed) {
            tracing::info!(
                target: "access",
                "{} \"{} {}\" {} {} {}ms route={} user={:?} session={}{}",
                self.client,
                self.method,
                self.path,
                self.status,
                self.bytes,
                duration,
                self.route,
                user,
                session,
                if self.aborted { " aborted" } else { "" },
            );
            return;
        }
        tracing::info!(
            target: "access",
            client = %self.client,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            duration_ms = %duration,
            route = %self.route,
            user,
            session,
            aborted = self.aborted,
        );
    }
}

impl AccessRecord {
    /// The text line, exactly as `tracing`'s text format writes the same event:
    /// `2026-01-02T03:04:05.123456Z  INFO access: <message>`.
    fn format_text(&self, line: &mut String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.format_line(line, now, self.started.elapsed().as_micros());
    }

    /// The line for a request that took `micros`, logged at `now` (since
    /// the epoch).
    fn format_line(&self, line: &mut String, now: Duration, micros: u128) {
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.as_secs() {
                *second = now.as_secs();
                let stamp = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(*second),
                )
                .to_string();
                text.clear();
                text.push_str(stamp.trim_end_matches('Z'));
            }
            line.push_str(text);
        });
        // Pushed piece by piece: `format_args!` over a dozen fields costs
        // more than the rest of the request's logging.
        let mut num = itoa::Buffer::new();
        line.push('.');
        push_zero_padded(line, u64::from(now.subsec_micros()), 6);
        line.push_str("Z  INFO access: ");
        push_ip(line, self.client);
        line.push_str(" \"");
        line.push_str(self.method.as_str());
        line.push(' ');
        line.push_str(&self.path);
        line.push_str("\" ");
        line.push_str(num.format(self.status));
        line.push(' ');
        line.push_str(num.format(self.bytes));
        line.push(' ');
        line.push_str(num.format(micros / 1000));
        line.push('.');
        push_zero_padded(line, (micros % 1000) as u64, 3);
        line.push_str("ms route=");
        line.push_str(&self.route);
        line.push_str(" user=");
        push_debug_str(line, self.user.as_deref().unwrap_or("-"));
        line.push_str(" session=");
        match self.session {
            Some(tag) => tag.push_to(line),
            None => line.push('-'),
        }
        if self.aborted {
            line.push_str(" aborted");
        }
        line.push('\n');
    }
}

/// `n` in decimal with at least `width` digits.
fn push_zero_padded(line: &mut String, n: u64, width: usize) {
    let mut num = itoa::Buffer::new();
    let digits = num.format(n);
    for _ in digits.len()..width {
        line.push('0');
    }
    line.push_str(digits);
}

/// An IP address as `Display` writes it.
fn push_ip(line: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                line.push_str(num.format(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(line, "{v6}");
        }
    }
}

/// A string as `Debug` writes it: quoted, with quotes, backslashes and
/// anything unprintable escaped.
fn push_debug_str(line: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        line.push('"');
        line.push_str(s);
        line.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(line, "{s:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as `format!` writes it, which is how `tracing` formats the
    /// same event.
    fn reference(r: &AccessRecord, now: Duration, micros: u128) -> String {
        let stamp = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(now.as_secs()),
        )
        .to_string();
        format!(
            "{}.{:06}Z  INFO access: {} \"{} {}\" {} {} {}.{:03}ms route={} user={:?} session={}{}\n",
            stamp.trim_end_matches('Z'),
            now.subsec_micros(),
            r.client,
            r.method,
            r.path,
            r.status,
            r.bytes,
            micros / 1000,
            micros % 1000,
            r.route,
            r.user.as_deref().unwrap_or("-"),
            r.session.map_or("-".to_string(), |t| t.to_string()),
            if r.aborted { " aborted" } else { "" },
        )
    }

    #[test]
    fn the_text_line_is_what_format_would_write() {
        let users = [
            None,
            Some("alice"),
            Some("o'neil \"the\" \\ one"),
            Some("zoë"),
            Some("tab\there"),
        ];
        let clients: [IpAddr; 4] = [
            "127.0.0.1".parse().unwrap(),
            "10.200.3.45".parse().unwrap(),
            "::1".parse().unwrap(),
            "2001:db8::8a2e:370:7334".parse().unwrap(),
        ];
        let times = [
            (Duration::new(1_767_323_045, 123_456_000), 0),
            (Duration::new(1_767_323_045, 7_000), 1_234_567),
            (Duration::new(0, 999_999_000), 45),
        ];
        for (i, user) in users.iter().enumerate() {
            for client in clients {
                for (now, micros) in times {
                    let record = AccessRecord {
                        started: Instant::now(),
                        client,
                        method: http::Method::POST,
                        path: "/cgi-bin/a b.cgi".into(),
                        status: [200, 302, 404, 503, 101][i],
                        bytes: [0, 1, 99_999, u64::MAX, 12][i],
                        route: Arc::from("/cgi-bin/"),
                        user: user.map(Arc::from),
                        session: (i % 2 == 1).then(|| LogTag::parse("0a1b2c3d4e5f").expect("tag")),
                        aborted: i == 3,
                    };
                    let mut line = String::new();
                    record.format_line(&mut line, now, micros);
                    assert_eq!(line, reference(&record, now, micros));
                }
            }
        }
    }
}
