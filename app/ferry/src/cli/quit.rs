//! `ferry quit`: stop every tunnel of the running instance and end it (its window closes too),
//! waiting until it is gone. With no instance running it says so, exit 3.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferry_core::instance::Flavor;
use ferry_core::instance::api::{Request, Response};
use ferry_core::instance::client::{Client, ClientError};

use super::remote;

/// Stop the running Ferry instance: every tunnel, its window, its control socket.
#[derive(Debug, clap::Args)]
pub struct QuitArgs {
    /// Quit `ferry --demo`'s instance instead of the real one.
    #[arg(long)]
    pub demo: bool,
}

/// How long to wait for the instance to be gone (it stops within 2 s).
const WAIT: Duration = Duration::from_secs(5);

pub fn run(args: QuitArgs) -> anyhow::Result<ExitCode> {
    let flavor = if args.demo {
        Flavor::Demo
    } else {
        Flavor::Real
    };
    remote::runtime()?.block_on(async {
        let Some(mut client) = remote::connect(flavor).await? else {
            return Ok(remote::no_instance());
        };
        let pid = client.instance().pid;
        match remote::ask(&mut client, Request::Quit).await? {
            Ok(Response::Ok) => {}
            Ok(other) => anyhow::bail!("unexpected answer to quit: {other:?}"),
            Err(code) => return Ok(code),
        }
        drop(client);
        let deadline = Instant::now() + WAIT;
        // Gone once nobody listens; a connection closed during the hello means "going".
        while !matches!(
            Client::connect(flavor).await,
            Err(ClientError::NoInstance { .. })
        ) {
            if Instant::now() > deadline {
                eprintln!(
                    "error: the Ferry instance (pid {pid}) was asked to quit but still answers after {} s; see its log (`ferry status` names it)",
                    WAIT.as_secs()
                );
                return Ok(ExitCode::from(remote::FAILED));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        println!("stopped the Ferry instance (pid {pid}) and its tunnels");
        Ok(ExitCode::SUCCESS)
    })
}
