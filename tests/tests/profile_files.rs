//! The profile file is never lost or cut off by the `ferry profile …` commands: an export onto
//! the store (or any existing file without `--force`) is refused, restoring the backup never
//! overwrites an earlier kept copy, and a symlinked `profiles.toml` stays a symlink.
//!
//! Runs the real `ferry` binary on a private config directory (`cargo build -p ferry` first).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_e2e::ferry_bin;

/// Runs `ferry ARGS` with `config` as its config dir and no kubeconfig.
pub fn ferry(config: &Path, args: &[&str]) -> Output {
    Command::new(ferry_bin())
        .args(args)
        .env("FERRY_CONFIG_DIR", config)
        .env("KUBECONFIG", config.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn add(config: &Path, profile: &str, target: &str, port: &str) {
    let out = ferry(
        config,
        &[
            "profile",
            "add",
            profile,
            target,
            port,
            "--context",
            "kind-dev",
            "-n",
            "backend",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn export_onto_the_profile_store_is_refused_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    add(&config, "one", "svc/api", "8080:80");
    add(&config, "two", "svc/web", "8081:80");
    add(&config, "two", "svc/db", "5432");
    let store = config.join("profiles.toml");
    let before = std::fs::read(&store).unwrap();

    // The store itself, by its path, through `..`, and through a symbolic link.
    let via_dotdot = config.join("..").join("config").join("profiles.toml");
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&store, &link).unwrap();
    for output in [&store, &via_dotdot, &link] {
        let out = ferry(
            &config,
            &["profile", "export", "one", "-o", output.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Ferry's own profile file") && err.contains("replace all saved profiles"),
            "{}",
            text(&out)
        );
        // Not even --force writes there.
        let out = ferry(
            &config,
            &[
                "profile",
                "export",
                "one",
                "-o",
                output.to_str().unwrap(),
                "--force",
            ],
        );
        assert!(!out.status.success(), "{}", text(&out));
        assert_eq!(
            std::fs::read(&store).unwrap(),
            before,
            "the store is unchanged"
        );
    }
    // The backup is the store's too.
    let bak = config.join("profiles.toml.bak");
    let bak_before = std::fs::read(&bak).unwrap();
    let out = ferry(
        &config,
        &[
            "profile",
            "export",
            "one",
            "-o",
            bak.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&bak).unwrap(), bak_before);
    let out = ferry(&config, &["profile", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("one  (1 tunnel)") && listed.contains("two  (2 tunnels)"),
        "{}",
        text(&out)
    );
}

#[test]
fn export_onto_an_existing_file_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    add(&config, "one", "svc/api", "8080:80");
    let existing = dir.path().join("notes.txt");
    std::fs::write(&existing, "my notes\n").unwrap();
    let out = ferry(
        &config,
        &["profile", "export", "one", "-o", existing.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists; use --force"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "my notes\n");

    let out = ferry(
        &config,
        &[
            "profile",
            "export",
            "one",
            "-o",
            existing.to_str().unwrap(),
            "--force",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(&existing)
            .unwrap()
            .contains("svc/api")
    );

    let fresh = dir.path().join("fresh.toml");
    let out = ferry(
        &config,
        &["profile", "export", "one", "-o", fresh.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    // What was exported imports into an empty config.
    let other = dir.path().join("other");
    let out = ferry(&other, &["profile", "import", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `profiles.toml.broken-<UTC time>` as the store names kept copies.
fn stamp(at: std::time::SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(at).unwrap();
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn broken_copies(config: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(config)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("profiles.toml.broken-"))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn restoring_the_backup_twice_in_one_second_keeps_every_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    add(&config, "one", "svc/api", "8080:80");
    add(&config, "two", "svc/web", "8081:80");
    let store = config.join("profiles.toml");

    // Copies kept earlier in this second and the next few already exist: whatever second the
    // restores below run in, a name clash happens and must not overwrite a copy.
    let now = std::time::SystemTime::now();
    let mut planted = Vec::new();
    for s in 0..5 {
        let path = config.join(format!(
            "profiles.toml.broken-{}",
            stamp(now + std::time::Duration::from_secs(s))
        ));
        let body = format!("# kept copy {s}\n");
        std::fs::write(&path, &body).unwrap();
        planted.push((path, body));
    }

    std::fs::write(&store, "version = 1\n[[profile]\nbroken one\n").unwrap();
    let out = ferry(&config, &["profile", "restore-backup"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(&store, "version = 1\n[[profile]\nbroken two\n").unwrap();
    let out = ferry(&config, &["profile", "restore-backup"]);
    assert!(out.status.success(), "{}", text(&out));

    for (path, body) in &planted {
        assert_eq!(
            &std::fs::read_to_string(path).unwrap(),
            body,
            "{} was overwritten",
            path.display()
        );
    }
    let copies: Vec<String> = broken_copies(&config)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(copies.len(), planted.len() + 2, "{copies:#?}");
    assert!(
        copies.iter().any(|c| c.contains("broken one")),
        "{copies:#?}"
    );
    assert!(
        copies.iter().any(|c| c.contains("broken two")),
        "{copies:#?}"
    );
}

#[test]
fn a_symlinked_profile_file_stays_a_symlink_and_receives_the_changes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let dotfiles = dir.path().join("dotfiles");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("ferry-profiles.toml");
    std::fs::write(&target, "version = 1\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = config.join("profiles.toml");
    // A relative link, as dotfile managers make them.
    std::os::unix::fs::symlink("../dotfiles/ferry-profiles.toml", &link).unwrap();

    add(&config, "one", "svc/api", "8080:80");
    add(&config, "one", "svc/db", "5432");
    let out = ferry(&config, &["profile", "rm", "one"]);
    assert!(out.status.success(), "{}", text(&out));
    add(&config, "two", "svc/web", "8081:80");

    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "profiles.toml is still a link"
    );
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(
        written.contains("svc/web") && !written.contains("svc/api"),
        "{written}"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the target keeps mode 0600");
    // No temporary files left in either folder.
    for folder in [&config, &dotfiles] {
        let leftovers: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    // Restoring the backup writes through the link too.
    let out = ferry(&config, &["profile", "restore-backup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let restored = std::fs::read_to_string(&target).unwrap();
    assert!(!restored.contains("svc/web"), "{restored}");
}
