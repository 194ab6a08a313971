//! Where `ferry forward` listens: by default and with `--address localhost` on both loopbacks,
//! never silently on 127.0.0.1 alone when another program holds the port on ::1 (a client
//! trying ::1 first would reach that program); `--address 127.0.0.1` binds that alone.
//!
//! Runs the real `ferry` binary against kubesim (`cargo build -p ferry` first).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ferry_e2e::tunnels::{hit_pod, http_get, wait_ready_pods};
use ferry_e2e::{ferry_forward, forwarding_address};
use ferry_e2e::{read_until, start_demo};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

type Result = anyhow::Result<()>;

/// Runs `ferry forward ARGS` until it exits (it must, within 30 s) and returns its stderr.
async fn must_fail(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<String> {
    let child = ferry_forward(kubeconfig, args)?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("ferry forward {args:?} kept running; it must fail"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ferry forward {args:?} must fail\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("Forwarding from"),
        "it must not listen anywhere: {stdout}"
    );
    Ok(stderr)
}

/// Starts `ferry forward ARGS` and returns it with every address it listens on, once there
/// are `count` Forwarding lines.
async fn listening(
    kubeconfig: &Path,
    args: &[&str],
    count: usize,
) -> anyhow::Result<(Child, Vec<SocketAddr>)> {
    let mut child = ferry_forward(kubeconfig, args)?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut found = Vec::new();
    while found.len() < count {
        let seen = read_until(
            &mut lines,
            Duration::from_secs(30),
            "a Forwarding line",
            |l| l.starts_with("Forwarding from "),
        )
        .await?;
        let line = seen.last().cloned().unwrap_or_default();
        found.push(forwarding_address(&line).expect("an address in the Forwarding line"));
    }
    Ok((child, found))
}

#[tokio::test]
async fn a_port_held_on_ipv6_loopback_only_is_refused_unless_ipv4_is_asked_for() -> Result {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    wait_ready_pods(&client, "app=kubia", 3).await?;
    let kc = cluster.kubeconfig();
    // Another program listens on [::1]:PORT only.
    let other = std::net::TcpListener::bind("[::1]:0")
        .expect("this machine has IPv6 loopback (the test needs it)");
    let port = other.local_addr()?.port();
    let ports = format!("{port}:80");

    for args in [
        vec!["svc/kubia", ports.as_str(), "--context", "demo"],
        vec![
            "svc/kubia",
            &ports,
            "--context",
            "demo",
            "--address",
            "localhost",
        ],
    ] {
        let err = must_fail(kc, &args).await?;
        assert!(
            err.contains(&format!("local port {port} on ::1 is already in use")),
            "{args:?}: {err}"
        );
    }

    // Asked for 127.0.0.1 alone: that is what it gets.
    let (mut child, addrs) = listening(
        kc,
        &[
            "svc/kubia",
            &ports,
            "--context",
            "demo",
            "--address",
            "127.0.0.1",
        ],
        1,
    )
    .await?;
    assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    assert!(hit_pod(&http_get(addrs[0], "/").await?).is_some());
    child.kill().await?;
    drop(other);
    Ok(())
}

#[tokio::test]
async fn address_localhost_listens_on_both_loopbacks() -> Result {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    wait_ready_pods(&client, "app=kubia", 3).await?;
    let (_child, addrs) = listening(
        cluster.kubeconfig(),
        &[
            "svc/kubia",
            "0:80",
            "--context",
            "demo",
            "--address",
            "localhost",
        ],
        2,
    )
    .await?;
    assert!(
        addrs
            .iter()
            .any(|a| a.ip().is_ipv4() && a.ip().is_loopback()),
        "{addrs:?}"
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.ip().is_ipv6() && a.ip().is_loopback()),
        "{addrs:?}"
    );
    assert_eq!(addrs[0].port(), addrs[1].port(), "one port number on both");
    for addr in &addrs {
        assert!(hit_pod(&http_get(*addr, "/").await?).is_some(), "{addr}");
    }
    Ok(())
}
