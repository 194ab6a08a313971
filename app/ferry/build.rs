//! Stamps the git commit into the binary, for `ferry --version` (env `FERRY_GIT_COMMIT`).
//!
//! Where the commit comes from, first found wins:
//! 1. `FERRY_GIT_COMMIT` in the build environment (packagers building from a tarball set it);
//! 2. `git rev-parse --short HEAD`, when this crate sits in a git checkout of Ferry itself (not
//!    when Ferry's sources are vendored inside some other repository);
//! 3. `unknown`.
//!
//! Cargo reruns this script only when the commit can have changed: when `HEAD`, the branch it
//! points at or `packed-refs` change, or when `FERRY_GIT_COMMIT` does. A new commit therefore
//! rebuilds the `ferry` crate once; editing files rebuilds nothing more than it would anyway.
//! This script reads no Ferry source code.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FERRY_GIT_COMMIT");
    let commit = std::env::var("FERRY_GIT_COMMIT")
        .ok()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FERRY_GIT_COMMIT={commit}");
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
}

/// `git ARGS` in this crate's folder; `None` when git is missing, fails or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The short commit of Ferry's own checkout, registering the files whose change means a new one.
fn git_commit() -> Option<String> {
    // The workspace root is two levels up (app/ferry); it must be the checkout's top level.
    let toplevel = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let workspace = manifest_dir().join("../..");
    if toplevel.canonicalize().ok()? != workspace.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // `--git-path` resolves each file in the right place, also in a `git worktree`, where HEAD
    // is per worktree and branches live in the common folder.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = absolute(Path::new(&path));
            // A path that does not exist would make cargo rerun the script on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

/// git prints paths relative to the folder it ran in (this crate's) unless they are absolute.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        manifest_dir().join(path)
    }
}
