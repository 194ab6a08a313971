//! How fast the catalog is on a bigger namespace: time to the first complete list of 1,000
//! services, and how long one change takes to reach the view. Prints the numbers (run with
//! `--nocapture`); asserts generous bounds so a regression by an order of magnitude fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::ClientPool;
use ferry_core::catalog::{Catalog, CatalogView, ListKind, ListState};
use ferry_core::engine::{Engine, EngineOptions};
use ferry_e2e::start_empty;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

const SERVICES: usize = 1_000;

fn service(i: usize) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("svc-{i:04}"), "namespace": "bulk"},
        "spec": {"selector": {"app": format!("a{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?)
}

async fn until(
    rx: &mut watch::Receiver<CatalogView>,
    pred: impl Fn(&CatalogView) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return Ok(());
            }
            rx.changed().await?;
        }
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_lists_a_thousand_services_quickly_and_follows_changes() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let client = cluster.client("demo").await?;
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "bulk"}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let services: Api<Service> = Api::namespaced(client, "bulk");
    for i in 0..SERVICES {
        services
            .create(&PostParams::default(), &service(i)?)
            .await?;
    }

    let pool = ClientPool::from_paths(&[cluster.kubeconfig().to_path_buf()])?;
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool.clone()),
        EngineOptions::default(),
    );
    let started = Instant::now();
    let catalog = Catalog::start(&engine, &pool, "demo", Some("bulk"));
    let mut rx = catalog.subscribe();
    until(&mut rx, |v| {
        matches!(v.lists.get(&ListKind::Services), Some(ListState::Ready))
            && v.services.len() == SERVICES
    })
    .await?;
    let first_list = started.elapsed();

    let mut latencies = Vec::new();
    for i in SERVICES..SERVICES + 20 {
        let t = Instant::now();
        services
            .create(&PostParams::default(), &service(i)?)
            .await?;
        until(&mut rx, |v| v.services.len() == i + 1).await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "catalog: first list of {SERVICES} services in {first_list:?}; create → view p50 {p50:?}, max {max:?}"
    );
    assert!(first_list < Duration::from_secs(5), "{first_list:?}");
    assert!(p50 < Duration::from_millis(500), "{p50:?}");
    Ok(())
}
