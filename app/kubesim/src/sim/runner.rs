//! Runs the controllers: each is a tokio task fed by the store's change events (after a first
//! pass over the existing objects), and timers for delayed work. Tasks hold only a weak
//! reference to their cluster and stop when it is dropped or [`super::stop`]ped.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::cluster::Cluster;
use crate::store::Change;

/// One controller: a pass over everything (at start, and whenever it fell behind the event
/// stream) and a reaction to one change.
struct Controller {
    name: &'static str,
    resync: fn(&Arc<Cluster>),
    on_change: fn(&Arc<Cluster>, &Change),
}

const CONTROLLERS: &[Controller] = &[
    Controller {
        name: "kubelet",
        resync: super::kubelet::resync,
        on_change: super::kubelet::on_change,
    },
    Controller {
        name: "replicaset",
        resync: super::replicasets::resync,
        on_change: super::replicasets::on_change,
    },
    Controller {
        name: "deployment",
        resync: super::deployments::resync,
        on_change: super::deployments::on_change,
    },
    Controller {
        name: "endpoints",
        resync: super::endpoints::resync,
        on_change: super::endpoints::on_change,
    },
    Controller {
        name: "endpointslice",
        resync: super::endpointslices::resync,
        on_change: super::endpointslices::on_change,
    },
    Controller {
        name: "service-lb",
        resync: super::services::resync,
        on_change: super::services::on_change,
    },
    Controller {
        name: "ingress",
        resync: super::ingresses::resync,
        on_change: super::ingresses::on_change,
    },
    Controller {
        name: "garbage-collector",
        resync: super::gc::resync,
        on_change: super::gc::on_change,
    },
];

/// Subscribes every controller to the store before anything is seeded, so none misses a change.
pub fn subscribe_all(cluster: &Arc<Cluster>) -> Vec<broadcast::Receiver<Change>> {
    CONTROLLERS
        .iter()
        .map(|_| cluster.store.subscribe())
        .collect()
}

/// Starts one task per controller.
pub fn spawn_all(
    handle: &tokio::runtime::Handle,
    cluster: &Arc<Cluster>,
    receivers: Vec<broadcast::Receiver<Change>>,
) {
    for (controller, rx) in CONTROLLERS.iter().zip(receivers) {
        let weak = Arc::downgrade(cluster);
        let cancel = cluster.sim.cancel.clone();
        handle.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = run(controller, weak, rx) => {}
            }
        });
    }
}

async fn run(
    controller: &'static Controller,
    weak: Weak<Cluster>,
    mut rx: broadcast::Receiver<Change>,
) {
    if let Some(cluster) = weak.upgrade() {
        (controller.resync)(&cluster);
    }
    loop {
        let received = rx.recv().await;
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        match received {
            Ok(change) => (controller.on_change)(&cluster, &change),
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    controller = controller.name,
                    missed,
                    "controller fell behind; resyncing"
                );
                (controller.resync)(&cluster);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Runs `work` after `delay`, unless the cluster is gone or stopped by then.
pub fn after(
    cluster: &Arc<Cluster>,
    delay: Duration,
    work: impl FnOnce(&Arc<Cluster>) + Send + 'static,
) {
    let weak = Arc::downgrade(cluster);
    spawn(cluster, async move {
        tokio::time::sleep(delay).await;
        if let Some(cluster) = weak.upgrade() {
            work(&cluster);
        }
    });
}

/// Spawns a simulation task that ends when the cluster is stopped. Outside a tokio runtime the
/// work cannot happen; that is logged rather than panicking.
pub fn spawn(cluster: &Cluster, task: impl Future<Output = ()> + Send + 'static) {
    let cancel = cluster.sim.cancel.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = task => {}
                }
            });
        }
        Err(_) => {
            tracing::error!(cluster = %cluster.name, "simulation work requested outside a tokio runtime; skipped")
        }
    }
}
