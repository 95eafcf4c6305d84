//! What a user name may be, wherever it comes from (the login form, a
//! backend's `Login` control header, a users file).

/// Longest user name accepted from `Login`.
pub const MAX_USER_LEN: usize = 256;

/// A user name the proxy accepts: 1 to 256 bytes, no control characters.
pub fn valid_user(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_LEN && !user.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_login_names_are_rejected() {
        assert!(!valid_user(""));
        assert!(!valid_user("a\u{7}b"));
        assert!(!valid_user(&"a".repeat(300)));
        assert!(valid_user("alice@example.org"));
    }
}
