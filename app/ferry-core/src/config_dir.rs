//! Where Ferry keeps its files. One function, so the store, the CLI and the GUI agree on it and
//! tests or portable installs can point everything elsewhere with `FERRY_CONFIG_DIR`.

use std::path::PathBuf;

/// The environment variable that overrides the config directory (tests, portable installs).
pub const ENV_VAR: &str = "FERRY_CONFIG_DIR";

/// Why no config directory could be found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDirError {
    #[error(
        "cannot find a config directory (no home directory is known); set {ENV_VAR} to a folder Ferry may use"
    )]
    NoHome,
    #[error("cannot create the config directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The config directory: `$FERRY_CONFIG_DIR` when set and not empty, else the platform's
/// per-user config folder (`~/.config/ferry` on Linux). Created (mode 0700 on Unix) if missing,
/// because profile files hold names of clusters and services that are nobody else's business.
pub fn config_dir() -> Result<PathBuf, ConfigDirError> {
    let dir = match std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => directories::ProjectDirs::from("dev", "ferry", "Ferry")
            .ok_or(ConfigDirError::NoHome)?
            .config_dir()
            .to_path_buf(),
    };
    create_private_dir(&dir).map_err(|source| ConfigDirError::Create {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// Creates `dir` (and parents) readable by the user only, on Unix. Existing folders are left as
/// they are.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
