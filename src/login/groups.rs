//! Groups: the groups file (`login.groups_file`, Apache's AuthGroupFile
//! format) and the names a backend may give with `X-Session-Groups`.
//!
//! ```text
//! # Comments and blank lines are allowed.
//! admins: alice bob
//! staff: carol alice
//! ```
//!
//! As in Apache, a group named on several lines has the members of all of
//! them. The file is re-read when it changes ([`GroupsSource`]), and every
//! request asks the file in force, so an edit applies to sessions already
//! open.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::watched::{Parsed, Watched};

/// The most groups a backend may give one session.
pub const MAX_SESSION_GROUPS: usize = 64;
/// The longest group name, in bytes.
pub const MAX_GROUP_LEN: usize = 128;

/// The groups file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the groups file: {source}", path.display())]
    Read {
        /// The groups file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A line of the file is wrong.
    #[error("{}:{line}:1: {message}", path.display())]
    Malformed {
        /// The groups file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
}

/// The parsed groups file: each user's groups, and each group's size.
#[derive(Debug, Clone, Default)]
pub struct GroupsFile {
    of_user: HashMap<String, Vec<Arc<str>>>,
    members: BTreeMap<Arc<str>, usize>,
}

impl GroupsFile {
    /// Parses the text of a groups file; `path_for_messages` only names the
    /// file in errors.
    pub fn parse(path_for_messages: &Path, text: &str) -> Result<Self, GroupsError> {
        let mut file = GroupsFile::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let malformed = |message: String| GroupsError::Malformed {
                path: path_for_messages.to_owned(),
                line: index + 1,
                message,
            };
            let Some((group, users)) = trimmed.split_once(':') else {
                return Err(malformed(
                    "expected group: user user ... (no colon found)".into(),
                ));
            };
            let group = group.trim();
            if let Err(why) = check_group_name(group) {
                return Err(malformed(why));
            }
            let group: Arc<str> = Arc::from(group);
            let count = file.members.entry(group.clone()).or_insert(0);
            for user in users.split_whitespace() {
                let groups = file.of_user.entry(user.to_owned()).or_default();
                if !groups.contains(&group) {
                    groups.push(group.clone());
                    *count += 1;
                }
            }
        }
        for groups in file.of_user.values_mut() {
            groups.sort_unstable();
        }
        Ok(file)
    }

    /// The groups `user` is in, sorted.
    pub fn groups_of(&self, user: &str) -> &[Arc<str>] {
        self.of_user.get(user).map_or(&[], Vec::as_slice)
    }

    /// Whether `user` is in `group`.
    pub fn is_member(&self, user: &str, group: &str) -> bool {
        self.groups_of(user).iter().any(|g| &**g == group)
    }

    /// How many users `group` has (0 for a group the file does not name).
    pub fn size_of(&self, group: &str) -> usize {
        self.members.get(group).copied().unwrap_or(0)
    }

    /// Every group the file names, with its number of members, by name.
    pub fn groups(&self) -> impl Iterator<Item = (&str, usize)> {
        self.members.iter().map(|(g, n)| (&**g, *n))
    }
}

impl Parsed for GroupsFile {
    type Error = GroupsError;

    fn load(path: &Path) -> Result<Self, GroupsError> {
        let text = std::fs::read_to_string(path).map_err(|e| Self::unreadable(path, e))?;
        Self::parse(path, &text)
    }

    fn unreadable(path: &Path, source: io::Error) -> GroupsError {
        GroupsError::Read {
            path: path.to_owned(),
            source,
        }
    }
}

/// The groups file as currently loaded, re-read when it changes.
pub type GroupsSource = Watched<GroupsFile>;

/// A signed-in user's groups, sorted and joined by commas: those the
/// groups file (`file`, when one is in use) gives `user` now, and those the
/// backend gave the session (`session`, joined the same way). `None` when
/// there are none.
pub fn joined(file: Option<&GroupsSource>, user: &str, session: Option<&str>) -> Option<String> {
    let file = file.map(|g| g.peek());
    let mut all: Vec<&str> = file
        .as_ref()
        .map(|f| f.groups_of(user).iter().map(|g| &**g).collect())
        .unwrap_or_default();
    all.extend(session.into_iter().flat_map(|s| s.split(',')));
    all.retain(|g| !g.is_empty());
    if all.is_empty() {
        return None;
    }
    all.sort_unstable();
    all.dedup();
    Some(all.join(","))
}

/// Checks a group name, from the groups file or from a backend: not empty,
/// at most [`MAX_GROUP_LEN`] bytes, without whitespace, control
/// characters, commas (they separate groups in `X-Session-Groups`) or
/// colons (they end the name in the groups file).
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty group name".into());
    }
    if name.len() > MAX_GROUP_LEN {
        return Err(format!("group name longer than {MAX_GROUP_LEN} bytes"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ':'))
    {
        return Err(format!("group name {name:?} contains {bad:?}"));
    }
    Ok(())
}

/// Reads a backend's `X-Session-Groups: a, b`: the names, trimmed, without
/// duplicates, in their order, joined by commas as a session keeps them.
/// An empty value is no groups. Any bad name refuses the whole header.
pub fn parse_session_groups(value: &str) -> Result<String, String> {
    let mut names: Vec<&str> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        check_group_name(name)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.len() > MAX_SESSION_GROUPS {
        return Err(format!("more than {MAX_SESSION_GROUPS} groups"));
    }
    Ok(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GroupsFile, GroupsError> {
        GroupsFile::parse(Path::new("groups"), text)
    }

    #[test]
    fn apache_group_files_parse() {
        let g = parse(
            "\u{feff}# staff\nadmins: alice bob\n\nstaff:carol   alice\r\nempty:\nadmins: dave alice\n",
        )
        .unwrap();
        assert_eq!(
            g.groups_of("alice")
                .iter()
                .map(|g| &**g)
                .collect::<Vec<_>>(),
            ["admins", "staff"]
        );
        assert!(g.is_member("dave", "admins"));
        assert!(!g.is_member("carol", "admins"));
        assert_eq!(g.size_of("admins"), 3);
        assert_eq!(g.size_of("empty"), 0);
        assert_eq!(g.size_of("nobody-knows"), 0);
        assert_eq!(
            g.groups().collect::<Vec<_>>(),
            [("admins", 3), ("empty", 0), ("staff", 2)]
        );
        assert!(g.groups_of("zed").is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse("admins: alice\nno colon here\n").unwrap_err();
        assert!(
            e.to_string().starts_with("groups:2:1: expected group"),
            "{e}"
        );
        let e = parse(": alice\n").unwrap_err();
        assert!(e.to_string().contains("empty group name"), "{e}");
        let e = parse("a,b: alice\n").unwrap_err();
        assert!(e.to_string().contains("','"), "{e}");
    }

    #[test]
    fn backend_groups_are_trimmed_deduplicated_and_checked() {
        assert_eq!(parse_session_groups(" a, b ,a,, c").unwrap(), "a,b,c");
        assert_eq!(parse_session_groups("").unwrap(), "");
        assert!(parse_session_groups("good, bad name").is_err());
        assert!(parse_session_groups("x\u{1}").is_err());
        assert!(parse_session_groups(&"g,".repeat(10)).is_ok());
        let many: Vec<String> = (0..=MAX_SESSION_GROUPS).map(|i| format!("g{i}")).collect();
        assert!(parse_session_groups(&many.join(",")).is_err());
        assert!(parse_session_groups(&"x".repeat(MAX_GROUP_LEN + 1)).is_err());
    }
}
