//! `kubesim fault …`: injects a fault into a running `kubesim serve` through its admin
//! endpoint, found via the admin file written next to the kubeconfig.

use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::admin::{AdminAccess, Fault};

/// Arguments of `kubesim fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The admin file `kubesim serve` wrote next to its kubeconfig.
    #[arg(
        long,
        env = "KUBESIM_ADMIN_FILE",
        default_value = "kubesim.kubeconfig.admin.json"
    )]
    admin_file: PathBuf,
    /// The cluster to break (default: the primary cluster).
    #[arg(long)]
    cluster: Option<String>,
    /// Namespace of the pod.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    action: Action,
}

impl FaultArgs {
    /// Parses `kubesim fault` arguments (what follows `kubesim fault`), for tests and for
    /// programs that embed the command.
    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: FaultArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("kubesim-fault"))
            .chain(args.into_iter().map(Into::into));
        Wrapper::try_parse_from(argv).map(|w| w.args)
    }
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Delete a pod (gracefully, as `kubectl delete pod` does).
    DeletePod { pod: String },
    /// Make a pod NotReady, as a failing readiness probe would.
    NotReady { pod: String },
    /// Make a pod Ready again.
    Ready { pod: String },
    /// Drop every open port-forward and exec stream.
    DropStreams,
    /// Make port-forward to a pod fail with an error on the error channel.
    FailPortForward {
        pod: String,
        /// The reason in the kubelet's error sentence.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Undo fail-port-forward.
    HealPortForward { pod: String },
    /// Delay every new port-forward/exec stream by this many milliseconds (0 removes it).
    Latency { millis: u64 },
    /// Pause the API server (connections stall) until `resume`.
    Pause,
    /// Resume a paused API server.
    Resume,
    /// Stop the API server (port closed, connections reset, state kept).
    Stop,
    /// Listen again on the same port after `stop`.
    Restart,
    /// Remove stream faults and resume the server.
    Clear,
}

impl Action {
    fn into_fault(self, namespace: String) -> Fault {
        let ns = namespace;
        match self {
            Action::DeletePod { pod } => Fault::DeletePod {
                namespace: ns,
                name: pod,
            },
            Action::NotReady { pod } => Fault::NotReady {
                namespace: ns,
                name: pod,
            },
            Action::Ready { pod } => Fault::Ready {
                namespace: ns,
                name: pod,
            },
            Action::DropStreams => Fault::DropStreams,
            Action::FailPortForward { pod, reason } => Fault::FailPortForward {
                namespace: ns,
                name: pod,
                reason,
            },
            Action::HealPortForward { pod } => Fault::HealPortForward {
                namespace: ns,
                name: pod,
            },
            Action::Latency { millis } => Fault::Latency { millis },
            Action::Pause => Fault::Pause,
            Action::Resume => Fault::Resume,
            Action::Stop => Fault::Stop,
            Action::Restart => Fault::Restart,
            Action::Clear => Fault::Clear,
        }
    }
}

/// Runs `kubesim fault …`: prints what was done, or fails with the endpoint's error.
pub async fn run(args: FaultArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.admin_file).with_context(|| {
        format!(
            "could not read the admin file {} (start `kubesim serve` first, or pass --admin-file)",
            args.admin_file.display()
        )
    })?;
    let access: AdminAccess = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a kubesim admin file", args.admin_file.display()))?;
    let cluster = match args.cluster {
        Some(c) => c,
        None => {
            let list = call(&access, "GET", "/clusters", None).await?;
            list["clusters"][0]
                .as_str()
                .context("the admin endpoint lists no cluster")?
                .to_string()
        }
    };
    let fault = args.action.into_fault(args.namespace);
    let body = serde_json::to_vec(&fault)?;
    let answer = call(
        &access,
        "POST",
        &format!("/clusters/{cluster}/faults"),
        Some(body),
    )
    .await?;
    println!("{}", answer["message"].as_str().unwrap_or("done"));
    Ok(())
}

/// One request to the admin endpoint; fails with its `error` message on a non-2xx answer.
async fn call(
    access: &AdminAccess,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<serde_json::Value> {
    let authority = access
        .url
        .strip_prefix("http://")
        .context("the admin URL must start with http://")?
        .trim_end_matches('/')
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("could not reach the kubesim admin endpoint at {authority} (is `kubesim serve` still running?)"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority)
        .header("authorization", format!("Bearer {}", access.token))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{} ({status})",
            value["error"]
                .as_str()
                .unwrap_or("the admin endpoint refused the fault")
        );
    }
    Ok(value)
}
