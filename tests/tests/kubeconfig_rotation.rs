//! Issue 10 item 12: the API server comes back with a new certificate and new tokens written
//! to the same kubeconfig (what a re-login, `aws eks update-kubeconfig` or a certificate
//! rotation does). A running tunnel must pick them up by itself — the kubeconfig is watched —
//! instead of saying "invalid peer certificate" forever while kubectl works.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferry_core::clients::ClientPool;
use ferry_core::engine::{Engine, EngineOptions, TunnelState};
use ferry_e2e::tunnels::{hit_pod, http_get, local_v4, spec, wait_ready_pods};
use ferry_e2e::wait_for;
use kubesim::{Kubesim, KubesimConfig, Timing, World};

/// A kubesim with the demo world on `port`, writing its kubeconfig (a new CA and new tokens at
/// every start) to `kubeconfig`.
async fn kubesim_on(port: u16, kubeconfig: &Path) -> anyhow::Result<Kubesim> {
    let sim = Kubesim::start(KubesimConfig {
        world: World::demo(),
        port: Some(port),
        timing: Timing::fast(),
        kubeconfig_path: Some(kubeconfig.to_path_buf()),
        ..KubesimConfig::default()
    })
    .await
    .context("kubesim did not start")?;
    let client = ferry_e2e::client_for(kubeconfig, "demo").await?;
    wait_ready_pods(&client, "app=kubia", 3).await?;
    Ok(sim)
}

#[tokio::test]
async fn a_tunnel_recovers_when_the_kubeconfig_gets_a_new_ca_and_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let first = kubesim_on(port, &kubeconfig).await?;
    let old_text = std::fs::read_to_string(&kubeconfig)?;

    let pool = ClientPool::from_paths(std::slice::from_ref(&kubeconfig))?;
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool),
        EngineOptions::default(),
    );
    let id = engine.start(spec("svc/kubia", &["0:80"]));
    let snap = engine
        .wait_for(id, Duration::from_secs(10), |s| {
            s.state == TunnelState::Active
        })
        .await
        .map_err(|s| anyhow::anyhow!("the tunnel never became active: {s:#?}"))?;
    let addr = local_v4(&snap, 0)?;
    let body = http_get(addr, "/").await?;
    assert!(hit_pod(&body).is_some(), "{body}");

    // The server goes away and comes back on the same address with a new CA and new tokens,
    // written into the same kubeconfig.
    first.shutdown().await;
    let second = kubesim_on(port, &kubeconfig).await?;
    let changed = std::fs::metadata(&kubeconfig)?.modified()?;
    assert_ne!(
        std::fs::read_to_string(&kubeconfig)?,
        old_text,
        "the second kubesim wrote new credentials"
    );

    // The issue asks for recovery within 5 s of the file change; the deadline here is wider
    // so a loaded machine does not fail the test, and the time taken is printed.
    let answered = wait_for(
        "an answer through the tunnel with the new certificate",
        Duration::from_secs(30),
        || async move { http_get(addr, "/").await.ok().and_then(|b| hit_pod(&b)) },
    )
    .await?;
    eprintln!(
        "answered by {answered} {:.2} s after the kubeconfig was rewritten",
        changed.elapsed().unwrap_or_default().as_secs_f64()
    );
    engine
        .wait_for(id, Duration::from_secs(30), |s| {
            s.state == TunnelState::Active
        })
        .await
        .map_err(|s| anyhow::anyhow!("the tunnel did not say active again: {s:#?}"))?;
    drop(second);
    Ok(())
}
