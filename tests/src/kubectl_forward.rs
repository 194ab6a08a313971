//! Running `kubectl port-forward` in a test: on either of its transports, reading its
//! "Forwarding from" line, and collecting its stderr while it runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::{Kubectl, read_until};

/// Which transport kubectl 1.32 uses for port-forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SPDY inside a WebSocket (`SPDY/3.1+portforward.k8s.io`), the default since 1.31.
    Tunnel,
    /// The legacy `POST` + `Upgrade: SPDY/3.1` (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
    Upgrade,
}

impl Transport {
    pub const BOTH: [Transport; 2] = [Transport::Tunnel, Transport::Upgrade];

    /// `kubectl` set up to use this transport.
    pub fn kubectl(self, kubectl: &Kubectl) -> Kubectl {
        let on = match self {
            Transport::Tunnel => "true",
            Transport::Upgrade => "false",
        };
        kubectl
            .clone()
            .with_env("KUBECTL_PORT_FORWARD_WEBSOCKETS", on)
    }
}

/// A running `kubectl port-forward` (killed on drop).
pub struct Forward {
    pub child: tokio::process::Child,
    /// The local port kubectl listens on.
    pub local: u16,
    /// The pod port kubectl forwards to (after its service/port translation).
    pub remote: u16,
    stderr: Arc<Mutex<String>>,
}

impl Forward {
    /// What kubectl wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The loopback address kubectl listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.local))
    }
}

/// Starts `kubectl port-forward -n NS TARGET PORTS` on `transport` and waits for its first
/// "Forwarding from 127.0.0.1:L -> R" line.
pub async fn start(
    kubectl: &Kubectl,
    transport: Transport,
    ns: &str,
    target: &str,
    ports: &str,
) -> anyhow::Result<Forward> {
    let mut child = transport.kubectl(kubectl).spawn(&[
        "port-forward",
        "-n",
        ns,
        target,
        ports,
        "--address",
        "127.0.0.1",
    ])?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut stderr_pipe = child.stderr.take().context("no stderr")?;
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let seen = read_until(
        &mut lines,
        Duration::from_secs(30),
        "Forwarding from",
        |l| l.starts_with("Forwarding from 127.0.0.1"),
    )
    .await;
    let seen = match seen {
        Ok(seen) => seen,
        Err(e) => {
            let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
            anyhow::bail!(
                "kubectl port-forward {target} {ports} ({transport:?}): {e}; stderr: {err}"
            );
        }
    };
    // Keep draining stdout ("Handling connection for …") so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let line = seen.last().cloned().unwrap_or_default();
    let (from, to) = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_once(" -> "))
        .with_context(|| format!("unexpected kubectl output: {line}"))?;
    Ok(Forward {
        child,
        local: from.trim().parse()?,
        remote: to.trim().parse()?,
        stderr,
    })
}
