//! Users and groups from /etc/passwd and /etc/group, parsed directly: the binaries are
//! static, so there is no NSS to ask.

use std::path::PathBuf;

use crate::error::CheckError;
use crate::files::{self, Follow};
use crate::seam::{self, Seam};

/// The passwd file: /etc/passwd (a test build may name another, see [`crate::seam`]).
pub fn passwd_path() -> PathBuf {
    seam::var(Seam::Passwd).map_or_else(|| PathBuf::from("/etc/passwd"), PathBuf::from)
}

/// The group file: /etc/group (a test build may name another, see [`crate::seam`]).
pub fn group_path() -> PathBuf {
    seam::var(Seam::Group).map_or_else(|| PathBuf::from("/etc/group"), PathBuf::from)
}

/// Reads and parses the passwd file (a bounded read of a regular file).
pub fn read_passwd() -> Result<Vec<PasswdEntry>, CheckError> {
    let path = passwd_path();
    files::read_regular_text(&path, files::max::ACCOUNTS, Follow::Always).map(|t| parse_passwd(&t))
}

/// Reads and parses the group file (a bounded read of a regular file).
pub fn read_group() -> Result<Vec<GroupEntry>, CheckError> {
    let path = group_path();
    files::read_regular_text(&path, files::max::ACCOUNTS, Follow::Always).map(|t| parse_group(&t))
}

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

/// Parses /etc/passwd (`name:x:uid:gid:gecos:home:shell`); malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first().filter(|n| !n.is_empty())?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// Parses /etc/group (`name:x:gid:member,member`); malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first().filter(|n| !n.is_empty())?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_files_parse_and_skip_what_is_malformed() {
        let p = parse_passwd("root:x:0:0:root:/root:/bin/bash\nalice:x:1500:1500:Alice,,,:/home/alice:/bin/bash\nbroken line\n+nis\n");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].name.as_str(), p[1].uid, p[1].gid),
            ("alice", 1500, 1500)
        );
        let g = parse_group("root:x:0:\nsudo:x:27: bob , alice\nbad\n");
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].members, ["bob", "alice"]);
    }
}
