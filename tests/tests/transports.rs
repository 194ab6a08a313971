//! Which port-forward protocol a tunnel uses: SPDY over WebSocket (one connection per pod,
//! shared by every local connection) where the API server offers it, the v4 WebSocket (one per
//! local connection) where it does not, and a broken SPDY connection replaced without failing
//! the local connections that had not sent anything yet.
//!
//! The rest of the tunnel tests run once per transport (`tests/run`); these tests set the
//! cluster's `PortForwardWebsockets` gate themselves.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ferry_core::tunnel::Transport;
use ferry_e2e::tunnels::{http_get, local_v4, spec, tunnel_env};

type Result = anyhow::Result<()>;

const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn connections_to_a_pod_share_one_spdy_connection_and_fall_back_to_v4_without_it() -> Result {
    let env = tunnel_env().await?;
    let cluster = env.cluster.sim.primary();
    cluster
        .port_forward_websockets
        .store(true, Ordering::Relaxed);
    let pod = env.wait_ready_pods("app=kubia", 3).await?[0].clone();
    let target = format!("pod/{pod}");

    let (id, snap) = env.start_active(spec(&target, &["0:8080"])).await?;
    let addr = local_v4(&snap, 0)?;
    let before = cluster.streams.port_forwards_opened();
    for _ in 0..10 {
        assert!(http_get(addr, "/").await?.contains(&pod));
    }
    let together = futures::future::join_all((0..20).map(|_| http_get(addr, "/"))).await;
    for answer in together {
        assert!(answer?.contains(&pod));
    }
    assert_eq!(
        cluster.streams.port_forwards_opened() - before,
        1,
        "30 local connections, 20 of them at once, should share one SPDY connection"
    );
    let snap = env
        .wait_snapshot(id, SETTLE, "the transport to be known", |s| {
            s.transport.is_some()
        })
        .await?;
    assert_eq!(snap.transport, Some(Transport::Spdy));
    assert_eq!(snap.errors, 0, "{snap:#?}");
    env.engine.remove(id);

    // An API server without SPDY tunnelling: every local connection gets a v4 WebSocket.
    cluster
        .port_forward_websockets
        .store(false, Ordering::Relaxed);
    let (id, snap) = env.start_active(spec(&target, &["0:8080"])).await?;
    let addr = local_v4(&snap, 0)?;
    let before = cluster.streams.port_forwards_opened();
    for _ in 0..5 {
        assert!(http_get(addr, "/").await?.contains(&pod));
    }
    assert_eq!(cluster.streams.port_forwards_opened() - before, 5);
    let snap = env
        .wait_snapshot(id, SETTLE, "the transport to be known", |s| {
            s.transport.is_some()
        })
        .await?;
    assert_eq!(snap.transport, Some(Transport::WebSocket));
    assert_eq!(snap.errors, 0, "{snap:#?}");
    Ok(())
}

#[tokio::test]
async fn a_dropped_spdy_connection_is_replaced_without_failing_new_connections() -> Result {
    let env = tunnel_env().await?;
    let cluster = env.cluster.sim.primary();
    cluster
        .port_forward_websockets
        .store(true, Ordering::Relaxed);
    let pod = env.wait_ready_pods("app=kubia", 3).await?[0].clone();
    let (id, snap) = env
        .start_active(spec(&format!("pod/{pod}"), &["0:8080"]))
        .await?;
    let addr = local_v4(&snap, 0)?;
    http_get(addr, "/").await?;
    let before = cluster.streams.port_forwards_opened();
    for round in 0..20 {
        // The API server cuts every stream (as a restart or a network cut does); the next
        // local connection comes at once, before or after Ferry noticed.
        kubesim::faults::drop_streams(&cluster);
        let answer = http_get(addr, "/").await;
        assert!(
            answer.as_ref().is_ok_and(|a| a.contains(&pod)),
            "round {round}: {answer:?}"
        );
    }
    let opened = cluster.streams.port_forwards_opened() - before;
    assert_eq!(opened, 20, "one new connection per cut");
    let snap = env
        .wait_snapshot(id, SETTLE, "all connections to end", |s| {
            s.active_connections == 0
        })
        .await?;
    assert_eq!(snap.errors, 0, "{snap:#?}");
    assert_eq!(snap.transport, Some(Transport::Spdy));
    Ok(())
}

/// The suite runs the tunnel tests twice (`tests/run`): this checks that each pass really
/// forwards over the transport it is meant to test.
#[tokio::test]
async fn this_pass_of_the_suite_forwards_over_its_transport() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    http_get(local_v4(&snap, 0)?, "/").await?;
    let snap = env
        .wait_snapshot(id, SETTLE, "the transport to be known", |s| {
            s.transport.is_some()
        })
        .await?;
    let expected = if ferry_e2e::transport_pass_without_spdy() {
        Transport::WebSocket
    } else {
        Transport::Spdy
    };
    assert_eq!(snap.transport, Some(expected));
    Ok(())
}
