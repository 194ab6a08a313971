//! The real `kubectl port-forward` (v1.32) through kubesim's SPDY server, on both of its
//! transports: the WebSocket tunnel (`SPDY/3.1+portforward.k8s.io`, kubectl's default) and the
//! legacy `Upgrade: SPDY/3.1` (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`). kubectl decodes what
//! kubesim encodes and the other way round, so the codec is judged in both directions.

use std::time::Duration;

use anyhow::Context;
use ferry_e2e::kubectl_forward::{self, Transport};
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::tunnels::{hit_pod, http_get};
use ferry_e2e::{TestCluster, start_demo, start_empty, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Result = anyhow::Result<()>;

async fn kubia_pods(cluster: &TestCluster) -> anyhow::Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    wait_for("three Running kubia pods", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=kubia"))
                .await
                .ok()?
                .items;
            let running: Vec<String> = list
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (running.len() == 3).then_some(running)
        }
    })
    .await
}

/// GET / through the forward; the kubia pod that answered.
async fn hit(forward: &kubectl_forward::Forward) -> anyhow::Result<String> {
    let body = http_get(forward.addr(), "/")
        .await
        .with_context(|| format!("through kubectl; its stderr: {}", forward.stderr()))?;
    hit_pod(&body).with_context(|| format!("not a kubia answer: {body}"))
}

#[tokio::test]
async fn kubectl_forwards_to_pods_services_and_deployments_over_both_transports() -> Result {
    let cluster = start_demo().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    let pods = kubia_pods(&cluster).await?;
    for transport in Transport::BOTH {
        let target = format!("pod/{}", pods[0]);
        let pf = kubectl_forward::start(&kubectl, transport, "default", &target, "0:8080").await?;
        assert_eq!(pf.remote, 8080);
        // Several connections over the one kubectl connection, each its own stream pair.
        for _ in 0..3 {
            assert_eq!(hit(&pf).await?, pods[0], "{transport:?} {target}");
        }
        drop(pf);

        for (target, ports) in [
            ("svc/kubia", "0:80"),
            ("svc/kubia", "0:http"),
            ("deploy/kubia", "0:8080"),
        ] {
            let pf = kubectl_forward::start(&kubectl, transport, "default", target, ports).await?;
            assert_eq!(pf.remote, 8080, "{transport:?} {target} {ports}");
            let answered = hit(&pf).await?;
            assert!(
                pods.contains(&answered),
                "{transport:?} {target}: {answered} is not a kubia pod"
            );
        }
    }
    Ok(())
}

async fn echo_pod(cluster: &TestCluster, name: &str) -> anyhow::Result<()> {
    let client = cluster.client("demo").await?;
    create_running_pod(&client, test_pod(name, false)).await?;
    Ok(())
}

/// Writes `len` bytes of a pattern and reads the echo back concurrently; both SHA-256s.
async fn echo_round_trip(
    addr: std::net::SocketAddr,
    len: usize,
) -> anyhow::Result<([u8; 32], [u8; 32])> {
    let stream = TcpStream::connect(addr).await?;
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut h = Sha256::new();
        let mut block = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        let mut x: u32 = 12345;
        while sent < len {
            let n = block.len().min(len - sent);
            for b in &mut block[..n] {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
            w.write_all(&block[..n]).await?;
            h.update(&block[..n]);
            sent += n;
        }
        w.shutdown().await?;
        anyhow::Ok(<[u8; 32]>::from(h.finalize()))
    });
    let mut h = Sha256::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < len {
        let n = r.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the echo ended after {got} of {len} bytes");
        h.update(&buf[..n]);
        got += n;
    }
    let sent = writer.await??;
    Ok((sent, h.finalize().into()))
}

