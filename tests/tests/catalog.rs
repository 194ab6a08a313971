//! The catalog against kubesim over real sockets: live lists that follow changes without
//! polling, the namespace fallback for users who may not list namespaces, permission hints, and
//! recovery when the API server goes away and comes back.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::ClientPool;
use ferry_core::catalog::{Catalog, CatalogView, ConnectionState, ListKind, ListState};
use ferry_core::engine::{Engine, EngineOptions};
use ferry_core::errors::ClusterError;
use ferry_e2e::tunnels::{spec, tunnel_env};
use ferry_e2e::{TestCluster, start_demo, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use tokio::sync::watch;

type Result = anyhow::Result<()>;

const DEADLINE: Duration = Duration::from_secs(15);

fn pool(cluster: &TestCluster) -> anyhow::Result<ClientPool> {
    Ok(ClientPool::from_paths(&[cluster
        .kubeconfig()
        .to_path_buf()])?)
}

/// A catalog on an engine of its own, as the instance runs it (the catalog watches through the
/// engine's feeds). Keep the engine: its clock check ends with it.
fn start(
    cluster: &TestCluster,
    context: &str,
    namespace: Option<&str>,
) -> anyhow::Result<(Engine, Catalog)> {
    let pool = pool(cluster)?;
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool.clone()),
        EngineOptions::default(),
    );
    let catalog = Catalog::start(&engine, &pool, context, namespace);
    Ok((engine, catalog))
}

/// Waits (on change notifications, not polling) until `pred` holds for the view.
async fn until(
    rx: &mut watch::Receiver<CatalogView>,
    what: &str,
    pred: impl Fn(&CatalogView) -> bool,
) -> anyhow::Result<CatalogView> {
    let wait = async {
        loop {
            {
                let view = rx.borrow_and_update();
                if pred(&view) {
                    return Ok(view.clone());
                }
            }
            rx.changed().await?;
        }
    };
    match tokio::time::timeout(DEADLINE, wait).await {
        Ok(result) => result,
        Err(_) => {
            let view = rx.borrow().clone();
            anyhow::bail!(
                "timed out after {DEADLINE:?} waiting for {what}; last view: connection {:?}, lists {:?}, pods {:?}",
                view.connection,
                view.lists,
                pod_names(&view)
            )
        }
    }
}

fn pod_names(view: &CatalogView) -> Vec<String> {
    view.pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

fn ready(view: &CatalogView, kind: ListKind) -> bool {
    matches!(view.lists.get(&kind), Some(ListState::Ready))
}

#[tokio::test]
async fn catalog_lists_the_demo_objects_of_a_namespace() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "demo", None)?;
    let mut rx = catalog.subscribe();
    let view = until(&mut rx, "three kubia pods and the kubia objects", |v| {
        ready(v, ListKind::Pods)
            && ready(v, ListKind::Services)
            && ready(v, ListKind::Deployments)
            && ready(v, ListKind::Ingresses)
            && ready(v, ListKind::Namespaces)
            && v.pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("kubia-"))
                })
                .count()
                == 3
    })
    .await?;
    assert_eq!(view.namespace, "default");
    assert_eq!(view.connection, ConnectionState::Connected);
    assert!(view.service("kubia").is_some() && view.service("external-service").is_some());
    assert!(view.deployment("kubia").is_some());
    assert!(
        view.ingresses
            .iter()
            .any(|i| i.metadata.name.as_deref() == Some("kubia"))
    );
    assert!(
        view.namespaces.iter().any(|n| n == "shop"),
        "{:?}",
        view.namespaces
    );
    assert!(!view.namespaces_forbidden);
    let names = pod_names(&view);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "snapshots are sorted by name");
    Ok(())
}

#[tokio::test]
async fn a_deleted_pod_disappears_from_the_catalog() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "demo", Some("default"))?;
    let mut rx = catalog.subscribe();
    let view = until(&mut rx, "the fortune pod", |v| v.pod("fortune").is_some()).await?;
    let version = view.version;

    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods.delete("fortune", &DeleteParams::default().grace_period(0))
        .await?;

    let view = until(&mut rx, "fortune to be gone", |v| {
        v.pod("fortune").is_none()
    })
    .await?;
    assert!(view.version > version, "every change bumps the version");
    assert!(
        view.pod("batch-report").is_some() || view.pods.len() > 1,
        "other pods stay listed"
    );
    Ok(())
}

