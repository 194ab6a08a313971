//! The CLI as a client of the running instance: connecting, exit codes, and starting a daemon
//! when a command needs one (`ferry forward --detach`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_core::instance::Flavor;
use ferry_core::instance::api::{ApiError, ErrorKind, Request, Response};
use ferry_core::instance::client::{Client, ClientError};

/// Exit code: the command failed.
pub const FAILED: u8 = 1;
/// Exit code: bad usage (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// Exit code: no instance is running.
pub const NO_INSTANCE: u8 = 3;

/// A small runtime for one client conversation.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// Connects to the instance; `Ok(None)` when none runs.
pub async fn connect(flavor: Flavor) -> anyhow::Result<Option<Client>> {
    match Client::connect(flavor).await {
        Ok(client) => Ok(Some(client)),
        Err(ClientError::NoInstance { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The sentence and exit code for "no instance runs".
pub fn no_instance() -> ExitCode {
    let socket = ferry_core::instance::paths::socket_path(Flavor::Real)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "its usual place".into());
    eprintln!(
        "no Ferry instance is running (no socket at {socket}); start one with `ferry` (the window) or `ferry daemon` (no window)"
    );
    ExitCode::from(NO_INSTANCE)
}

/// Prints an error the instance gave and returns the matching exit code.
pub fn failed(error: &ApiError) -> ExitCode {
    eprintln!("error: {}", error.message);
    ExitCode::from(match error.kind {
        ErrorKind::BadRequest | ErrorKind::UnknownProfile | ErrorKind::UnknownTunnel => USAGE,
        _ => FAILED,
    })
}

/// Sends one request; an error answer becomes `Err(exit code)` after printing it.
pub async fn ask(
    client: &mut Client,
    request: Request,
) -> anyhow::Result<Result<Response, ExitCode>> {
    match client.request(request).await {
        Ok(Response::Error(e)) | Err(ClientError::Refused(e)) => Ok(Err(failed(&e))),
        Ok(response) => Ok(Ok(response)),
        Err(e) => Err(e.into()),
    }
}

/// Connects to the running instance, starting `ferry daemon` first if none runs. Waits up to
/// 10 s for it to listen.
pub async fn connect_or_start_daemon() -> anyhow::Result<Client> {
    if let Some(client) = connect(Flavor::Real).await? {
        return Ok(client);
    }
    let exe = std::env::current_exe().context("cannot find the ferry binary to start a daemon")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(unix)]
    {
        // Its own process group, so Ctrl-C in this terminal does not stop the daemon.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().context("could not start `ferry daemon`")?;
    eprintln!(
        "started a Ferry daemon (pid {}) to keep the tunnel running",
        child.id()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(client) = connect(Flavor::Real).await? {
            // Reap the child in the background if it exits (e.g. it lost a race to another
            // daemon, which is then the one we talk to).
            std::thread::spawn(move || child.wait());
            return Ok(client);
        }
        if let Ok(Some(status)) = child.try_wait()
            && connect(Flavor::Real).await?.is_none()
        {
            anyhow::bail!(
                "`ferry daemon` exited ({status}) before listening; see its log with `ferry daemon` in a terminal"
            );
        }
        if Instant::now() > deadline {
            anyhow::bail!("`ferry daemon` did not start listening within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
