//! A private user for tests and benchmarks that run the real `ferry`: its own HOME, XDG
//! folders and profile folder, so its instance, socket, log and profiles are its own.

use std::path::Path;
use std::process::Stdio;

/// The folders a private user under `root` needs.
pub const FOLDERS: [&str; 5] = ["home", "run", "state", "cache", "config"];

/// Creates the private user's folders under `root`.
pub fn create(root: &Path) -> std::io::Result<()> {
    for sub in FOLDERS {
        std::fs::create_dir_all(root.join(sub))?;
    }
    Ok(())
}

/// `bin ARGS` as the private user under `root`, with nothing from the caller's environment
/// but `PATH` and the session bus (the tray and notifications live there), stdout and stderr
/// piped, killed when dropped.
pub fn command(
    root: &Path,
    kubeconfig: &Path,
    display: Option<&str>,
    bin: &Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root.join("home"))
        .env("XDG_RUNTIME_DIR", root.join("run"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("FERRY_CONFIG_DIR", root.join("config"))
        .env("KUBECONFIG", kubeconfig)
        .envs(display.map(|d| ("DISPLAY", d)))
        .envs(std::env::var_os("DBUS_SESSION_BUS_ADDRESS").map(|a| ("DBUS_SESSION_BUS_ADDRESS", a)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}
