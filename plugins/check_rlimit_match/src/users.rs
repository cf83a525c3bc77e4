//! Who a process runs as, in the terms pam_limits uses: the user name and primary group
//! from /etc/passwd, the group names and memberships from /etc/group. The files are parsed
//! directly (no NSS: the binaries are static); the process's own supplementary groups from
//! /proc/PID/status are added, so a group it was given at start counts too.

use crate::limits_conf::{Group, Identity};
pub use procguard_common::accounts::{GroupEntry, PasswdEntry};

/// The identity pam_limits would see for a process running as `uid` (effective) with
/// effective gid `egid` and supplementary groups `process_groups`.
///
/// The primary gid is the passwd entry's (as pam_limits uses it), else `egid`. Groups are
/// the primary one, every /etc/group entry listing the user, and the process's own.
pub fn identity(
    uid: u32,
    egid: u32,
    process_groups: &[u32],
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Identity {
    let entry = passwd.iter().find(|p| p.uid == uid);
    let user = entry.map(|p| p.name.clone());
    let gid = entry.map_or(egid, |p| p.gid);
    let mut gids = vec![gid];
    if let Some(name) = &user {
        gids.extend(
            groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| g.gid),
        );
    }
    gids.push(egid);
    gids.extend_from_slice(process_groups);
    let mut seen = Vec::new();
    let groups = gids
        .into_iter()
        .filter(|g| {
            let new = !seen.contains(g);
            seen.push(*g);
            new
        })
        .map(|gid| Group {
            gid,
            name: groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone()),
        })
        .collect();
    Identity {
        user,
        uid,
        gid,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procguard_common::accounts::{parse_group, parse_passwd};

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1500:1500:Alice,,,:/home/alice:/bin/bash\nbroken line\n+nis\n";
    const GROUP: &str =
        "root:x:0:\nusers:x:100:alice,bob\nalice:x:1500:\ndocker:x:999:\nsudo:x:27: bob , alice\n";

    #[test]
    fn files_parse_and_identity_collects_groups() {
        let p = parse_passwd(PASSWD);
        assert_eq!(p.len(), 2);
        let g = parse_group(GROUP);
        assert_eq!(g[4].members, ["bob", "alice"]);
        let who = identity(1500, 1500, &[999], &p, &g);
        assert_eq!(who.user.as_deref(), Some("alice"));
        assert_eq!(who.gid, 1500);
        let names: Vec<_> = who
            .groups
            .iter()
            .map(|g| g.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["alice", "users", "sudo", "docker"]);
        let nobody = identity(4242, 4242, &[], &p, &g);
        assert_eq!(nobody.user, None);
        assert_eq!(nobody.groups[0].name, None);
    }
}
