//! Where the contract tests find the plugins: every directory under `plugins/` is one
//! binary of the same name, built into the same target directory as the tests.
// Test support: each helper panics, by design, when the build or the machine is not as the
// tests need (a missing binary, an unreadable plugins/ directory) (6 hits).
#![allow(clippy::missing_panics_doc)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The plugin binaries' names, from the `plugins/` directory (only those named in
/// `PROCGUARD_ONLY`, comma-separated, when set: for working on one plugin).
pub fn plugin_names() -> Vec<String> {
    let only = std::env::var("PROCGUARD_ONLY").ok();
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("plugins"))
        .expect("plugins/ directory")
        .filter_map(std::result::Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == n)))
        .collect();
    names.sort();
    names
}

/// The built binary of a plugin: `$PROCGUARD_BIN_DIR/NAME`, else next to the test
/// executable's directory (`target/<profile>/`).
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("PROCGUARD_BIN_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(Path::parent)
                .expect("target/<profile>")
                .to_path_buf()
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` first (tests/run does)",
        path.display()
    );
    path
}

/// The NAME each plugin prints first on line 1.
pub fn output_name(plugin: &str) -> &'static str {
    match plugin {
        "check_fd_usage" => "FD_USAGE",
        "check_rlimit_match" => "RLIMIT",
        "check_restart_churn" => "RESTART_CHURN",
        "check_http_backlog" => "HTTP_BACKLOG",
        other => panic!("add {other}'s output name to output_name()"),
    }
}

pub mod generate;

/// A process a test started, killed and reaped when the test ends, also when it fails
/// half-way (an assertion panics before any cleanup code would run).
pub struct Started(pub std::process::Child);

impl Started {
    /// Its PID, as a plugin argument.
    #[must_use]
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
