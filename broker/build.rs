//! Stamps the binary with the git commit it is built from, for
//! `brook_build_info` and `DescribeCluster`: `BROOK_COMMIT` from the
//! environment when set (a container build has no `.git`), else
//! `git rev-parse`, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BROOK_COMMIT");
    let commit = std::env::var("BROOK_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BROOK_COMMIT={}", commit.trim());
}

/// The short hash of HEAD; rebuilt when HEAD moves (a checkout, or a commit
/// on the branch HEAD names).
fn git_commit() -> Option<String> {
    let git = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.join(".git");
    let head = git.join("HEAD");
    if !head.is_file() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", head.display());
    if let Ok(text) = std::fs::read_to_string(&head)
        && let Some(branch) = text.trim().strip_prefix("ref: ")
    {
        let reference = git.join(branch);
        if reference.is_file() {
            println!("cargo:rerun-if-changed={}", reference.display());
        }
        println!(
            "cargo:rerun-if-changed={}",
            git.join("packed-refs").display()
        );
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(git.parent()?)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
}
