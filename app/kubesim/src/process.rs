//! A real local process standing in for a command executed "inside" a simulated container:
//! pipes for stdin/stdout/stderr, or a pseudo-terminal when a TTY is asked for.
//!
//! Input (stdin bytes, end of stdin, terminal resizes) goes in through a bounded channel and
//! output comes out through another, so that a caller can keep draining output while stdin
//! waits for the process: a process that neither reads stdin nor exits cannot deadlock the
//! stream.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Spec {
    pub argv: Vec<String>,
    /// The pod's working directory (also `HOME`).
    pub workdir: PathBuf,
    /// `HOSTNAME` in the process environment: the pod name, as in a real container.
    pub hostname: String,
    /// The container's `env`.
    pub env: Vec<(String, String)>,
    pub stdin: bool,
    pub tty: bool,
}

/// Something for the process.
#[derive(Debug)]
pub enum Input {
    Data(Bytes),
    /// The client finished sending stdin.
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
}

/// Something the process wrote. With a TTY everything is `Stdout`.
#[derive(Debug)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code; a process killed by signal N reports 128 + N, as container runtimes do.
    Code(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
        }
    }
}

/// Why the process could not start, in runc's words (after `exec failed: unable to start
/// container process: `).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotInPath(String),
    #[error("exec: \"{0}\": stat {0}: no such file or directory")]
    NoSuchFile(String),
    #[error("exec: \"{0}\": permission denied")]
    PermissionDenied(String),
    #[error("exec: \"{program}\": {source}")]
    Other {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running process with its input and output channels.
pub struct Process {
    input: mpsc::Sender<Input>,
    output: Option<mpsc::Receiver<Output>>,
    exit: oneshot::Receiver<Exit>,
    exited: Option<Exit>,
    killer: Killer,
}

enum Killer {
    Pipes(Option<oneshot::Sender<()>>),
    /// The process group of the PTY's session leader, and whether it was killed (so the exit
    /// is reported as 137, SIGKILL's code, as runtimes do).
    Pty {
        pgid: Option<i32>,
        killed: Arc<AtomicBool>,
    },
}

const CHUNK: usize = 32 * 1024;

impl Process {
    /// Starts the process. Fails, without starting anything, when the executable does not
    /// exist or is not executable.
    pub fn spawn(spec: &Spec) -> Result<Self, SpawnError> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let path_var =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let resolved = resolve(&program, &path_var, &spec.workdir)?;
        let mut env = vec![
            ("PATH".to_string(), path_var),
            ("HOME".to_string(), spec.workdir.display().to_string()),
            ("HOSTNAME".to_string(), spec.hostname.clone()),
        ];
        if spec.tty {
            env.push(("TERM".into(), "xterm".into()));
        }
        env.extend(spec.env.iter().cloned());
        if spec.tty {
            spawn_pty(spec, &resolved, &env)
        } else {
            spawn_pipes(spec, &resolved, &env)
        }
        .map_err(|source| SpawnError::Other { program, source })
    }

    /// The output channel; ends when the process and its children closed their output.
    pub fn take_output(&mut self) -> mpsc::Receiver<Output> {
        self.output.take().unwrap_or_else(|| mpsc::channel(1).1)
    }

    /// A sender for input; waits while the process is not reading.
    pub fn input(&self) -> mpsc::Sender<Input> {
        self.input.clone()
    }

    /// Waits for the exit. Cancel-safe (can be used in `select!` repeatedly).
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = self.exited {
            return exit;
        }
        let exit = (&mut self.exit).await.unwrap_or(Exit::Code(137));
        self.exited = Some(exit);
        exit
    }

    /// Kills the process and everything it started with SIGKILL (the stream it belongs to
    /// is gone, or its container stopped: a runtime tearing down a container's PID namespace
    /// kills every process in it, so a `sleep` the command left behind goes too and the
    /// output ends).
    pub fn kill(&mut self) {
        match &mut self.killer {
            Killer::Pipes(tx) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
            Killer::Pty { pgid, killed } => {
                if let Some(pgid) = pgid.take() {
                    killed.store(true, Ordering::SeqCst);
                    kill_group(pgid);
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.kill();
        }
    }
}

/// Finds the executable as `execve` after a `$PATH` search would, with runc's error words.
pub fn resolve(program: &str, path_var: &str, workdir: &Path) -> Result<PathBuf, SpawnError> {
    if program.contains('/') {
        let path = workdir.join(program);
        return match std::fs::metadata(&path) {
            Err(_) => Err(SpawnError::NoSuchFile(program.to_string())),
            Ok(m) if m.is_dir() || !is_executable(&m) => {
                Err(SpawnError::PermissionDenied(program.to_string()))
            }
            Ok(_) => Ok(path),
        };
    }
    if !program.is_empty() {
        for dir in path_var.split(':').filter(|d| !d.is_empty()) {
            let candidate = Path::new(dir).join(program);
            if let Ok(m) = std::fs::metadata(&candidate)
                && m.is_file()
                && is_executable(&m)
            {
                return Ok(candidate);
            }
        }
    }
    Err(SpawnError::NotInPath(program.to_string()))
}

fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

fn spawn_pipes(spec: &Spec, program: &Path, env: &[(String, String)]) -> std::io::Result<Process> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg0(spec.argv.first().map(String::as_str).unwrap_or_default())
        .args(spec.argv.iter().skip(1))
        .current_dir(&spec.workdir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a kill reaches what it started (see `kill`).
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let (out_tx, out_rx) = mpsc::channel(8);
    if let Some(mut stdout) = child.stdout.take() {
        let tx = out_tx.clone();
        tokio::spawn(async move { pump(&mut stdout, &tx, Output::Stdout).await });
    }
    if let Some(mut stderr) = child.stderr.take() {
        let tx = out_tx.clone();
        tokio::spawn(async move { pump(&mut stderr, &tx, Output::Stderr).await });
    }
    drop(out_tx);
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(16);
    let mut stdin = child.stdin.take();
    tokio::spawn(async move {
        while let Some(input) = in_rx.recv().await {
            match input {
                Input::Data(b) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&b).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Input::Eof => stdin = None,
                Input::Resize { .. } => {}
            }
        }
    });
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(async move {
        let status = tokio::select! {
            s = child.wait() => s,
            _ = kill_rx => {
                match pgid {
                    Some(pgid) => kill_group(pgid),
                    None => { let _ = child.start_kill(); }
                }
                child.wait().await
            }
        };
        let _ = exit_tx.send(status.map(exit_of).unwrap_or(Exit::Code(137)));
    });
    Ok(Process {
        input: in_tx,
        output: Some(out_rx),
        exit: exit_rx,
        exited: None,
        killer: Killer::Pipes(Some(kill_tx)),
    })
}