#[tokio::test]
async fn a_hundred_megabytes_echo_through_kubectl_with_equal_sha256_on_both_transports() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    echo_pod(&cluster, "echo").await?;
    for transport in Transport::BOTH {
        let pf = kubectl_forward::start(&kubectl, transport, "default", "pod/echo", "0:7").await?;
        let (sent, received) = tokio::time::timeout(
            Duration::from_secs(120),
            echo_round_trip(pf.addr(), 100 * 1024 * 1024),
        )
        .await
        .with_context(|| format!("{transport:?}: 100 MB did not echo within 120 s"))??;
        assert_eq!(
            sent,
            received,
            "{transport:?}: the echo differs; kubectl: {}",
            pf.stderr()
        );
    }
    Ok(())
}

async fn expect_lost_connection(pf: &mut kubectl_forward::Forward, transport: Transport) -> Result {
    let status = tokio::time::timeout(Duration::from_secs(30), pf.child.wait())
        .await
        .with_context(|| format!("{transport:?}: kubectl still runs; stderr: {}", pf.stderr()))??;
    assert!(!status.success(), "{transport:?}: kubectl exited 0");
    let stderr = wait_for("kubectl's last words", Duration::from_secs(5), || {
        let s = pf.stderr();
        async move { s.contains("lost connection to pod").then_some(s) }
    })
    .await
    .with_context(|| format!("{transport:?}: stderr was {}", pf.stderr()))?;
    assert!(
        stderr.contains("error forwarding port 7 to pod"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_the_pod_makes_kubectl_report_lost_connection_on_both_transports() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    let pods: Api<Pod> = Api::default_namespaced(cluster.client("demo").await?);
    for transport in Transport::BOTH {
        let name = format!("doomed-{}", format!("{transport:?}").to_lowercase());
        echo_pod(&cluster, &name).await?;
        let mut pf = kubectl_forward::start(
            &kubectl,
            transport,
            "default",
            &format!("pod/{name}"),
            "0:7",
        )
        .await?;
        // An open connection with traffic on it when the pod goes.
        let mut conn = TcpStream::connect(pf.addr()).await?;
        conn.write_all(b"ping\n").await?;
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut buf)).await??;
        assert_eq!(&buf, b"ping\n");
        pods.delete(&name, &Default::default()).await?;
        expect_lost_connection(&mut pf, transport).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_port_nothing_listens_on_is_reported_in_the_kubelets_words() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    echo_pod(&cluster, "shut").await?;
    for transport in Transport::BOTH {
        let mut pf =
            kubectl_forward::start(&kubectl, transport, "default", "pod/shut", "0:13").await?;
        let mut conn = TcpStream::connect(pf.addr()).await?;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
        let status = tokio::time::timeout(Duration::from_secs(30), pf.child.wait()).await??;
        assert!(!status.success());
        let stderr = pf.stderr();
        assert!(
            stderr.contains("error forwarding port 13 to pod")
                && stderr.contains("connect: connection refused"),
            "{transport:?}: {stderr}"
        );
    }
    Ok(())
}

/// Which HTTP requests kubectl made (`-v=6` logs each round trip with its verb).
#[tokio::test]
async fn each_transport_is_the_one_kubectl_was_asked_for() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    echo_pod(&cluster, "which").await?;
    for transport in Transport::BOTH {
        let mut child = transport.kubectl(&kubectl).spawn(&[
            "port-forward",
            "-v=6",
            "pod/which",
            "0:7",
            "--address",
            "127.0.0.1",
        ])?;
        let mut stdout = child.stdout.take().context("stdout")?;
        let mut line = [0u8; 16];
        tokio::time::timeout(Duration::from_secs(30), stdout.read_exact(&mut line)).await??;
        child.start_kill()?;
        let out = child.wait_with_output().await?;
        let log = String::from_utf8_lossy(&out.stderr);
        let line = log
            .lines()
            .find(|l| l.contains("/pods/which/portforward"))
            .with_context(|| format!("no portforward request logged:\n{log}"))?;
        let verb = match transport {
            Transport::Tunnel => "GET",
            Transport::Upgrade => "POST",
        };
        assert!(line.contains(verb), "{transport:?}: {line}");
    }
    Ok(())
}
