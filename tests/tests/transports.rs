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

/// Every connection Ferry holds to the API server has `TCP_NODELAY` set, as kubectl's (Go's)
/// do: with Nagle's algorithm on, a new local connection's SYN_STREAMs waited in the kernel for
/// the ACK of the previous small write — 22 ms of a 69 ms connect at 20 ms RTT in the
/// benchmark. Checked on the SPDY connection, the v4 WebSocket and the watches, by reading the
/// option off this process's own sockets.
#[tokio::test]
async fn every_connection_to_the_api_server_has_nagle_off_on_both_transports() -> Result {
    let env = tunnel_env().await?;
    let cluster = env.cluster.sim.primary();
    let url = env
        .cluster
        .sim
        .server_url("demo")
        .ok_or_else(|| anyhow::anyhow!("kubesim serves no cluster called demo"))?;
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {url}"))?;
    let pod = env.wait_ready_pods("app=kubia", 3).await?[0].clone();
    // The test's own admin client (kube's default stack) is not Ferry's: leave its sockets out.
    let harness: Vec<i32> = sockets_to(port).into_iter().map(|(fd, _)| fd).collect();
    let sockets_to = |port| {
        let mut found = sockets_to(port);
        found.retain(|(fd, _)| !harness.contains(fd));
        found
    };

    cluster
        .port_forward_websockets
        .store(true, Ordering::Relaxed);
    let (_, snap) = env
        .start_active(spec(&format!("pod/{pod}"), &["0:8080"]))
        .await?;
    let spdy = local_v4(&snap, 0)?;
    http_get(spdy, "/").await?;
    let with_spdy = sockets_to(port);
    assert!(
        with_spdy.len() >= 2,
        "expected the watches and the SPDY connection, found {with_spdy:?}"
    );

    cluster
        .port_forward_websockets
        .store(false, Ordering::Relaxed);
    let (_, snap) = env
        .start_active(spec(&format!("pod/{pod}"), &["0:8080"]))
        .await?;
    // A local connection that sends nothing keeps its v4 WebSocket open while it is checked.
    let opened = cluster.streams.port_forwards_opened();
    let _held = tokio::net::TcpStream::connect(local_v4(&snap, 0)?).await?;
    ferry_e2e::wait_for("the v4 WebSocket to open", SETTLE, || async {
        (cluster.streams.port_forwards_opened() > opened).then_some(())
    })
    .await?;
    let with_v4 = sockets_to(port);
    assert!(
        with_v4.len() > with_spdy.len(),
        "no new connection for the v4 WebSocket: {with_v4:?}"
    );

    for (fd, nodelay) in with_spdy.iter().chain(&with_v4) {
        assert!(
            nodelay,
            "fd {fd} to the API server has Nagle on: {with_v4:?}"
        );
    }
    Ok(())
}

/// `(fd, TCP_NODELAY)` of each TCP socket of this process connected to port `port` on
/// loopback (the clients' side; kubesim's accepted sockets have that port as their own).
fn sockets_to(port: u16) -> Vec<(i32, bool)> {
    use std::os::fd::BorrowedFd;
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: only read-only socket options are queried, for as long as this loop holds
        // the borrow; a descriptor closed meanwhile makes the calls fail, which is skipped.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let Ok(peer) = socket.peer_addr() else {
            continue;
        };
        let Some(peer) = peer.as_socket() else {
            continue;
        };
        if peer.port() == port
            && peer.ip().is_loopback()
            && let Ok(nodelay) = socket.tcp_nodelay()
        {
            found.push((fd, nodelay));
        }
    }
    found
}
