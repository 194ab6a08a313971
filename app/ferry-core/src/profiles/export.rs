//! Exporting profiles to a file a teammate can import. Only profiles are written: clusters (and
//! so tokens) never leave the machine this way.

use std::path::{Path, PathBuf};

use super::atomic::{resolve_links, write_atomic, write_new_atomic};
use super::model::{CURRENT_VERSION, Document, Profile};

/// The TOML text of an export file holding `profiles`.
pub fn export_profiles<'a>(
    profiles: impl IntoIterator<Item = &'a Profile>,
) -> Result<String, toml::ser::Error> {
    let document = Document {
        version: CURRENT_VERSION,
        profiles: profiles.into_iter().cloned().collect(),
        ..Document::default()
    };
    let body = document.to_toml()?;
    Ok(format!(
        "# Ferry profiles. Import with `ferry profile import FILE` or the app's Import button.\n\
         # No secrets are stored in this file.\n\n{body}"
    ))
}

/// Why an export file was not written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output is the profile store (or its backup or lock file): writing the export there
    /// would replace every saved profile with the exported ones.
    #[error(
        "{} is Ferry's own profile file{}; exporting onto it would replace all saved profiles. \
         Choose another file",
        output.display(),
        if output == store { String::new() } else { format!(" ({})", store.display()) }
    )]
    OntoStore { output: PathBuf, store: PathBuf },
    /// The output exists and overwriting was not asked for.
    #[error("{} already exists; use --force to overwrite it, or choose another file", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes export `text` to `output` atomically. Refuses the store's own files (`protected`:
/// the store, its backup and lock, whatever links or hard links lead there), and any other
/// existing file unless `overwrite`. Without `overwrite` the file is created only if nothing
/// exists there at that moment, so a file appearing meanwhile is not replaced either.
pub fn write_export(
    output: &Path,
    text: &str,
    protected: &[PathBuf],
    overwrite: bool,
) -> Result<(), ExportError> {
    if let Some(store) = protected.iter().find(|p| same_file(output, p)) {
        return Err(ExportError::OntoStore {
            output: output.to_path_buf(),
            store: store.clone(),
        });
    }
    let io = |source: std::io::Error| ExportError::Io {
        path: output.to_path_buf(),
        source,
    };
    if overwrite {
        return write_atomic(output, text.as_bytes()).map_err(io);
    }
    // A dangling symbolic link counts as existing: following it could create a file anywhere.
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(ExportError::Exists(output.to_path_buf()));
    }
    match write_new_atomic(output, text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(ExportError::Exists(output.to_path_buf()))
        }
        other => other.map_err(io),
    }
}

/// Whether `a` and `b` are the same file: the same inode (links, hard links, `..` in paths),
/// or, when one does not exist, the same path once links are followed.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    let resolve = |p: &Path| {
        let target = resolve_links(p).unwrap_or_else(|_| p.to_path_buf());
        match (target.parent(), target.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .map(|d| d.join(name))
            .unwrap_or(target),
            _ => target,
        }
    };
    resolve(a) == resolve(b)
}
