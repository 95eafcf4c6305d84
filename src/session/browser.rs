//! A short description of a browser ("Firefox on Linux") from its
//! `User-Agent`, kept with a signed-in session so that its user can tell
//! their sessions apart on the sessions page.
//!
//! Only a handful of well-known families and systems are recognised, by
//! the tokens their agents have carried for years; anything else is named
//! by its first product token ("Lynx", "curl"). The description is all
//! that is kept, never the whole header: it is short, holds only
//! characters of the header's own tokens, and is capped at
//! [`MAX_BROWSER_BYTES`]. It is a hint for the user, not an identity:
//! any client may send any `User-Agent`.

use http::HeaderValue;

/// The most bytes a description holds (the stores keep no more).
pub const MAX_BROWSER_BYTES: usize = 48;

/// How long a product token named as the family may be.
const MAX_PRODUCT_CHARS: usize = 24;

/// Browser families, first match wins: those whose agents also carry the
/// tokens of others (Edge and Opera say "Chrome", Chrome says "Safari")
/// come first.
const FAMILIES: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("Edge/", "Edge"),
    ("OPR/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Trident/", "Internet Explorer"),
    ("MSIE ", "Internet Explorer"),
    ("Safari/", "Safari"),
];

/// Operating systems, first match wins: iOS and Android agents also say
/// "Mac OS X" and "Linux".
const SYSTEMS: &[(&str, &str)] = &[
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("iPod", "iOS"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("FreeBSD", "FreeBSD"),
    ("OpenBSD", "OpenBSD"),
    ("Linux", "Linux"),
    ("X11", "Unix"),
];

/// Describes the browser a `User-Agent` header names; `None` when there is
/// none, or nothing in it to describe.
pub fn describe_header(user_agent: Option<&HeaderValue>) -> Option<String> {
    let text = String::from_utf8_lossy(user_agent?.as_bytes());
    describe(&text)
}

/// Describes the browser `user_agent` names: "Family on System", "Family",
/// or `None` when nothing in it is recognisable.
pub fn describe(user_agent: &str) -> Option<String> {
    let family = FAMILIES
        .iter()
        .find(|(token, _)| user_agent.contains(token))
        .map(|(_, name)| (*name).to_owned())
        .or_else(|| first_product(user_agent))?;
    let system = SYSTEMS
        .iter()
        .find(|(token, _)| user_agent.contains(token))
        .map(|(_, name)| *name);
    let mut text = match system {
        Some(system) => format!("{family} on {system}"),
        None => family,
    };
    cap(&mut text);
    Some(text)
}

/// The name of the agent's first product token (`Lynx` of
/// `Lynx/2.8.9rel.1`), when it is a plain name.
fn first_product(user_agent: &str) -> Option<String> {
    let token = user_agent.split(['/', ' ']).next()?.trim();
    let plain = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (plain && !token.is_empty() && token.len() <= MAX_PRODUCT_CHARS).then(|| token.to_owned())
}

/// Cuts `text` to [`MAX_BROWSER_BYTES`], on a character boundary.
pub fn cap(text: &mut String) {
    let keep = capped(text).len();
    text.truncate(keep);
}

/// The first [`MAX_BROWSER_BYTES`] of `text`, on a character boundary:
/// what a store keeps of a description, whoever made it.
pub fn capped(text: &str) -> &str {
    if text.len() <= MAX_BROWSER_BYTES {
        return text;
    }
    let mut end = MAX_BROWSER_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_agents_are_named_by_family_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0",
                "Opera on Linux",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
                "Headless Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            ("curl/8.8.0", "curl"),
            ("Lynx/2.8.9rel.1 libwww-FM/2.14", "Lynx"),
        ];
        for (ua, want) in cases {
            assert_eq!(describe(ua).as_deref(), Some(want), "{ua}");
        }
    }

    #[test]
    fn nothing_recognisable_is_none() {
        for ua in [
            "",
            " ",
            "<script>alert(1)</script>",
            "a".repeat(200).as_str(),
        ] {
            assert_eq!(describe(ua), None, "{ua:?}");
        }
        assert_eq!(describe_header(None), None);
    }

    #[test]
    fn descriptions_are_capped_on_a_character_boundary() {
        let mut long = "é".repeat(40);
        cap(&mut long);
        assert!(long.len() <= MAX_BROWSER_BYTES);
        assert!(long.chars().all(|c| c == 'é'));
        for (_, family) in FAMILIES {
            for (_, system) in SYSTEMS {
                assert!(format!("{family} on {system}").len() <= MAX_BROWSER_BYTES);
            }
        }
    }
}
