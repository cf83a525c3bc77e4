//! Writes the files generated from the plugins' clap definitions (man pages, bash and zsh
//! completions, Icinga 2 CheckCommands) below the workspace root, or below DIR.
//!
//!     cargo run -p procguard-contract-tests --bin procguard-gen [-- DIR]
//!     cargo run -p procguard-contract-tests --bin procguard-gen -- --check
//!
//! `--check` writes nothing and exits 1 when a committed file differs.

use std::path::PathBuf;
use std::process::ExitCode;

use procguard_contract_tests::{generate, workspace_root};

fn main() -> ExitCode {
    let mut check = false;
    let mut root = workspace_root();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: procguard-gen [--check] [DIR]");
                return ExitCode::SUCCESS;
            }
            dir => root = PathBuf::from(dir),
        }
    }
    let mut stale = 0;
    for file in generate::all() {
        let path = root.join(&file.path);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(file.content.as_str()) {
            continue;
        }
        if check {
            eprintln!("{} is out of date", file.path);
            stale += 1;
            continue;
        }
        if let Some(dir) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("procguard-gen: {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = std::fs::write(&path, &file.content) {
            eprintln!("procguard-gen: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if stale > 0 {
        eprintln!(
            "run `cargo run -p procguard-contract-tests --bin procguard-gen` and commit the result"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
