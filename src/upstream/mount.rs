//! Where a route's directory is mounted in the URL space: the CGI gateway
//! and the static files both serve DIR at the route's path up to its last
//! `/`, as nginx's `alias` would.

/// Where a directory is served for a route: the route path up to and
/// including its last `/`.
///
/// `/` and `/cgi-bin/` serve DIR at themselves. A route path that does not
/// end in `/` names something inside the directory its parent path serves:
/// a route `/members.cgi` (to give one script a stricter access level) runs
/// DIR/members.cgi, and `/cgi-bin/admin` runs scripts from DIR/admin/.
pub fn mount_point(route_prefix: &str) -> &str {
    match route_prefix.rfind('/') {
        Some(last) => &route_prefix[..=last],
        None => "/",
    }
}

/// The part of `path` below the mount point of `route_prefix`, or `None`
/// when the path is not there. The mount point without its trailing slash
/// (`/cgi-bin`) is the directory itself.
pub fn path_in_mount<'a>(path: &'a str, route_prefix: &str) -> Option<&'a str> {
    let mount = mount_point(route_prefix);
    path.strip_prefix(mount)
        .or_else(|| (path == mount.trim_end_matches('/')).then_some(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_served_at_the_route_path_up_to_its_last_slash() {
        assert_eq!(mount_point("/"), "/");
        assert_eq!(mount_point("/cgi-bin/"), "/cgi-bin/");
        assert_eq!(mount_point("/members.cgi"), "/");
        assert_eq!(mount_point("/cgi-bin/admin"), "/cgi-bin/");
        assert_eq!(path_in_mount("/x.cgi", "/"), Some("x.cgi"));
        assert_eq!(path_in_mount("/", "/"), Some(""));
        assert_eq!(path_in_mount("/cgi-bin/a", "/cgi-bin/"), Some("a"));
        assert_eq!(path_in_mount("/cgi-bin", "/cgi-bin/"), Some(""));
        assert_eq!(
            path_in_mount("/members.cgi/x", "/members.cgi"),
            Some("members.cgi/x")
        );
        assert_eq!(
            path_in_mount("/cgi-bin/admin/a", "/cgi-bin/admin"),
            Some("admin/a")
        );
        assert_eq!(path_in_mount("/other/a", "/cgi-bin/"), None);
    }
}
