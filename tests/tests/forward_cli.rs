//! `ferry forward` as a subprocess against kubesim: it prints where it listens, serves HTTP
//! through the tunnel, reports a pod switch, stops cleanly on Ctrl-C, and refuses bad input
//! with a message and a non-zero exit code.
//!
//! The `ferry` binary must be built (`cargo build -p ferry`; `cargo test --workspace` does it).

use std::path::Path;
use std::time::Duration;

use ferry_e2e::tunnels::{hit_pod, http_get};
use ferry_e2e::{ferry_forward, forwarding_address};
use ferry_e2e::{read_until, start_demo};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

type Result = anyhow::Result<()>;

#[tokio::test]
async fn ferry_forward_serves_follows_pods_and_stops_on_ctrl_c() -> Result {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    ferry_e2e::tunnels::wait_ready_pods(&client, "app=kubia", 3).await?;
    let mut child = ferry_forward(
        cluster.kubeconfig(),
        &["svc/kubia", "0:80", "--context", "demo"],
    )?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let seen = read_until(
        &mut lines,
        Duration::from_secs(20),
        "the Forwarding line",
        |l| l.starts_with("Forwarding from 127.0.0.1:"),
    )
    .await?;
    let line = seen.last().cloned().unwrap_or_default();
    assert!(line.contains("-> 8080 (svc/kubia → pod kubia-"), "{line}");
    let addr = forwarding_address(&line).expect("an address in the Forwarding line");
    let serving = hit_pod(&http_get(addr, "/").await?).expect("kubia answers");
    assert!(
        line.ends_with(&format!("pod {serving})")),
        "{line} vs {serving}"
    );

    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "default");
    pods.delete(
        &serving,
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await?;
    read_until(
        &mut lines,
        Duration::from_secs(10),
        "a pod switch line",
        |l| l.contains("pod switched") && l.contains(&serving),
    )
    .await?;
    let now = hit_pod(&http_get(addr, "/").await?).expect("the tunnel still answers");
    assert_ne!(now, serving);

    let pid = child.id().expect("running").to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().await?;
    assert!(signalled.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success(), "Ctrl-C is a clean stop: {status:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
    Ok(())
}

async fn failing(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let child = ferry_forward(kubeconfig, args)?;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await??;
    assert!(!out.status.success(), "ferry forward {args:?} must fail");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn ferry_forward_refuses_bad_input_with_a_message() -> Result {
    let cluster = start_demo().await?;
    let kc = cluster.kubeconfig();
    let err = failing(kc, &["svc/kubia", "80:99999"]).await?;
    assert!(err.contains("invalid port spec \"80:99999\""), "{err}");
    let err = failing(kc, &["rs/kubia", "80"]).await?;
    assert!(err.contains("unknown resource type \"rs\""), "{err}");
    let err = failing(kc, &["svc/kubia", "80", "--context", "nowhere"]).await?;
    assert!(
        err.contains("no context named \"nowhere\"") && err.contains("demo"),
        "{err}"
    );
    let err = failing(kc, &["svc/external-service", "0:80", "--context", "demo"]).await?;
    assert!(err.contains("has no selector"), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    let err = failing(
        kc,
        &["svc/kubia", &format!("{port}:80"), "--context", "demo"],
    )
    .await?;
    assert!(
        err.contains(&format!("local port {port}")) && err.contains("already in use"),
        "{err}"
    );
    Ok(())
}
