//! Which script a request path names on the FastCGI server, and the path
//! info after it.
//!
//! The server's file system is not ours, so nothing is looked up: much as
//! with nginx's `root` and `fastcgi_split_path_info ^(.+\.php)(/.+)$`, the
//! script is the path up to the first segment ending in `.php` that has
//! more path after it, and `SCRIPT_FILENAME` is `root` + that path (the
//! whole request path, the route's prefix included). Unlike nginx's greedy
//! pattern, the first such segment wins (`/a.php/b.php` runs `a.php`), as
//! Apache's walk to the first existing file would. A path ending in `/`
//! runs the route's index script in that directory.
//!
//! The path is percent-decoded one segment at a time; a segment that is
//! `.` or `..` in any spelling, or that decodes to a `/`, a backslash or a
//! NUL, is refused, so that no script outside `root` can be named.

use percent_encoding::percent_decode_str;

/// The script a path names, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScriptPath {
    /// `SCRIPT_NAME`: the URL path of the script.
    pub script_name: Vec<u8>,
    /// `PATH_INFO`: the rest of the path, maybe empty.
    pub path_info: Vec<u8>,
}

/// Splits the raw (still percent-encoded) request `path`; `None` for a
/// path that could name something outside the root.
pub(super) fn split(path: &str, index: &str) -> Option<ScriptPath> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<Vec<u8>> = rest
        .split('/')
        .map(|raw| {
            let decoded: Vec<u8> = percent_decode_str(raw).collect();
            let dot_segment = decoded == b"." || decoded == b"..";
            let separator = decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0));
            (!dot_segment && !separator).then_some(decoded)
        })
        .collect::<Option<_>>()?;
    let last = segments.len() - 1;
    let script_end = segments[..last]
        .iter()
        .position(|segment| segment.ends_with(b".php"))
        .unwrap_or(last);
    let join = |segments: &[Vec<u8>]| -> Vec<u8> {
        segments
            .iter()
            .flat_map(|s| [&b"/"[..], s])
            .flatten()
            .copied()
            .collect()
    };
    let mut script_name = join(&segments[..=script_end]);
    let path_info = join(&segments[script_end + 1..]);
    if script_name.ends_with(b"/") {
        script_name.extend_from_slice(index.as_bytes());
    }
    Some(ScriptPath {
        script_name,
        path_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Option<(String, String)> {
        let p = split(path, "index.php")?;
        Some((
            String::from_utf8(p.script_name).unwrap(),
            String::from_utf8(p.path_info).unwrap(),
        ))
    }

    fn pair(script: &str, info: &str) -> Option<(String, String)> {
        Some((script.to_owned(), info.to_owned()))
    }

    #[test]
    fn path_info_follows_the_first_php_segment() {
        assert_eq!(parts("/app/page.php"), pair("/app/page.php", ""));
        assert_eq!(
            parts("/app/page.php/extra"),
            pair("/app/page.php", "/extra")
        );
        assert_eq!(parts("/a.php/b.php/c"), pair("/a.php", "/b.php/c"));
        assert_eq!(parts("/app/page.php/"), pair("/app/page.php", "/"));
        assert_eq!(parts("/style.css"), pair("/style.css", ""));
        assert_eq!(parts("/dir.php.d/x.php"), pair("/dir.php.d/x.php", ""));
    }

    #[test]
    fn directories_run_their_index() {
        assert_eq!(parts("/"), pair("/index.php", ""));
        assert_eq!(parts("/app/"), pair("/app/index.php", ""));
        assert_eq!(parts("/app"), pair("/app", ""));
    }

    #[test]
    fn segments_are_decoded_and_checked() {
        assert_eq!(parts("/a%20b.php/c%2Bd"), pair("/a b.php", "/c+d"));
        for bad in [
            "/a/../b.php",
            "/%2e%2e/b.php",
            "/a%2Fb.php",
            "/a%5Cb.php",
            "/a%00.php",
            "x.php",
        ] {
            assert_eq!(parts(bad), None, "{bad}");
        }
    }
}
