//! Runs the controllers: each is a tokio task fed by the store's change events (after a first
//! pass over the existing objects), and timers for delayed work. Tasks hold only a weak
//! reference to their cluster and stop when it is dropped or [`super::stop`]ped.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};

use crate::cluster::Cluster;
use crate::store::Change;

/// One controller: a pass over everything (at start, and whenever it fell behind the event
/// stream) and a reaction to a batch of changes (every change already waiting is handed over
/// at once, so a controller can do the work for a burst of events only once).
struct Controller {
    name: &'static str,
    resync: fn(&Arc<Cluster>),
    on_changes: fn(&Arc<Cluster>, &[Change]),
}

/// The most changes handed to a controller in one batch.
const MAX_BATCH: usize = 4096;

const CONTROLLERS: &[Controller] = &[
    Controller {
        name: "kubelet",
        resync: super::kubelet::resync,
        on_changes: super::kubelet::on_changes,
    },
    Controller {
        name: "replicaset",
        resync: super::replicasets::resync,
        on_changes: super::replicasets::on_changes,
    },
    Controller {
        name: "deployment",
        resync: super::deployments::resync,
        on_changes: super::deployments::on_changes,
    },
    Controller {
        name: "endpoints",
        resync: super::endpoints::resync,
        on_changes: super::endpoints::on_changes,
    },
    Controller {
        name: "endpointslice",
        resync: super::endpointslices::resync,
        on_changes: super::endpointslices::on_changes,
    },
    Controller {
        name: "service-lb",
        resync: super::services::resync,
        on_changes: super::services::on_changes,
    },
    Controller {
        name: "ingress",
        resync: super::ingresses::resync,
        on_changes: super::ingresses::on_changes,
    },
    Controller {
        name: "garbage-collector",
        resync: super::gc::resync,
        on_changes: super::gc::on_changes,
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
        let (batch, lagged) = match rx.recv().await {
            Ok(first) => drain(&mut rx, first),
            Err(RecvError::Lagged(_)) => (Vec::new(), true),
            Err(RecvError::Closed) => return,
        };
        let Some(cluster) = weak.upgrade() else {
            return;
        };
        if lagged {
            tracing::debug!(
                controller = controller.name,
                "controller fell behind; resyncing"
            );
            (controller.resync)(&cluster);
        } else {
            (controller.on_changes)(&cluster, &batch);
        }
    }
}

/// `first` and every change already waiting behind it (up to [`MAX_BATCH`]); `true` if the
/// receiver lagged and changes were lost.
fn drain(rx: &mut broadcast::Receiver<Change>, first: Change) -> (Vec<Change>, bool) {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(change) => batch.push(change),
            Err(TryRecvError::Lagged(_)) => return (batch, true),
            Err(_) => break,
        }
    }
    (batch, false)
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
