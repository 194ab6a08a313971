//! `ferry exec POD [-c CONTAINER] [-n NS] [--context C] [-i] [-t] -- CMD ARGS...`: kubectl
//! exec's behaviour on Ferry's exec engine.
//!
//! As kubectl: stdin is attached only with `-i`; `-t` allocates a TTY only together with `-i`
//! and a terminal on stdin (else "Unable to use a TTY…" and none), puts the local terminal in
//! raw mode and sends its size at start and on every SIGWINCH; the remote exit code becomes
//! Ferry's, after "command terminated with exit code N" on stderr.
//!
//! When a Ferry instance runs (the window or `ferry daemon`), the session runs there, on the
//! instance's shared client for the context (in-app clusters included), over the control
//! socket. When none runs, or the instance does not know the context (its kubeconfig is not
//! this one), it runs in this process on the kubeconfig's clients.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use ferry_core::clients::ClientPool;
use ferry_core::exec::{self, Command, ExecRequest, Input, Outcome, Output, TermSize};
use ferry_core::instance::Flavor;
use ferry_core::instance::api::{ErrorKind, ExecEnd, ExecInput};
use ferry_core::instance::client::{Client, RemoteExec, RemoteInput, RemoteOutput};
use tokio::io::AsyncWriteExt;

/// Run a command in a container of a pod, like `kubectl exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,

    /// The container (default: the `kubectl.kubernetes.io/default-container` annotation, else
    /// the first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,

    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// The kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,

    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,

    /// Stdin is a TTY (needs -i and a terminal).
    #[arg(short = 't', long)]
    pub tty: bool,

    /// The command and its arguments, after `--` (run as argv, never through a shell).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let pool = ClientPool::from_env()?;
    let context = match &args.context {
        Some(c) => c.clone(),
        None => pool
            .current_context()
            .context("no --context given and the kubeconfig has no current-context")?,
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| pool.default_namespace(&context));
    let pod = args
        .pod
        .strip_prefix("pod/")
        .or_else(|| args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod)
        .to_string();
    if pod.contains('/') {
        anyhow::bail!(
            "ferry exec takes a pod name (NAME or pod/NAME), not {:?}",
            args.pod
        );
    }
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let tty = args.tty && args.stdin && stdin_is_terminal;
    if args.tty && args.stdin && !stdin_is_terminal {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let request = ExecRequest {
        context,
        namespace,
        pod,
        container: args.container.clone(),
        command: Command::Argv(args.command.clone()),
        stdin: args.stdin,
        tty,
        size: if tty { terminal::size() } else { None },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async {
        if let Some(client) = instance().await {
            match client.exec(request.clone()).await {
                Ok(Ok(remote)) => return remote_session(remote, request.stdin).await,
                Ok(Err(e)) if e.kind == ErrorKind::UnknownContext => {
                    tracing::info!(
                        "the running instance does not know the context; exec in process"
                    );
                }
                Ok(Err(e)) => return Err(anyhow::anyhow!(e.message)),
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context("the exec session through the Ferry instance failed"));
                }
            }
        }
        session(pool, request).await
    });
    // A thread may still be blocked reading stdin; it must not hold up the exit.
    runtime.shutdown_background();
    result
}

/// The running instance, if one runs and answers; an instance that cannot be talked to (say,
/// an older version) is passed over with a warning.
async fn instance() -> Option<Client> {
    match Client::connect(Flavor::Real).await {
        Ok(client) => Some(client),
        Err(ferry_core::instance::client::ClientError::NoInstance { .. }) => None,
        Err(e) => {
            tracing::warn!("{e}; running the command in this process instead");
            None
        }
    }
}

/// Where stdin and window-size changes go: a session in this process or one on the instance.
#[derive(Clone)]
enum Sink {
    Local(exec::InputSink),
    Remote(RemoteInput),
}

impl Sink {
    async fn send(&self, input: Input) -> bool {
        match self {
            Sink::Local(sink) => sink.send(input).await,
            Sink::Remote(remote) => {
                remote
                    .send(match input {
                        Input::Data(data) => ExecInput::Data {
                            data: data.to_vec(),
                        },
                        Input::Resize(size) => ExecInput::Resize { size },
                        Input::Eof => ExecInput::Eof,
                    })
                    .await
            }
        }
    }
}

/// Raw mode, stdin and window-size updates for a session; the raw mode lasts while the
/// returned guard lives (also on error paths).
fn attach(sink: Sink, with_stdin: bool, tty: bool) -> Option<terminal::RawMode> {
    let raw = if tty {
        terminal::RawMode::enable()
    } else {
        None
    };
    if with_stdin {
        spawn_stdin(sink.clone());
    }
    #[cfg(unix)]
    if tty {
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(size) = terminal::size()
                    && !sink.send(Input::Resize(size)).await
                {
                    return;
                }
            }
        });
    }
    raw
}