/// SIGKILL to a whole process group.
fn kill_group(pgid: i32) {
    // SAFETY: killpg takes plain integers and touches no memory of ours.
    let _ = unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(sig)) => Exit::Code(128 + sig),
        (None, None) => Exit::Code(1),
    }
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    tx: &mpsc::Sender<Output>,
    wrap: fn(Bytes) -> Output,
) {
    let mut buf = bytes::BytesMut::with_capacity(CHUNK);
    loop {
        buf.reserve(CHUNK);
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(wrap(buf.split().freeze())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn spawn_pty(spec: &Spec, program: &Path, env: &[(String, String)]) -> std::io::Result<Process> {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(std::io::Error::other)?;
    let mut cmd = CommandBuilder::new(program);
    cmd.args(spec.argv.iter().skip(1));
    cmd.cwd(&spec.workdir);
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .map_err(std::io::Error::other)?;
    drop(pair.slave);
    // portable-pty makes the child a session leader, so its pid is its process group.
    let pgid = child.process_id().and_then(|id| i32::try_from(id).ok());
    let killed = Arc::new(AtomicBool::new(false));
    let mut reader = pair
        .master
        .try_clone_reader()
        .map_err(std::io::Error::other)?;
    let mut writer = pair.master.take_writer().map_err(std::io::Error::other)?;
    let master = pair.master;

    let (out_tx, out_rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        // EIO once the process and everything holding the terminal are gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0
                || out_tx
                    .blocking_send(Output::Stdout(Bytes::copy_from_slice(&buf[..n])))
                    .is_err()
            {
                break;
            }
        }
    });
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(16);
    std::thread::spawn(move || {
        while let Some(input) = in_rx.blocking_recv() {
            let ok = match input {
                Input::Data(b) => writer.write_all(&b).and_then(|_| writer.flush()).is_ok(),
                // End of input on a terminal is the EOF character (^D).
                Input::Eof => writer.write_all(&[4]).and_then(|_| writer.flush()).is_ok(),
                Input::Resize { cols, rows } => master
                    .resize(PtySize {
                        rows,
                        cols,
                        pixel_width: 0,
                        pixel_height: 0,
                    })
                    .is_ok(),
            };
            if !ok {
                tracing::trace!("pty input failed");
            }
        }
        // Dropping the master hangs up the terminal.
    });
    let (exit_tx, exit_rx) = oneshot::channel();
    let was_killed = killed.clone();
    std::thread::spawn(move || {
        let code = match child.wait() {
            // portable-pty reports a death by signal as code 1; ours is SIGKILL's 137.
            Ok(s) if s.signal().is_some() && was_killed.load(Ordering::SeqCst) => 137,
            Ok(s) => i32::try_from(s.exit_code()).unwrap_or(1),
            Err(_) => 137,
        };
        let _ = exit_tx.send(Exit::Code(code));
    });
    Ok(Process {
        input: in_tx,
        output: Some(out_rx),
        exit: exit_rx,
        exited: None,
        killer: Killer::Pty { pgid, killed },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], tty: bool) -> Spec {
        Spec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: std::env::temp_dir(),
            hostname: "pod-1".into(),
            env: vec![("GREETING".into(), "hi".into())],
            stdin: true,
            tty,
        }
    }

    async fn collect(p: &mut Process) -> (String, String) {
        let mut rx = p.take_output();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(o) = rx.recv().await {
            match o {
                Output::Stdout(b) => out.extend_from_slice(&b),
                Output::Stderr(b) => err.extend_from_slice(&b),
            }
        }
        (
            String::from_utf8_lossy(&out).into(),
            String::from_utf8_lossy(&err).into(),
        )
    }

    #[tokio::test]
    async fn pipes_split_output_and_report_exit_code() {
        let mut p = Process::spawn(&spec(
            &[
                "sh",
                "-c",
                "echo $HOSTNAME $GREETING; echo oops >&2; exit 3",
            ],
            false,
        ))
        .unwrap();
        let (out, err) = collect(&mut p).await;
        assert_eq!(out, "pod-1 hi\n");
        assert_eq!(err, "oops\n");
        assert_eq!(p.wait().await, Exit::Code(3));
    }

    #[tokio::test]
    async fn stdin_reaches_the_process_and_eof_ends_it() {
        let mut p = Process::spawn(&spec(&["cat"], false)).unwrap();
        let input = p.input();
        input
            .send(Input::Data(Bytes::from_static(b"hello\n")))
            .await
            .unwrap();
        input.send(Input::Eof).await.unwrap();
        let (out, _) = collect(&mut p).await;
        assert_eq!(out, "hello\n");
        assert_eq!(p.wait().await, Exit::Code(0));
    }

    #[tokio::test]
    async fn tty_applies_resize() {
        let mut p = Process::spawn(&spec(&["sh", "-c", "read x; stty size"], true)).unwrap();
        let input = p.input();
        input
            .send(Input::Resize {
                cols: 123,
                rows: 45,
            })
            .await
            .unwrap();
        input
            .send(Input::Data(Bytes::from_static(b"go\n")))
            .await
            .unwrap();
        let (out, _) = collect(&mut p).await;
        assert!(out.contains("45 123"), "{out:?}");
        assert_eq!(p.wait().await, Exit::Code(0));
    }

    /// A stopped container takes everything exec'd into it along: the `sleep` the shell
    /// started must not keep the output open, and the exit is SIGKILL's 137.
    #[tokio::test]
    async fn kill_reaches_what_the_command_started() {
        for tty in [false, true] {
            let mut p = Process::spawn(&spec(&["sh", "-c", "echo up; sleep 100; echo never"], tty))
                .unwrap();
            let mut rx = p.take_output();
            let first = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
                .await
                .expect("no output");
            assert!(first.is_some(), "tty={tty}");
            p.kill();
            let drained = tokio::time::timeout(std::time::Duration::from_secs(20), async {
                while rx.recv().await.is_some() {}
            })
            .await;
            assert!(
                drained.is_ok(),
                "tty={tty}: the output stayed open after the kill"
            );
            assert_eq!(p.wait().await, Exit::Code(137), "tty={tty}");
        }
    }

    #[test]
    fn missing_executable_uses_runc_words() {
        let err = resolve("bash-does-not-exist", "/usr/bin:/bin", Path::new("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"bash-does-not-exist\": executable file not found in $PATH"
        );
        let err = resolve("/nope/x", "/usr/bin", Path::new("/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec: \"/nope/x\": stat /nope/x: no such file or directory"
        );
    }
}
