//! `ferry --version` names the commit the binary was built from.

use std::process::Command;

#[test]
fn version_prints_the_package_version_and_the_git_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("--version")
        .output()
        .expect("ferry runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    // What build.rs should have found: the checkout's commit when git works here (tests/run
    // runs in a checkout), else the FERRY_GIT_COMMIT the build was given, else "unknown".
    let expected = std::env::var("FERRY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let git = Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .ok()?;
            git.status
                .success()
                .then(|| String::from_utf8_lossy(&git.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        text.trim(),
        format!("ferry {} (commit {expected})", env!("CARGO_PKG_VERSION"))
    );
}
