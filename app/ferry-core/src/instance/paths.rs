//! Where an instance keeps its control socket, its lock and its log.
//!
//! The socket lives in `$XDG_RUNTIME_DIR/ferry/` (a per-user tmpfs the session manager made
//! 0700 and cleans at logout). When `XDG_RUNTIME_DIR` is unset (a cron job, `su` without a
//! login session), a per-user folder under the cache dir is used instead. Either way the
//! folder is created 0700 and the socket is chmod 0600, and the peer's uid is checked on every
//! connection besides.

use std::path::PathBuf;

/// Which instance: the user's real one, or `ferry --demo`'s (its own socket, so trying the
/// demo never disturbs real tunnels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    Real,
    Demo,
}

impl Flavor {
    fn stem(self) -> &'static str {
        match self {
            Flavor::Real => "instance",
            Flavor::Demo => "demo",
        }
    }
}

/// Why no folder for the socket or the log could be found.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error(
        "cannot find a folder for Ferry's control socket: XDG_RUNTIME_DIR is unset and no home directory is known; set XDG_RUNTIME_DIR"
    )]
    NoRuntimeDir,
    #[error("cannot find a folder for Ferry's log file: no home directory is known")]
    NoStateDir,
}

fn project() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "ferry", "Ferry")
}

/// The folder holding sockets and locks (not created here).
pub fn runtime_dir() -> Result<PathBuf, PathError> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("ferry"));
    }
    let cache = project().ok_or(PathError::NoRuntimeDir)?;
    Ok(cache.cache_dir().join("run"))
}

/// The control socket of `flavor`'s instance.
pub fn socket_path(flavor: Flavor) -> Result<PathBuf, PathError> {
    Ok(runtime_dir()?.join(format!("{}.sock", flavor.stem())))
}

/// The lock file that makes the instance single (flock, released by the kernel when the
/// process dies, so a crash never leaves a stale lock).
pub fn lock_path(flavor: Flavor) -> Result<PathBuf, PathError> {
    Ok(runtime_dir()?.join(format!("{}.lock", flavor.stem())))
}

/// The instance's log file: `$XDG_STATE_HOME/ferry/` (`~/.local/state/ferry/`) on Linux, the
/// platform's local data folder elsewhere.
pub fn log_path(flavor: Flavor) -> Result<PathBuf, PathError> {
    let dirs = project().ok_or(PathError::NoStateDir)?;
    let dir = dirs
        .state_dir()
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs.data_local_dir().to_path_buf());
    Ok(dir.join(format!("{}.log", flavor.stem())))
}
