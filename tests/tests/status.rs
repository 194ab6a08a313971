//! Truthful tunnel status against kubesim over real sockets: a target that does not exist says
//! "not found" with the names that do, a pod that is not Ready is not used and says why, the
//! state changes only on evidence (no flapping under faults, no false "unreachable" after a
//! pause), and a paused API server shows as unreachable quickly.

use std::time::{Duration, Instant};

use ferry_core::engine::{EngineOptions, EventKind, TunnelId, TunnelState};
use ferry_core::tunnel::state::Reason;
use ferry_e2e::tunnels::{TunnelEnv, http_get, local_v4, spec, spec_in, tunnel_env_with};
use tokio::sync::broadcast;

type Result = anyhow::Result<()>;

const SETTLE: Duration = Duration::from_secs(10);

fn quick() -> EngineOptions {
    EngineOptions {
        ready_wait: Duration::from_secs(1),
        backoff_max: Duration::from_secs(2),
        ..Default::default()
    }
}

/// Waits for a Waiting snapshot with `reason`; returns its detail.
async fn waiting_for(env: &TunnelEnv, id: TunnelId, reason: Reason) -> anyhow::Result<String> {
    let snap = env
        .wait_snapshot(id, SETTLE, &format!("waiting with {reason:?}"), |s| {
            s.state == TunnelState::Waiting && s.reason == Some(reason)
        })
        .await?;
    Ok(snap.detail.unwrap_or_default())
}

#[tokio::test]
async fn a_target_that_does_not_exist_says_not_found_with_the_names_that_do() -> Result {
    let env = tunnel_env_with(quick()).await?;
    let id = env.engine.start(spec("svc/nope", &["0:80"]));
    let detail = waiting_for(&env, id, Reason::NotFound).await?;
    assert!(
        detail.starts_with("not found: service \"nope\" in namespace default")
            && detail.contains("kubia"),
        "{detail}"
    );
    let id = env.engine.start(spec("deploy/nope", &["0:80"]));
    let detail = waiting_for(&env, id, Reason::NotFound).await?;
    assert!(
        detail.contains("deployment \"nope\"") && detail.contains("kubia"),
        "{detail}"
    );
    let id = env.engine.start(spec("pod/nope", &["0:80"]));
    let detail = waiting_for(&env, id, Reason::NotFound).await?;
    assert!(
        detail.contains("pod \"nope\"") && detail.contains("fortune"),
        "{detail}"
    );
    let id = env
        .engine
        .start(spec_in("demo", "no-such-ns", "svc/kubia", &["0:80"]));
    let detail = waiting_for(&env, id, Reason::NotFound).await?;
    assert!(
        detail.contains("namespace \"no-such-ns\"") && detail.contains("default"),
        "{detail}"
    );
    let id = env.engine.start(spec("pod/fortune", &["0:nope"]));
    let detail = waiting_for(&env, id, Reason::NotFound).await?;
    assert!(
        detail.contains("no container port named \"nope\"") && detail.contains("http"),
        "{detail}"
    );
    Ok(())
}

