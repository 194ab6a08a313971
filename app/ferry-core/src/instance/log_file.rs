//! The instance's log file: nobody watches a background process's stderr, so every instance
//! writes its log here and `ferry status` names the file.
//!
//! Bounded by rotation: when the file passes [`LogFile::limit`] bytes it is renamed to
//! `NAME.1` (replacing the previous one) and a new file is started, so the log never takes more
//! than about twice the limit. Created 0600. What goes in is what `tracing` is given; Ferry
//! never logs tokens or other secrets (they only live in the OS keyring).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Default size at which the log rotates (4 MiB).
pub const DEFAULT_LIMIT: u64 = 4 * 1024 * 1024;

/// A size-rotated log file, shareable across threads (a `tracing_subscriber` `MakeWriter` via
/// [`LogFile::writer`]).
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    file: File,
    written: u64,
    limit: u64,
}

fn open(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl LogFile {
    /// Opens (appending) or creates the log at `path`, creating its folder (0700). Rotates at
    /// once if the existing file is already over `limit`.
    pub fn open(path: impl Into<PathBuf>, limit: u64) -> io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            crate::config_dir::create_private_dir(dir)?;
        }
        let file = open(&path)?;
        let written = file.metadata()?.len();
        let mut inner = Inner {
            path,
            file,
            written,
            limit: limit.max(1024),
        };
        if inner.written >= inner.limit {
            inner.rotate()?;
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Where the log is written.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// The rotation size.
    pub fn limit(&self) -> u64 {
        self.lock().limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A writer for one log record (what `tracing_subscriber::fmt().with_writer` wants).
    pub fn writer(&self) -> impl Fn() -> LogFile + Send + Sync + 'static {
        let this = self.clone();
        move || this.clone()
    }
}

impl Inner {
    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, PathBuf::from(old))?;
        self.file = open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        if inner.written + buf.len() as u64 > inner.limit && inner.written > 0 {
            // A log that cannot rotate keeps appending rather than losing the record.
            let _ = inner.rotate();
        }
        let n = inner.file.write(buf)?;
        inner.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("instance.log");
        let mut log = LogFile::open(&path, 4096).unwrap();
        let line = [b'x'; 100];
        for _ in 0..1000 {
            log.write_all(&line).unwrap();
        }
        let main = std::fs::metadata(&path).unwrap().len();
        let old = std::fs::metadata(dir.path().join("logs").join("instance.log.1"))
            .unwrap()
            .len();
        assert!(main <= 4096 && old <= 4096, "main {main}, old {old}");
        let entries = std::fs::read_dir(dir.path().join("logs")).unwrap().count();
        assert_eq!(entries, 2, "exactly the log and one rotated copy");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
