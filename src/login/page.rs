//! The login page: a built-in one, or an operator's HTML template.
//!
//! The built-in page is plain HTML5 with inline CSS: no script, no external
//! asset, usable with a keyboard and a screen reader, readable on a phone,
//! in light and dark colour schemes.
//!
//! A template is any HTML file with these placeholders, each replaced by its
//! HTML-escaped value (so they are safe inside text and quoted attributes):
//!
//! | placeholder | value |
//! |---|---|
//! | `{{action}}` | where the form must POST |
//! | `{{next}}` | the hidden `next` field's value |
//! | `{{csrf}}` | the hidden `csrf` field's value (required: without it no login can succeed) |
//! | `{{username}}` | the user name typed last, to refill the field |
//! | `{{message}}` | a notice such as the expired-session message, or empty |
//! | `{{error}}` | why the last attempt failed, or empty |
//!
//! Any other `{{...}}` is an error when the template is loaded, reported as
//! `file:line:column: message`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The values a login page shows. Every one is escaped when rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageContext<'a> {
    /// The form's `action`: the login endpoint.
    pub action: &'a str,
    /// Where to go after logging in (already checked with `safe_next`).
    pub next: &'a str,
    /// The anti-forgery token the POST must carry back.
    pub csrf: &'a str,
    /// The user name of the last attempt, to refill the field; may be empty.
    pub username: &'a str,
    /// A notice, such as `login.expired_message`.
    pub message: Option<&'a str>,
    /// Why the last attempt failed.
    pub error: Option<&'a str>,
    /// Offer "remember me" (`login.remember_me` is set): the built-in page
    /// shows a checkbox named `remember`; a template adds its own.
    pub remember: bool,
}

/// A login page template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The template file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the login page template: {source}", path.display())]
    Read {
        /// The template file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The template has an unknown, unclosed or missing placeholder.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Template {
        /// The template file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// A login page ready to render.
#[derive(Debug, Clone)]
pub struct LoginPage {
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    Builtin,
    Template(Vec<Piece>),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Slot(Slot),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Action,
    Next,
    Csrf,
    Username,
    Message,
    Error,
}

impl Slot {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "action" => Self::Action,
            "next" => Self::Next,
            "csrf" => Self::Csrf,
            "username" => Self::Username,
            "message" => Self::Message,
            "error" => Self::Error,
            _ => return None,
        })
    }

    fn value<'a>(self, ctx: &PageContext<'a>) -> &'a str {
        match self {
            Self::Action => ctx.action,
            Self::Next => ctx.next,
            Self::Csrf => ctx.csrf,
            Self::Username => ctx.username,
            Self::Message => ctx.message.unwrap_or_default(),
            Self::Error => ctx.error.unwrap_or_default(),
        }
    }
}

impl LoginPage {
    /// The page that ships with sessiongate.
    pub fn builtin() -> Self {
        Self {
            layout: Layout::Builtin,
        }
    }

    /// Loads an operator's template (see the module docs for placeholders).
    pub fn from_template_file(path: &Path) -> Result<Self, PageError> {
        let text = std::fs::read_to_string(path).map_err(|source| PageError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_template_str(path, &text)
    }

    /// Parses a template's text; `path_for_messages` only names it in errors.
    pub fn from_template_str(path_for_messages: &Path, text: &str) -> Result<Self, PageError> {
        let error_at = |offset: usize, message: String| {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            PageError::Template {
                path: path_for_messages.to_owned(),
                line,
                column: before[line_start..].chars().count() + 1,
                message,
            }
        };
        let mut pieces = Vec::new();
        let mut rest = 0;
        while let Some(found) = text[rest..].find("{{") {
            let open = rest + found;
            let inner_start = open + 2;
            let Some(len) = text[inner_start..].find("}}") else {
                return Err(error_at(
                    open,
                    "unclosed placeholder: \"{{\" without \"}}\"".into(),
                ));
            };
            let name = text[inner_start..inner_start + len].trim();
            let Some(slot) = Slot::named(name) else {
                return Err(error_at(
                    open,
                    format!(
                        "unknown placeholder {{{{{name}}}}}; known: {{{{action}}}}, {{{{next}}}}, \
                         {{{{csrf}}}}, {{{{username}}}}, {{{{message}}}}, {{{{error}}}}"
                    ),
                ));
            };
            if open > rest {
                pieces.push(Piece::Text(text[rest..open].to_owned()));
            }
            pieces.push(Piece::Slot(slot));
            rest = inner_start + len + 2;
        }
        if rest < text.len() {
            pieces.push(Piece::Text(text[rest..].to_owned()));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Slot(Slot::Csrf))) {
            return Err(error_at(
                0,
                "the template has no {{csrf}} placeholder; without it every login is refused"
                    .into(),
            ));
        }
        Ok(Self {
            layout: Layout::Template(pieces),
        })
    }

