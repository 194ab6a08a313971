//! The app's settings (`settings.toml` beside the profiles): what closing the window does,
//! notifications, launch at login. A missing file means the defaults; a file that does not
//! parse is reported with its line and column and never overwritten (the defaults are used
//! until it is fixed). Written atomically, mode 0600, like the profile file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the config folder.
pub const FILE_NAME: &str = "settings.toml";

/// Every setting, with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Settings {
    /// Closing the window keeps running tunnels forwarding (in the tray); off: closing the
    /// window quits Ferry.
    pub keep_running_when_closed: bool,
    /// Notify when a tunnel fails or recovers.
    pub notifications: bool,
    /// Start `ferry daemon` (in the tray) when the user logs in.
    pub launch_at_login: bool,
    /// The user was told once, by a notification, that Ferry went on in the tray.
    pub told_about_tray: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            keep_running_when_closed: true,
            notifications: true,
            launch_at_login: false,
            told_about_tray: false,
        }
    }
}

/// Why the settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "{path}: {message}; Ferry uses the default settings and will not change the file until it is fixed"
    )]
    Parse { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    ConfigDir(#[from] crate::config_dir::ConfigDirError),
}

/// The settings file in the user's config folder (or `$FERRY_CONFIG_DIR`).
pub fn default_path() -> Result<PathBuf, SettingsError> {
    Ok(crate::config_dir::config_dir()?.join(FILE_NAME))
}

/// Reads the settings at `path`; a missing file is the defaults.
pub fn load(path: &Path) -> Result<Settings, SettingsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(source) => {
            return Err(SettingsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|e| SettingsError::Parse {
        path: path.to_path_buf(),
        message: parse_message(&text, &e),
    })
}

/// Writes `settings` to `path`, unless the file there does not parse (it would be lost).
pub fn save(path: &Path, settings: &Settings) -> Result<(), SettingsError> {
    if let Err(e @ SettingsError::Parse { .. }) = load(path) {
        return Err(e);
    }
    let text = toml::to_string_pretty(settings).map_err(|e| SettingsError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    crate::profiles::write_atomic(path, text.as_bytes()).map_err(|source| SettingsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// "line 3, column 7: expected `=`".
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_means_defaults_and_a_saved_file_reads_back_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(load(&path).unwrap(), Settings::default());
        let changed = Settings {
            notifications: false,
            launch_at_login: true,
            ..Settings::default()
        };
        save(&path, &changed).unwrap();
        assert_eq!(load(&path).unwrap(), changed);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_file_is_named_with_its_line_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let broken = "notifications = true\nlaunch-at-login = maybe\n";
        std::fs::write(&path, broken).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(save(&path, &Settings::default()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    }
}
