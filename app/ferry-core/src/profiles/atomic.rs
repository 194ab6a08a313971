//! Crash-safe file replacement and the cross-process lock around read-modify-write.
//!
//! A write goes to a temporary file in the same directory (mode 0600), is flushed to disk, and
//! is renamed over the target; then the directory is flushed so the rename itself survives a
//! power cut. A reader therefore sees the old file or the new one, never half of one.
//!
//! A path that is a symbolic link (a dotfiles repository linking `profiles.toml` into the
//! config folder) stays a link: the write goes to the file it points at, atomically in that
//! file's own folder, as editors do. Replacing the link would silently cut the target off.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically (mode 0600). When `path` is a symbolic link, the
/// file it points at is replaced instead and the link is left as it is.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, |from, to| std::fs::rename(from, to))
}

/// Writes `bytes` to a new file at `path`, atomically, and never over an existing file:
/// fails with [`io::ErrorKind::AlreadyExists`] if `path` exists (even when another process
/// creates it at the same moment). For copies that must not replace an earlier copy.
pub fn write_new_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(&parent_dir(path))
}

/// Where a write to `path` must go: `path` itself, or, when it is a symbolic link, the file at
/// the end of the chain of links (which may not exist yet). Gives up after 40 links, as the
/// kernel does, with the error it would give.
pub fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = if target.is_absolute() {
                    target
                } else {
                    parent_dir(&current).join(target)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} is a chain of more than 40 symbolic links (a loop?)",
        path.display()
    )))
}

/// [`write_atomic`] with the rename step supplied, so tests can make it fail.
pub(crate) fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    let path = resolve_links(path)?;
    let tmp = write_temp(&path, bytes)?;
    let tmp_path = tmp.into_temp_path();
    rename(&tmp_path, &path)?;
    // The temp name no longer exists; don't let the guard try to delete it.
    let _ = tmp_path.keep();
    sync_dir(&parent_dir(&path))
}

/// A flushed temporary file (mode 0600) holding `bytes`, in `path`'s folder so that renaming
/// it over `path` is atomic. Deleted again if dropped.
fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ferry".into());
    // tempfile creates the file with mode 0600 on Unix and deletes it if we bail out early.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(parent_dir(path))?;
    restrict_mode(tmp.as_file())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn restrict_mode(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An exclusive advisory lock on `<file>.lock`, held until dropped. A separate lock file is used
/// because the data file itself is replaced by rename on every write.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until no other Ferry process (or thread) holds the lock for `path`.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(PathBuf::from(lock_path))?;
        file.lock()?;
        Ok(FileLock { _file: file })
    }
}