    /// The page as HTML, every value escaped.
    pub fn render(&self, ctx: &PageContext<'_>) -> String {
        match &self.layout {
            Layout::Builtin => render_builtin(ctx),
            Layout::Template(pieces) => {
                let mut html = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => html.push_str(text),
                        Piece::Slot(slot) => push_escaped(&mut html, slot.value(ctx)),
                    }
                }
                html
            }
        }
    }

    /// A `Content-Security-Policy` for this page: for the built-in page, one
    /// that allows its inline style (by hash) and nothing else, and lets the
    /// form post only to this site. `None` for a template, whose needs are
    /// the operator's to know.
    pub fn content_security_policy(&self) -> Option<&'static str> {
        match self.layout {
            Layout::Builtin => Some(builtin_csp()),
            Layout::Template(_) => None,
        }
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'`, which makes `text` safe in HTML
/// text and in quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// The built-in page's style sheet; its hash is in the page's CSP, so any
/// change here is picked up by [`builtin_csp`] automatically.
const BUILTIN_STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--text:#1b1f24;--border:#767f8c;\
--accent:#0b57d0;--on-accent:#fff;--focus:#0b57d0;\
--error:#8c1d18;--error-bg:#fdecec;--notice:#0b3d91;--notice-bg:#e8f0fe}\
@media (prefers-color-scheme:dark){:root{--bg:#121417;--card:#1d2025;--text:#e8eaed;\
--accent:#8ab4f8;--on-accent:#0b1a33;--focus:#8ab4f8;\
--error:#ffb4ab;--error-bg:#3b1514;--notice:#c2dbff;--notice-bg:#10243f}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
padding:1rem;background:var(--bg);color:var(--text);\
font:1rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{width:100%;max-width:24rem;padding:2rem 1.5rem;background:var(--card);\
border:1px solid var(--border);border-radius:.5rem}\
h1{margin:0 0 1.5rem;font-size:1.5rem;line-height:1.2}\
.field{margin-bottom:1rem}\
label{display:block;margin-bottom:.25rem;font-weight:600}\
input{display:block;width:100%;padding:.625rem .75rem;font:inherit;color:inherit;\
background:var(--card);border:1px solid var(--border);border-radius:.25rem}\
button{width:100%;margin-top:.5rem;padding:.75rem;font:inherit;font-weight:600;\
color:var(--on-accent);background:var(--accent);border:0;border-radius:.25rem;cursor:pointer}\
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
.notice,.error{margin:0 0 1rem;padding:.75rem 1rem;border-left:4px solid;border-radius:.25rem}\
.notice{color:var(--notice);background:var(--notice-bg)}\
.error{color:var(--error);background:var(--error-bg)}\
.check{display:flex;gap:.5rem;align-items:center}\
.check input{display:inline;width:auto;margin:0}.check label{margin:0;font-weight:400}\
.who{margin:0 0 1rem}\
.sessions{list-style:none;margin:0 0 1rem;padding:0}\
.sessions li{padding:1rem 0;border-top:1px solid var(--border)}\
.sessions p{margin:0 0 .25rem}.meta{font-size:.875rem}\
.sessions button{padding:.5rem;color:var(--accent);background:transparent;border:1px solid var(--accent)}\
@media (forced-colors:active){button{border:1px solid}}";

fn builtin_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let digest = Sha256::digest(BUILTIN_STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

/// The start of a built-in page, up to and including its `<h1>`.
pub(super) fn page_start(html: &mut String, title: &str) {
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n<title>",
    );
    html.push_str(title);
    html.push_str("</title>\n<style>");
    html.push_str(BUILTIN_STYLE);
    let _ = writeln!(html, "</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>");
}

fn render_builtin(ctx: &PageContext<'_>) -> String {
    let esc = escape_html;
    let mut html = String::with_capacity(4096);
    page_start(&mut html, "Sign in");
    // `write!` into a String cannot fail; the results are ignored on purpose.
    if let Some(message) = ctx.message {
        let _ = writeln!(
            html,
            "<p class=\"notice\" role=\"status\">{}</p>",
            esc(message)
        );
    }
    let described_by = if let Some(error) = ctx.error {
        let _ = writeln!(
            html,
            "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
            esc(error)
        );
        " aria-describedby=\"login-error\""
    } else {
        ""
    };
    // Focus the field the user has to fill in next: the password when the
    // name is already there after a failed attempt.
    let (focus_user, focus_password) = if ctx.username.is_empty() {
        (" autofocus", "")
    } else {
        ("", " autofocus")
    };
    let _ = write!(
        html,
        "<form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\n\
         <div class=\"field\">\n\
         <label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" type=\"text\" value=\"{username}\" \
         autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" \
         required{focus_user}{described_by}>\n\
         </div>\n\
         <div class=\"field\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required{focus_password}{described_by}>\n\
         </div>\n{remember}\
         <button type=\"submit\">Sign in</button>\n\
         </form>\n</main>\n</body>\n</html>\n",
        action = esc(ctx.action),
        next = esc(ctx.next),
        csrf = esc(ctx.csrf),
        username = esc(ctx.username),
        remember = if ctx.remember {
            "<div class=\"field check\">\n\
             <input id=\"remember\" name=\"remember\" type=\"checkbox\" value=\"1\">\n\
             <label for=\"remember\">Remember me</label>\n\
             </div>\n"
        } else {
            ""
        },
    );
    html
}

/// The page for a signed-in visitor whom a route's `allow` list does not
/// admit: who they are signed in as, and a way to sign out (to sign in as
/// somebody else). Same style, and so the same CSP, as the built-in login
/// page.
pub fn render_not_admitted(user: &str, logout_action: &str) -> String {
    let mut html = String::with_capacity(2048);
    page_start(&mut html, "Not allowed");
    let _ = write!(
        html,
        "<p class=\"error\" role=\"alert\">Your account may not open this page.</p>\n\
         <p class=\"who\">You are signed in as <strong>{user}</strong>.</p>\n\
         <form method=\"post\" action=\"{action}\">\n\
         <button type=\"submit\">Sign out</button>\n\
         </form>\n</main>\n</body>\n</html>\n",
        user = escape_html(user),
        action = escape_html(logout_action),
    );
    html
}

/// The page for a state-changing request refused because it came from
/// another site (see [`crate::csrf`]): what happened, and what to do if it
/// was meant. Same style as the built-in login page.
pub fn render_cross_site() -> String {
    let mut html = String::with_capacity(2048);
    page_start(&mut html, "Request refused");
    html.push_str(
        "<p class=\"error\" role=\"alert\">This form was sent from another site, \
         so it was not passed on.</p>\n\
         <p>If you meant to send it, go back to the page on this site where the \
         form is, reload it, and send it from there.</p>\n\
         <p><a href=\"/\">Go to the start page</a></p>\n</main>\n</body>\n</html>\n",
    );
    html
}

/// The `Content-Security-Policy` of the built-in pages.
pub fn builtin_page_csp() -> &'static str {
    builtin_csp()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "\"><script>alert('x')</script>&";
    const HOSTILE_ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;";

    fn ctx() -> PageContext<'static> {
        PageContext {
            action: "/.sessiongate/login",
            next: "/app?x=1&y=2",
            csrf: "tok3n",
            username: "",
            message: None,
            error: None,
            remember: false,
        }
    }

    fn template(text: &str) -> Result<LoginPage, PageError> {
        LoginPage::from_template_str(Path::new("login.html"), text)
    }

    #[test]
    fn escapes_the_five_special_characters() {
        assert_eq!(escape_html(HOSTILE), HOSTILE_ESCAPED);
        assert_eq!(escape_html("plain é 日本"), "plain é 日本");
    }

    #[test]
    fn builtin_page_has_the_form_fields() {
        let html = LoginPage::builtin().render(&ctx());
        assert!(html.starts_with("<!DOCTYPE html>"));
        for needle in [
            "<html lang=\"en\">",
            "<meta name=\"viewport\"",
            "<main>",
            "<form method=\"post\" action=\"/.sessiongate/login\">",
            "<input type=\"hidden\" name=\"next\" value=\"/app?x=1&amp;y=2\">",
            "<input type=\"hidden\" name=\"csrf\" value=\"tok3n\">",
            "<label for=\"username\">",
            "<label for=\"password\">",
            "autocomplete=\"username\"",
            "autocomplete=\"current-password\"",
            "type=\"password\"",
            ":focus-visible{outline:3px",
        ] {
            assert!(html.contains(needle), "missing {needle:?} in\n{html}");
        }
        assert!(!html.contains("role=\"alert\""));
        assert!(!html.contains("role=\"status\""));
        assert!(!html.contains("name=\"remember\""));
        let html = LoginPage::builtin().render(&PageContext {
            remember: true,
            ..ctx()
        });
        assert!(html.contains("<input id=\"remember\" name=\"remember\" type=\"checkbox\""));
    }

    #[test]
    fn not_admitted_page_names_the_user_and_signs_out() {
        let html = render_not_admitted(HOSTILE, "/.sessiongate/logout");
        assert!(html.contains(&format!("signed in as <strong>{HOSTILE_ESCAPED}</strong>")));
        assert!(html.contains("<form method=\"post\" action=\"/.sessiongate/logout\">"));
        assert!(html.contains(BUILTIN_STYLE));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn builtin_page_has_no_script_and_no_external_asset() {
        let html = LoginPage::builtin().render(&PageContext {
            message: Some("m"),
            error: Some("e"),
            ..ctx()
        });
        let lower = html.to_ascii_lowercase();
        for forbidden in [
            "<script",
            "javascript:",
            "onload",
            "onclick",
            "src=",
            "href=",
            "url(",
            "@import",
        ] {
            assert!(!lower.contains(forbidden), "found {forbidden:?}");
        }
    }

    #[test]
    fn builtin_page_escapes_every_value() {
        let html = LoginPage::builtin().render(&PageContext {
            action: HOSTILE,
            next: HOSTILE,
            csrf: HOSTILE,
            username: HOSTILE,
            message: Some(HOSTILE),
            error: Some(HOSTILE),
            remember: true,
        });
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.matches(HOSTILE_ESCAPED).count(), 6);
    }

    #[test]
    fn message_and_error_are_announced() {
        let html = LoginPage::builtin().render(&PageContext {
            username: "alice",
            message: Some("Your session has expired. Please sign in again."),
            error: Some("Wrong user name or password."),
            ..ctx()
        });
        assert!(html.contains(
            "<p class=\"notice\" role=\"status\">Your session has expired. Please sign in again.</p>"
        ));
        assert!(html.contains(
            "<p class=\"error\" role=\"alert\" id=\"login-error\">Wrong user name or password.</p>"
        ));
        assert!(html.contains("value=\"alice\""));
        assert!(html.contains("aria-describedby=\"login-error\""));
        assert!(
            html.contains("required autofocus aria-describedby"),
            "password is focused"
        );
    }

    #[test]
    fn builtin_csp_allows_exactly_the_inline_style() {
        let page = LoginPage::builtin();
        let html = page.render(&ctx());
        let start = html.find("<style>").unwrap() + "<style>".len();
        let end = html.find("</style>").unwrap();
        let digest = Sha256::digest(&html.as_bytes()[start..end]);
        let expected = format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        let csp = page.content_security_policy().unwrap();
        assert!(csp.contains(&expected), "{csp}");
        assert!(csp.starts_with("default-src 'none';"));
        assert!(csp.contains("form-action 'self'"));
    }

    #[test]
    fn template_fills_and_escapes_placeholders() {
        let page = template(
            "<form action=\"{{action}}\"><input name=csrf value=\"{{ csrf }}\">\
             <input name=next value=\"{{next}}\"><input value=\"{{username}}\">\
             <p>{{message}}</p><p>{{error}}</p></form>",
        )
        .unwrap();
        let html = page.render(&PageContext {
            username: HOSTILE,
            error: Some("bad"),
            ..ctx()
        });
        assert_eq!(
            html,
            format!(
                "<form action=\"/.sessiongate/login\"><input name=csrf value=\"tok3n\">\
                 <input name=next value=\"/app?x=1&amp;y=2\"><input value=\"{HOSTILE_ESCAPED}\">\
                 <p></p><p>bad</p></form>"
            )
        );
        assert!(page.content_security_policy().is_none());
    }

    #[test]
    fn template_placeholders_at_the_edges() {
        let page = template("{{csrf}}").unwrap();
        assert_eq!(page.render(&ctx()), "tok3n");
        let page = template("{{csrf}}{{csrf}} tail").unwrap();
        assert_eq!(page.render(&ctx()), "tok3ntok3n tail");
    }

    #[test]
    fn unknown_placeholder_is_reported_with_line_and_column() {
        let err = template("<p>\n  <b>{{csrf}}</b> {{user}}\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("login.html:2:19: unknown placeholder {{user}}"),
            "{text}"
        );
        let err = template("é{{nope}}{{csrf}}").unwrap_err().to_string();
        assert!(err.starts_with("login.html:1:2: "), "{err}");
    }

    #[test]
    fn unclosed_placeholder_is_an_error() {
        let err = template("{{csrf}}\n\n x {{action").unwrap_err().to_string();
        assert!(
            err.starts_with("login.html:3:4: unclosed placeholder"),
            "{err}"
        );
    }

    #[test]
    fn template_without_csrf_is_an_error() {
        let err = template("<form>{{action}}</form>").unwrap_err().to_string();
        assert!(err.contains("no {{csrf}} placeholder"), "{err}");
    }
}