#[tokio::test]
async fn switching_namespace_lists_that_namespace() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "demo", None)?;
    let mut rx = catalog.subscribe();
    until(&mut rx, "the default namespace", |v| {
        ready(v, ListKind::Pods) && v.pod("fortune").is_some()
    })
    .await?;
    catalog.set_namespace("shop");
    let view = until(&mut rx, "the shop deployments", |v| {
        v.namespace == "shop" && v.deployment("postgres").is_some() && v.deployment("web").is_some()
    })
    .await?;
    assert!(
        view.pod("fortune").is_none(),
        "nothing from the old namespace is left: {:?}",
        pod_names(&view)
    );
    assert!(
        view.pods
            .iter()
            .all(|p| p.metadata.namespace.as_deref() == Some("shop"))
    );
    Ok(())
}

#[tokio::test]
async fn restricted_user_gets_its_namespace_when_namespaces_cannot_be_listed() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "demo-restricted", None)?;
    let mut rx = catalog.subscribe();
    let view = until(&mut rx, "namespace fallback and pods", |v| {
        v.namespaces_forbidden && ready(v, ListKind::Pods)
    })
    .await?;
    assert_eq!(view.namespace, "default");
    assert_eq!(
        view.namespaces.as_slice(),
        ["default".to_string()],
        "fallback to the context's namespace"
    );
    assert_eq!(
        view.connection,
        ConnectionState::Connected,
        "forbidden lists do not make the cluster look down"
    );
    assert!(view.pod("fortune").is_some());
    match view.lists.get(&ListKind::Namespaces) {
        Some(ListState::Failed(err @ ClusterError::Forbidden { .. })) => {
            let text = err.to_string();
            assert!(
                text.contains("may not watch namespaces (cluster-wide)"),
                "{text}"
            );
        }
        other => panic!("namespaces should be forbidden, got {other:?}"),
    }

    // A typed namespace joins the choices (and is simply forbidden for this user).
    catalog.set_namespace("shop");
    let view = until(&mut rx, "the typed namespace in the list", |v| {
        v.namespace == "shop" && v.namespaces.iter().any(|n| n == "shop")
    })
    .await?;
    assert!(view.namespaces.iter().any(|n| n == "default"));
    let view = until(&mut rx, "pods in shop to be forbidden", |v| {
        matches!(
            v.lists.get(&ListKind::Pods),
            Some(ListState::Failed(ClusterError::Forbidden { .. }))
        )
    })
    .await?;
    let Some(ListState::Failed(err)) = view.lists.get(&ListKind::Pods) else {
        unreachable!("checked above")
    };
    assert!(
        err.to_string()
            .contains("may not watch pods in namespace shop"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn viewer_can_browse_everything() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "demo-viewer", None)?;
    let mut rx = catalog.subscribe();
    let view = until(&mut rx, "all lists", |v| {
        v.lists.values().all(|s| matches!(s, ListState::Ready))
    })
    .await?;
    assert_eq!(view.connection, ConnectionState::Connected);
    assert!(!view.nodes.is_empty(), "nodes are listed");
    Ok(())
}

