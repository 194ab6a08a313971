//! `ferry down NAME…` / `ferry down --all`: stop profiles' tunnels (or every tunnel) on the
//! running instance. With no instance running there is nothing to stop: it says so, exit 3.

use std::process::ExitCode;

use ferry_core::instance::Flavor;
use ferry_core::instance::api::{Request, Response};

use super::remote;

/// Stop saved profiles' tunnels on the running instance.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// Profiles whose tunnels to stop.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,

    /// Stop every tunnel of the instance, whatever its origin.
    #[arg(long)]
    pub all: bool,
}

pub fn run(args: DownArgs) -> anyhow::Result<ExitCode> {
    remote::runtime()?.block_on(async {
        let Some(mut client) = remote::connect(Flavor::Real).await? else {
            return Ok(remote::no_instance());
        };
        let request = Request::Down {
            profiles: args.names.clone(),
            all: args.all,
        };
        match remote::ask(&mut client, request).await? {
            Ok(Response::Stopped { stopped }) => {
                let what = if args.all {
                    "every tunnel".to_string()
                } else {
                    args.names.join(", ")
                };
                match stopped.len() {
                    0 => println!("nothing was running ({what})"),
                    1 => println!("stopped 1 tunnel ({what})"),
                    n => println!("stopped {n} tunnels ({what})"),
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(other) => anyhow::bail!("unexpected answer to down: {other:?}"),
            Err(code) => Ok(code),
        }
    })
}
