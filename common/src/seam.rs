//! Test seams: the few things a test must replace (the `systemctl` program, the passwd
//! and group files, sock_diag, whether systemd runs), reachable only in builds with the
//! `testing` feature.
//!
//! They used to be hidden command-line options, and so shipped in the release binaries:
//! `sudo check_rlimit_match --systemctl /tmp/evil ...` ran any program as root. Now a
//! release build has no such option and ignores these variables: [`var`] is always `None`
//! unless procguard-common is compiled with `testing`, which only the plugins' dev-
//! dependencies and the contract tests enable (never `packaging/build`).
//!
//! | variable | replaces |
//! |---|---|
//! | `PROCGUARD_TEST_SYSTEMCTL` | the `systemctl` program |
//! | `PROCGUARD_TEST_SYSTEMD_DIR` | `/run/systemd/system`, whose presence means systemd runs |
//! | `PROCGUARD_TEST_PASSWD`, `PROCGUARD_TEST_GROUP` | `/etc/passwd`, `/etc/group` |
//! | `PROCGUARD_TEST_NO_SOCK_DIAG` | (set) check_http_backlog reads /proc/net/tcp instead of sock_diag |

use std::ffi::OsString;

/// The seams. The variables' names exist only in `testing` builds, so `packaging/build` can
/// check that a release binary holds none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seam {
    /// `PROCGUARD_TEST_SYSTEMCTL`.
    Systemctl,
    /// `PROCGUARD_TEST_SYSTEMD_DIR`.
    SystemdDir,
    /// `PROCGUARD_TEST_PASSWD`.
    Passwd,
    /// `PROCGUARD_TEST_GROUP`.
    Group,
    /// `PROCGUARD_TEST_NO_SOCK_DIAG`.
    NoSockDiag,
}

/// The value of a test seam: its environment variable in a `testing` build.
#[cfg(feature = "testing")]
pub fn var(seam: Seam) -> Option<OsString> {
    std::env::var_os(match seam {
        Seam::Systemctl => "PROCGUARD_TEST_SYSTEMCTL",
        Seam::SystemdDir => "PROCGUARD_TEST_SYSTEMD_DIR",
        Seam::Passwd => "PROCGUARD_TEST_PASSWD",
        Seam::Group => "PROCGUARD_TEST_GROUP",
        Seam::NoSockDiag => "PROCGUARD_TEST_NO_SOCK_DIAG",
    })
}

/// The value of a test seam: always `None`, this is not a `testing` build.
#[cfg(not(feature = "testing"))]
pub fn var(_seam: Seam) -> Option<OsString> {
    None
}