/// The exit code kubectl gives for how the command ended.
fn exit(ended: Result<i32, anyhow::Error>) -> anyhow::Result<ExitCode> {
    match ended? {
        0 => Ok(ExitCode::SUCCESS),
        code => {
            eprintln!("command terminated with exit code {code}");
            Ok(ExitCode::from((code & 0xff) as u8))
        }
    }
}

/// A session on the running instance.
async fn remote_session(mut remote: RemoteExec, with_stdin: bool) -> anyhow::Result<ExitCode> {
    if let Some(note) = &remote.defaulted_note {
        eprintln!("{note}");
    }
    let raw = attach(Sink::Remote(remote.input()), with_stdin, remote.tty);
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let ended = loop {
        let written = match remote.next().await {
            Ok(RemoteOutput::Stdout(b)) => write_all(&mut stdout, &b).await,
            Ok(RemoteOutput::Stderr(b)) => write_all(&mut stderr, &b).await,
            Ok(RemoteOutput::Ended(ExecEnd::Exited { code })) => break Ok(code),
            Ok(RemoteOutput::Ended(ExecEnd::Failed { message })) => {
                break Err(anyhow::anyhow!(message));
            }
            Err(e) => break Err(anyhow::Error::new(e).context("the exec session ended")),
        };
        if written.is_err() {
            // Our own stdout is gone (closed pipe): stop like kubectl does.
            break Ok(0);
        }
    };
    drop(raw);
    exit(ended)
}

/// A session in this process.
async fn session(pool: ClientPool, request: ExecRequest) -> anyhow::Result<ExitCode> {
    let tty = request.tty;
    let with_stdin = request.stdin;
    let mut session = exec::open(&pool, request).await?;
    if let Some(note) = &session.info.defaulted_note {
        eprintln!("{note}");
    }
    let raw = attach(Sink::Local(session.input.clone()), with_stdin, tty);
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some(chunk) = session.output.recv().await {
        let written = match chunk {
            Output::Stdout(b) => write_all(&mut stdout, &b).await,
            Output::Stderr(b) => write_all(&mut stderr, &b).await,
        };
        if written.is_err() {
            // Our own stdout is gone (closed pipe): stop like kubectl does.
            break;
        }
    }
    let outcome = session.wait().await;
    drop(raw);
    exit(match outcome {
        Outcome::Exited(code) => Ok(code),
        Outcome::Failed(e) => Err(e.into()),
    })
}

async fn write_all(w: &mut (impl AsyncWriteExt + Unpin), b: &[u8]) -> std::io::Result<()> {
    w.write_all(b).await?;
    w.flush().await
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled) and forwards it;
/// end of input is passed on as [`Input::Eof`].
fn spawn_stdin(input: Sink) {
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    handle.block_on(input.send(Input::Eof));
                    return;
                }
                Ok(n) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    if !handle.block_on(input.send(Input::Data(data))) {
                        return;
                    }
                }
            }
        }
    });
}

/// The local terminal: raw mode and size (Unix; elsewhere no TTY features).
mod terminal {
    use super::TermSize;

    /// The terminal's size in cells, if stdout (or stdin) is a terminal.
    #[cfg(unix)]
    pub fn size() -> Option<TermSize> {
        let fd = [rustix::stdio::stdout(), rustix::stdio::stdin()]
            .into_iter()
            .find_map(|fd| rustix::termios::tcgetwinsize(fd).ok())?;
        (fd.ws_col > 0 && fd.ws_row > 0).then_some(TermSize {
            cols: fd.ws_col,
            rows: fd.ws_row,
        })
    }

    #[cfg(not(unix))]
    pub fn size() -> Option<TermSize> {
        None
    }

    /// Raw mode on stdin while alive; the saved settings come back on drop.
    pub struct RawMode {
        #[cfg(unix)]
        saved: rustix::termios::Termios,
    }

    impl RawMode {
        #[cfg(unix)]
        pub fn enable() -> Option<Self> {
            use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
            let stdin = rustix::stdio::stdin();
            let saved = tcgetattr(stdin).ok()?;
            let mut raw = saved.clone();
            raw.make_raw();
            tcsetattr(stdin, OptionalActions::Now, &raw).ok()?;
            Some(RawMode { saved })
        }

        #[cfg(not(unix))]
        pub fn enable() -> Option<Self> {
            None
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            #[cfg(unix)]
            {
                use rustix::termios::{OptionalActions, tcsetattr};
                let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
            }
        }
    }
}
