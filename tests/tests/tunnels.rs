//! Tunnels against kubesim over real sockets: every target kind, pod replacement, rollouts,
//! waiting for Ready pods, API server outages, spreading, big and many transfers, and the
//! errors a person sees.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ferry_core::engine::{EngineOptions, EventKind, TunnelState};
use ferry_core::spec::Spread;
use ferry_e2e::tunnels::{
    TunnelEnv, hit_pod, http_get, local_v4, spec, spec_in, tunnel_env, tunnel_env_with,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Result = anyhow::Result<()>;

const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn service_tunnel_listens_on_loopback_and_reaches_a_kubia_pod() -> Result {
    let env = tunnel_env().await?;
    let (_, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    assert_eq!(snap.pods.len(), 1, "{snap:#?}");
    assert_eq!(
        snap.ports[0].remote,
        Some(8080),
        "port 80 → targetPort 8080"
    );
    assert!(
        snap.ports[0].local.iter().all(|a| a.ip().is_loopback()),
        "{snap:#?}"
    );
    let body = http_get(local_v4(&snap, 0)?, "/").await?;
    assert_eq!(
        hit_pod(&body).as_deref(),
        Some(snap.pods[0].as_str()),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn named_target_port_is_resolved_per_pod() -> Result {
    let env = tunnel_env().await?;
    let (_, snap) = env.start_active(spec("svc/kubia", &[":443"])).await?;
    assert_eq!(
        snap.ports[0].remote,
        Some(8443),
        "targetPort https → container port 8443"
    );
    let body = http_get(local_v4(&snap, 0)?, "/").await?;
    assert!(hit_pod(&body).is_some(), "{body}");
    Ok(())
}

#[tokio::test]
async fn pod_deployment_and_selector_targets_reach_their_pods() -> Result {
    let env = tunnel_env().await?;
    let pods = env.wait_ready_pods("app=kubia", 3).await?;
    for target in [
        format!("pod/{}", pods[0]),
        "deploy/kubia".into(),
        "app=kubia".into(),
    ] {
        let (_, snap) = env.start_active(spec(&target, &[":8080"])).await?;
        let body = http_get(local_v4(&snap, 0)?, "/").await?;
        let hit = hit_pod(&body).unwrap_or_default();
        assert!(pods.contains(&hit), "{target}: {body}");
        if target.starts_with("pod/") {
            assert_eq!(hit, pods[0]);
        }
    }
    Ok(())
}

#[tokio::test]
async fn several_ports_in_one_tunnel_each_forward() -> Result {
    let env = tunnel_env().await?;
    let (_, snap) = env
        .start_active(spec("deploy/kubia", &[":http", ":8443"]))
        .await?;
    assert_eq!(snap.ports.len(), 2);
    assert_eq!(snap.ports[0].remote, Some(8080));
    assert_eq!(snap.ports[1].remote, Some(8443));
    for i in 0..2 {
        let body = http_get(local_v4(&snap, i)?, "/").await?;
        assert!(hit_pod(&body).is_some(), "port {i}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn service_tunnel_survives_pod_replacement() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let serving = hit_pod(&http_get(addr, "/").await?).unwrap_or_default();
    env.delete_pod(&serving).await?;
    let after = env
        .wait_snapshot(id, SETTLE, "a new serving pod", |s| {
            s.state == TunnelState::Active && s.pods.first().is_some_and(|p| *p != serving)
        })
        .await?;
    let started = Instant::now();
    let body = http_get(addr, "/").await?;
    let hit = hit_pod(&body).unwrap_or_default();
    assert_ne!(hit, serving, "the deleted pod must not answer");
    assert_eq!(hit, after.pods[0]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        started.elapsed()
    );
    // The replacement the deployment creates becomes Ready; the local port never closed.
    env.wait_ready_pods("app=kubia", 3).await?;
    for _ in 0..5 {
        assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    }
    Ok(())
}

#[tokio::test]
async fn rollout_scale_down_and_up_keeps_the_tunnel_serving() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let before: HashSet<String> = env
        .wait_ready_pods("app=kubia", 3)
        .await?
        .into_iter()
        .collect();
    for pod in &before {
        env.delete_pod(pod).await?;
    }
    let after = env
        .wait_snapshot(id, SETTLE, "a pod not from before", |s| {
            s.state == TunnelState::Active && s.pods.first().is_some_and(|p| !before.contains(p))
        })
        .await?;
    let hit = hit_pod(&http_get(addr, "/").await?).unwrap_or_default();
    assert!(
        !before.contains(&hit),
        "all pods replaced; got {hit}, now {:?}",
        after.pods
    );
    env.scale("kubia", 1).await?;
    env.wait_ready_pods("app=kubia", 1).await?;
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    env.scale("kubia", 3).await?;
    env.wait_ready_pods("app=kubia", 3).await?;
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    Ok(())
}

#[tokio::test]
async fn no_ready_pod_means_waiting_then_recovers_by_itself() -> Result {
    let env = tunnel_env_with(EngineOptions {
        ready_wait: Duration::from_secs(1),
        ..Default::default()
    })
    .await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    env.scale("kubia", 0).await?;
    let waiting = env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    assert!(
        waiting
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("waiting for a ready pod"),
        "{waiting:#?}"
    );
    // A connection now waits up to the bound, then is closed.
    let started = Instant::now();
    let closed = http_get(addr, "/").await;
    assert!(closed.is_err(), "no pod can answer: {closed:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited {:?}",
        started.elapsed()
    );
    env.scale("kubia", 2).await?;
    env.wait_state(id, TunnelState::Active, SETTLE).await?;
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    Ok(())
}

#[tokio::test]
async fn a_connection_waiting_for_a_pod_is_served_when_one_becomes_ready() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    env.scale("kubia", 0).await?;
    env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    let request = tokio::spawn(http_get(addr, "/"));
    env.scale("kubia", 1).await?;
    let body = request.await??;
    assert!(hit_pod(&body).is_some(), "{body}");
    Ok(())
}

/// Reads `n` bytes of `/bytes/n`-style data or echoes: here, sends `size` random bytes to an
/// echo port and checks the SHA-256 of what comes back.
async fn echo_roundtrip(
    addr: std::net::SocketAddr,
    size: usize,
    seed: u8,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        let mut x = u32::from(seed) | 1;
        while sent < size {
            let n = chunk.len().min(size - sent);
            for b in &mut chunk[..n] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            write.write_all(&chunk[..n]).await?;
            hash.update(&chunk[..n]);
            sent += n;
        }
        anyhow::Ok((hash.finalize().to_vec(), write))
    });
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    while got < size {
        let n = read.read(&mut buf).await?;
        if n == 0 {
            anyhow::bail!("stream ended after {got} of {size} bytes");
        }
        hash.update(&buf[..n]);
        got += n;
    }
    let (sent_hash, _write) = writer.await??;
    Ok((sent_hash, hash.finalize().to_vec()))
}

#[tokio::test]
async fn two_hundred_concurrent_connections_arrive_intact() -> Result {
    let env = tunnel_env().await?;
    // shop/postgres's simulated port echoes what it receives.
    let (_, snap) = env
        .start_active(spec_in("demo", "shop", "svc/postgres", &["0:5432"]))
        .await?;
    let addr = local_v4(&snap, 0)?;
    let tasks: Vec<_> = (0..200)
        .map(|i| tokio::spawn(echo_roundtrip(addr, 256 * 1024, i as u8)))
        .collect();
    for task in tasks {
        let (sent, got) = task.await??;
        assert_eq!(sent, got);
    }
    Ok(())
}

#[tokio::test]
async fn spread_round_robin_hits_every_ready_pod() -> Result {
    let env = tunnel_env().await?;
    let mut s = spec("svc/kubia", &["0:80"]);
    s.spread = Spread::RoundRobin;
    let (_, snap) = env.start_active(s).await?;
    assert_eq!(
        snap.pods.len(),
        3,
        "spread lists every Ready pod: {snap:#?}"
    );
    let addr = local_v4(&snap, 0)?;
    let mut hits: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        *hits
            .entry(hit_pod(&http_get(addr, "/").await?).unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert!(hits.values().all(|&n| n >= 80), "roughly even: {hits:?}");
    Ok(())
}

#[tokio::test]
async fn spread_with_service_affinity_keeps_one_client_on_one_pod() -> Result {
    let env = tunnel_env().await?;
    let mut s = spec("svc/kubia-sticky", &["0:80"]);
    s.spread = Spread::FollowService;
    let (_, snap) = env.start_active(s).await?;
    let addr = local_v4(&snap, 0)?;
    let hits: HashSet<String> = {
        let mut set = HashSet::new();
        for _ in 0..30 {
            set.insert(hit_pod(&http_get(addr, "/").await?).unwrap_or_default());
        }
        set
    };
    assert_eq!(
        hits.len(),
        1,
        "sessionAffinity ClientIP: one client, one pod: {hits:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_local_port_in_use_fails_with_the_port_and_a_free_one() -> Result {
    let env = tunnel_env().await?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let id = env
        .engine
        .start(spec("svc/kubia", &[&format!("{port}:80")]));
    let snap = env.wait_state(id, TunnelState::Failed, SETTLE).await?;
    let detail = snap.detail.unwrap_or_default();
    assert!(
        detail.contains(&format!("local port {port}")) && detail.contains("is free"),
        "{detail}"
    );
    Ok(())
}

#[tokio::test]
async fn a_service_without_selector_is_refused_with_the_reason() -> Result {
    let env = tunnel_env().await?;
    let id = env.engine.start(spec("svc/external-service", &["0:80"]));
    let snap = env.wait_state(id, TunnelState::Failed, SETTLE).await?;
    assert!(snap.detail.unwrap_or_default().contains("has no selector"));
    Ok(())
}

#[tokio::test]
async fn a_missing_named_port_lists_the_names_that_exist() -> Result {
    let env = tunnel_env().await?;
    let id = env.engine.start(spec("deploy/kubia", &["0:metrics"]));
    let snap = env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    let detail = snap.detail.unwrap_or_default();
    assert!(
        detail.contains("metrics") && detail.contains("http") && detail.contains("https"),
        "{detail}"
    );
    let id = env.engine.start(spec("svc/kubia", &["0:metrics"]));
    let snap = env.wait_state(id, TunnelState::Failed, SETTLE).await?;
    assert!(
        snap.detail
            .unwrap_or_default()
            .contains("no port named \"metrics\"")
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_service_waits_and_says_so() -> Result {
    let env = tunnel_env().await?;
    let id = env.engine.start(spec("svc/nope", &["0:80"]));
    let snap = env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    assert!(
        snap.detail
            .unwrap_or_default()
            .starts_with("not found: service \"nope\" in namespace default")
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_context_fails_naming_the_known_ones() -> Result {
    let env = tunnel_env().await?;
    let id = env
        .engine
        .start(spec_in("nowhere", "default", "svc/kubia", &["0:80"]));
    let snap = env.wait_state(id, TunnelState::Failed, SETTLE).await?;
    let detail = snap.detail.unwrap_or_default();
    assert!(
        detail.contains("nowhere") && detail.contains("demo"),
        "{detail}"
    );
    Ok(())
}

#[tokio::test]
async fn the_viewer_context_fails_at_once_naming_the_missing_permission() -> Result {
    let env = tunnel_env().await?;
    let id = env
        .engine
        .start(spec_in("demo-viewer", "default", "svc/kubia", &["0:80"]));
    // The tunnel must never claim Active: it could not serve a single connection.
    let failed = env.wait_state(id, TunnelState::Failed, SETTLE).await?;
    let detail = failed.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("create pods/portforward in namespace default"),
        "{detail}"
    );
    assert_eq!(failed.total_connections, 0, "{failed:#?}");
    assert!(
        failed.recent_events.iter().all(|e| !matches!(
            &e.kind,
            EventKind::StateChanged {
                to: TunnelState::Active,
                ..
            }
        )),
        "{:#?}",
        failed.recent_events
    );
    Ok(())
}

#[tokio::test]
async fn api_server_restart_goes_waiting_then_active_by_itself() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.stop().await;
    env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    server.restart().await?;
    let back = env
        .wait_state(id, TunnelState::Active, Duration::from_secs(15))
        .await?;
    assert!(back.reconnects >= 1, "{back:#?}");
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    Ok(())
}

#[tokio::test]
async fn api_server_pause_is_noticed_and_recovered_from() -> Result {
    let env = tunnel_env_with(EngineOptions {
        connect_timeout: Duration::from_secs(1),
        ready_wait: Duration::from_secs(2),
        // The behaviour under test is "recovers by itself", not the 30 s cap.
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    })
    .await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.pause();
    // A connection during the pause cannot be forwarded; the tunnel says why.
    let _ = http_get(addr, "/").await;
    let waiting = env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    assert!(waiting.detail.unwrap_or_default().contains("unreachable"));
    server.resume();
    env.wait_state(id, TunnelState::Active, Duration::from_secs(35))
        .await?;
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    Ok(())
}

#[tokio::test]
async fn events_report_pod_switches() -> Result {
    let env = tunnel_env().await?;
    let mut events = env.engine.events();
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    env.delete_pod(&snap.pods[0]).await?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv()).await??;
        if event.tunnel == id
            && let EventKind::PodsChanged { previous, current } = &event.kind
            && previous == &snap.pods
            && !current.is_empty()
        {
            break;
        }
    }
    Ok(())
}

#[tokio::test]
async fn stop_closes_the_port_and_restart_reopens_it() -> Result {
    let env: TunnelEnv = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    env.engine.stop(id);
    env.wait_state(id, TunnelState::Stopped, SETTLE).await?;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener must be closed"
    );
    env.engine.restart(id);
    let snap = env.wait_state(id, TunnelState::Active, SETTLE).await?;
    assert!(hit_pod(&http_get(local_v4(&snap, 0)?, "/").await?).is_some());
    env.engine.remove(id);
    let engine = env.engine.clone();
    ferry_e2e::wait_for("the tunnel to disappear", SETTLE, || {
        let gone = engine.get(id).is_none();
        async move { gone.then_some(()) }
    })
    .await?;
    Ok(())
}

/// Bytes for the big-transfer test: 1 GiB unless `FERRY_E2E_BIG_BYTES` says otherwise (debug
/// builds are slow; the timing is printed either way).
fn big_transfer_size() -> usize {
    std::env::var("FERRY_E2E_BIG_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

#[tokio::test]
async fn one_gibibyte_through_a_tunnel_arrives_intact() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env
        .start_active(spec_in("demo", "shop", "svc/postgres", &["0:5432"]))
        .await?;
    let size = big_transfer_size();
    let started = Instant::now();
    let (sent, got) = echo_roundtrip(local_v4(&snap, 0)?, size, 7).await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{size} bytes echoed through the tunnel in {secs:.1} s ({:.1} MiB/s each way)",
        size as f64 / secs / 1048576.0
    );
    assert_eq!(sent, got, "SHA-256 of what was sent and what came back");
    // Both counters are published with the next snapshot, not at the instant the last byte
    // passes, so wait for both rather than reading one snapshot that caught them mid-update.
    let after = env
        .wait_snapshot(id, SETTLE, "byte counters", |s| {
            s.bytes_sent >= size as u64 && s.bytes_received >= size as u64
        })
        .await?;
    assert_eq!(after.bytes_sent, size as u64, "{after:#?}");
    assert_eq!(after.bytes_received, size as u64, "{after:#?}");
    Ok(())
}

#[tokio::test]
async fn a_pod_killed_mid_transfer_ends_only_its_own_connection() -> Result {
    let env = tunnel_env().await?;
    let (victim_pod, other_pod) = env.echo_pods("echo", 2).await?;
    let (victim_id, victim) = env
        .start_active(spec(&format!("pod/{victim_pod}"), &["0:7777"]))
        .await?;
    let (other_id, other) = env
        .start_active(spec(&format!("pod/{other_pod}"), &["0:7777"]))
        .await?;
    // Far more than can be echoed before the pod is deleted, however fast the path: the
    // doomed transfer can only end by its pod going away.
    let endless = 1 << 40;
    let doomed = tokio::spawn(echo_roundtrip(local_v4(&victim, 0)?, endless, 1));
    let survivors: Vec<_> = (0..10)
        .map(|i| {
            let addr = local_v4(&other, 0);
            tokio::spawn(async move { echo_roundtrip(addr?, 8 << 20, i + 2).await })
        })
        .collect();
    // Let every transfer get going, then kill the victim's pod.
    env.wait_snapshot(victim_id, SETTLE, "bytes flowing", |s| {
        s.bytes_received > 1 << 20
    })
    .await?;
    env.delete_pod(&victim_pod).await?;
    let ended = tokio::time::timeout(SETTLE, doomed).await?;
    assert!(
        ended?.is_err(),
        "the killed pod's connection must end, not complete"
    );
    for task in survivors {
        let (sent, got) = task.await??;
        assert_eq!(sent, got, "connections to other pods are untouched");
    }
    let other_snap = env.engine.get(other_id).expect("other tunnel");
    assert_eq!(other_snap.state, TunnelState::Active);
    Ok(())
}

#[tokio::test]
async fn a_clock_jump_re_establishes_the_watches_and_keeps_serving() -> Result {
    let env = tunnel_env().await?;
    let mut events = env.engine.events();
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    env.engine.clock_jumped(600);
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv()).await??;
        if event.tunnel == id && event.kind == (EventKind::ClockJumped { seconds: 600 }) {
            break;
        }
    }
    let after = env
        .wait_snapshot(id, SETTLE, "a re-established watch", |s| {
            s.reconnects > snap.reconnects && s.state == TunnelState::Active
        })
        .await?;
    assert!(hit_pod(&http_get(local_v4(&after, 0)?, "/").await?).is_some());
    Ok(())
}

#[tokio::test]
async fn an_idle_tunnel_notices_a_stalled_api_server() -> Result {
    let env = tunnel_env_with(EngineOptions {
        connect_timeout: Duration::from_secs(1),
        quiet_relist: Duration::from_secs(2),
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    })
    .await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.pause();
    // No traffic at all: the quiet re-list finds the server silent.
    let waiting = env.wait_state(id, TunnelState::Waiting, SETTLE).await?;
    assert!(waiting.detail.unwrap_or_default().contains("unreachable"));
    server.resume();
    env.wait_state(id, TunnelState::Active, Duration::from_secs(15))
        .await?;
    assert!(hit_pod(&http_get(local_v4(&snap, 0)?, "/").await?).is_some());
    Ok(())
}