/// Every state the tunnel moved to, from the event stream, until `deadline`.
async fn transitions(
    events: &mut broadcast::Receiver<ferry_core::engine::TunnelEvent>,
    id: TunnelId,
    window: Duration,
) -> Vec<(TunnelState, Option<String>)> {
    let until = tokio::time::Instant::now() + window;
    let mut seen = Vec::new();
    while let Ok(event) = tokio::time::timeout_at(until, events.recv()).await {
        match event {
            Ok(event) if event.tunnel == id => {
                if let EventKind::StateChanged { to, detail, .. } = event.kind {
                    seen.push((to, detail));
                }
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    seen
}

#[tokio::test]
async fn a_crash_looping_pod_is_not_used_and_says_why() -> Result {
    let env = tunnel_env_with(quick()).await?;
    let mut events = env.engine.events();
    let id = env.engine.start(spec("pod/flaky-worker", &["0:9100"]));
    let snap = env
        .wait_snapshot(
            id,
            SETTLE,
            "pod not ready (CrashLoopBackOff, N restarts)",
            |s| {
                s.state == TunnelState::Waiting
                    && s.reason == Some(Reason::NotReady)
                    && s.detail.as_deref().is_some_and(|d| {
                        d.starts_with("pod not ready (CrashLoopBackOff, ") && d.contains("restart")
                    })
            },
        )
        .await?;
    // A connection is not sent to the crashing pod: it waits (1 s here) and is closed.
    let answer = http_get(local_v4(&snap, 0)?, "/").await;
    assert!(answer.is_err(), "{answer:?}");
    let seen = transitions(&mut events, id, Duration::from_secs(3)).await;
    assert!(
        seen.iter().all(|(to, _)| *to != TunnelState::Active),
        "{seen:#?}"
    );
    let now = env.engine.get(id).expect("tunnel");
    assert_eq!(now.state, TunnelState::Waiting, "{now:#?}");
    Ok(())
}

/// Connects, sends a request and reads until the tunnel closes the connection.
async fn poke(addr: std::net::SocketAddr) {
    let _ = tokio::time::timeout(Duration::from_secs(3), http_get(addr, "/")).await;
}

#[tokio::test]
async fn failing_port_forwards_degrade_once_and_do_not_flap() -> Result {
    let env = tunnel_env_with(quick()).await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let pods = env.wait_ready_pods("app=kubia", 3).await?;
    let cluster = env.cluster.sim.primary();
    for pod in &pods {
        cluster
            .faults
            .fail_port_forward("default", pod, Some("connection refused".into()));
    }
    let mut events = env.engine.events();
    let hammer = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until {
            poke(addr).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let seen = transitions(&mut events, id, Duration::from_secs(6)).await;
    hammer.await?;
    let states: Vec<TunnelState> = seen.iter().map(|(s, _)| *s).collect();
    println!("transitions with every port-forward failing: {states:?}");
    assert_eq!(states, vec![TunnelState::Degraded], "{seen:#?}");
    // The pod side's own words (its error channel or stream) reach the tunnel's last error.
    let last = env.engine.get(id).and_then(|s| s.last_error);
    assert!(
        last.as_ref()
            .is_some_and(|e| e.message.contains("connection refused")),
        "{last:?}"
    );
    // Healed: the next connection that gets an answer is the evidence that restores it.
    for pod in &pods {
        cluster.faults.fail_port_forward("default", pod, None);
    }
    http_get(addr, "/").await?;
    env.wait_state(id, TunnelState::Active, SETTLE).await?;
    Ok(())
}

#[tokio::test]
async fn after_an_api_server_pause_the_state_settles_without_a_false_unreachable() -> Result {
    let env = tunnel_env_with(EngineOptions {
        connect_timeout: Duration::from_secs(5),
        ..quick()
    })
    .await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.pause();
    let during = tokio::spawn(async move {
        for _ in 0..6 {
            let _ = tokio::time::timeout(Duration::from_millis(600), http_get(addr, "/")).await;
        }
    });
    env.wait_snapshot(id, SETTLE, "unreachable", |s| {
        s.reason == Some(Reason::Unreachable)
    })
    .await?;
    during.await?;
    // Requests stuck in the pause are still pending when it ends.
    let stuck = tokio::spawn(async move { http_get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.resume();
    env.wait_state(id, TunnelState::Active, Duration::from_secs(20))
        .await?;
    let _ = stuck.await;
    let mut events = env.engine.events();
    let traffic = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            poke(addr).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let seen = transitions(&mut events, id, Duration::from_secs(10)).await;
    traffic.await?;
    assert!(seen.is_empty(), "the state moved after recovery: {seen:#?}");
    assert_eq!(
        env.engine.get(id).map(|s| s.state),
        Some(TunnelState::Active)
    );
    Ok(())
}

#[tokio::test]
async fn a_paused_api_server_shows_as_unreachable_within_two_seconds() -> Result {
    // Production defaults: a 5 s connect timeout.
    let env = tunnel_env_with(EngineOptions::default()).await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.pause();
    let started = Instant::now();
    let attempt = tokio::spawn(async move { http_get(addr, "/").await });
    env.wait_snapshot(id, SETTLE, "unreachable", |s| {
        s.state == TunnelState::Waiting && s.reason == Some(Reason::Unreachable)
    })
    .await?;
    let noticed = started.elapsed();
    println!("paused API server shown as unreachable after {noticed:?}");
    server.resume();
    attempt.abort();
    // Generous for a loaded machine, and still well under the 5 s connect timeout.
    assert!(noticed < Duration::from_millis(4000), "took {noticed:?}");
    env.wait_state(id, TunnelState::Active, Duration::from_secs(20))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_long_api_server_pause_ends_in_active_without_a_later_false_unreachable() -> Result {
    // Production timeouts and backoff: during a pause of 15 s the watches' retry delays grow to
    // several seconds, as they do for a user, so the watches come back well after the server
    // does, and connections keep failing (5 s connect timeout) until just before it ends.
    let env = tunnel_env_with(EngineOptions::default()).await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let server = env.cluster.sim.server("demo").expect("demo server");
    server.pause();
    let during = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(600), http_get(addr, "/")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    env.wait_snapshot(id, SETTLE, "unreachable", |s| {
        s.reason == Some(Reason::Unreachable)
    })
    .await?;
    during.await?;
    // A request stuck in the pause is still pending when it ends.
    let stuck = tokio::spawn(async move { http_get(addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.resume();
    let resumed = Instant::now();
    let traffic = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(35);
        while Instant::now() < until {
            poke(addr).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    env.wait_state(id, TunnelState::Active, Duration::from_secs(20))
        .await?;
    println!("active again {:?} after the pause ended", resumed.elapsed());
    let _ = stuck.await;
    // The watches' delayed retries, the stuck request and the requests made during the pause
    // all end in this window: none of them may move the state.
    let mut events = env.engine.events();
    let seen = transitions(&mut events, id, Duration::from_secs(15)).await;
    traffic.abort();
    assert!(seen.is_empty(), "the state moved after recovery: {seen:#?}");
    assert_eq!(
        env.engine.get(id).map(|s| s.state),
        Some(TunnelState::Active)
    );
    Ok(())
}