#[tokio::test]
async fn catalog_reports_an_unreachable_server_and_recovers_by_itself() -> Result {
    let cluster = start_demo().await?;
    let url = pool(&cluster)?.server_url("demo");
    let (_engine, catalog) = start(&cluster, "demo", None)?;
    let mut rx = catalog.subscribe();
    until(&mut rx, "connected", |v| {
        v.connection == ConnectionState::Connected && ready(v, ListKind::Pods)
    })
    .await?;

    let server = cluster
        .sim
        .server("demo")
        .ok_or_else(|| anyhow::anyhow!("no demo server"))?;
    server.stop().await;
    let view = until(
        &mut rx,
        "an error naming the URL",
        |v| matches!(&v.connection, ConnectionState::Error { reason } if reason.contains(&url)),
    )
    .await?;
    assert!(
        !view.pods.is_empty(),
        "the last known lists stay visible while disconnected"
    );

    // While it is down, a pod goes away; after the restart the catalog must notice by itself.
    server.restart().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods.delete("fortune", &DeleteParams::default().grace_period(0))
        .await?;
    until(&mut rx, "reconnected and fortune gone", |v| {
        v.connection == ConnectionState::Connected
            && ready(v, ListKind::Pods)
            && v.pod("fortune").is_none()
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_context_is_an_error_state_not_a_crash() -> Result {
    let cluster = start_demo().await?;
    let (_engine, catalog) = start(&cluster, "nope", None)?;
    let mut rx = catalog.subscribe();
    let view = until(&mut rx, "an error", |v| {
        matches!(v.connection, ConnectionState::Error { .. })
    })
    .await?;
    let ConnectionState::Error { reason } = view.connection else {
        unreachable!()
    };
    assert!(
        reason.starts_with("there is no context named \"nope\"; known contexts: demo, "),
        "{reason}"
    );
    Ok(())
}

#[tokio::test]
async fn reconnect_and_clock_jumps_relist_at_once() -> Result {
    let cluster = start_demo().await?;
    let (engine, catalog) = start(&cluster, "demo", None)?;
    let mut rx = catalog.subscribe();
    // Once Ready, the fortune pod does not change any more.
    let view = until(&mut rx, "fortune Ready", |v| {
        v.pod("fortune")
            .is_some_and(|p| ferry_core::resolve::is_pod_ready(p))
    })
    .await?;
    let before = view.pod("fortune").cloned().expect("listed");

    // Same cluster, no change: a re-list shows up as freshly decoded objects with the same
    // resourceVersion (a modification would change it).
    catalog.reconnect();
    let view = until(&mut rx, "a fresh list after reconnect", |v| {
        v.pod("fortune").is_some_and(|p| relisted(p, &before))
    })
    .await?;
    assert_eq!(view.connection, ConnectionState::Connected);
    let before = view.pod("fortune").cloned().expect("listed");

    // The engine's clock (one check for tunnels and catalog) reports a wake-up.
    engine.clock_jumped(3600);
    until(&mut rx, "a fresh list after a clock jump", |v| {
        v.pod("fortune").is_some_and(|p| relisted(p, &before))
    })
    .await?;
    Ok(())
}

fn relisted(now: &std::sync::Arc<Pod>, before: &std::sync::Arc<Pod>) -> bool {
    !std::sync::Arc::ptr_eq(now, before)
        && now.metadata.resource_version == before.metadata.resource_version
}

/// Issue 9: the window and the tunnels watch a namespace once. With a tunnel into `default`
/// and the catalog showing `default`, kubesim holds one pod watch and one service watch for
/// that namespace, not one per consumer; and switching the window away releases the watches
/// only it used while the tunnel's stay.
#[tokio::test]
async fn a_tunnel_and_the_catalog_in_one_namespace_share_one_watch_per_kind() -> Result {
    let env = tunnel_env().await?;
    let mut tunnel = spec("svc/kubia", &["0:80"]);
    // Round-robin, so the snapshot lists every Ready pod the tunnel's watch has seen.
    tunnel.spread = ferry_core::spec::Spread::RoundRobin;
    let (id, _) = env.start_active(tunnel).await?;
    let catalog = Catalog::start(&env.engine, &pool(&env.cluster)?, "demo", Some("default"));
    let mut rx = catalog.subscribe();
    let kubia = |v: &CatalogView| {
        v.pods
            .iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("kubia-"))
                    && ferry_core::resolve::is_pod_ready(p)
            })
            .count()
    };
    until(&mut rx, "three Ready kubia pods", |v| {
        ready(v, ListKind::Pods) && ready(v, ListKind::Services) && kubia(v) == 3
    })
    .await?;

    // A fourth pod appears after both have listed: each consumer can only learn of it through
    // a watch stream that is open, so once both show it every watch they use is open.
    env.scale("kubia", 4).await?;
    env.wait_snapshot(id, DEADLINE, "the tunnel to see four Ready pods", |s| {
        s.pods.len() == 4
    })
    .await?;
    until(&mut rx, "four Ready kubia pods", |v| kubia(v) == 4).await?;

    let demo = env
        .cluster
        .sim
        .cluster("demo")
        .ok_or_else(|| anyhow::anyhow!("no demo cluster"))?;
    let watches = &demo.watches;
    assert_eq!(
        watches.count("pods", Some("default")),
        1,
        "the tunnel and the catalog share one pod watch"
    );
    assert_eq!(
        watches.count("services", Some("default")),
        1,
        "and one service watch"
    );
    assert_eq!(watches.count("endpoints", Some("default")), 1);

    // The window moves on: the watches only it used go, the tunnel's stay and keep working.
    catalog.set_namespace("shop");
    until(&mut rx, "the shop deployments", |v| {
        v.namespace == "shop" && v.deployment("web").is_some()
    })
    .await?;
    wait_for(
        "the catalog's endpoints watch in default to close and its shop pod watch to open",
        DEADLINE,
        || async {
            let moved = watches.count("endpoints", Some("default")) == 0
                && watches.count("pods", Some("shop")) == 1;
            moved.then_some(())
        },
    )
    .await?;
    assert_eq!(
        watches.count("pods", Some("default")),
        1,
        "the tunnel's pod watch stays"
    );
    assert_eq!(watches.count("services", Some("default")), 1);
    env.scale("kubia", 3).await?;
    env.wait_snapshot(id, DEADLINE, "the tunnel to follow a scale-down", |s| {
        s.pods.len() == 3
    })
    .await?;
    Ok(())
}
