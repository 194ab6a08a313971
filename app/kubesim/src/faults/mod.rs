//! Fault injection: the things that go wrong on real clusters, on demand, so that tests and the
//! demo can show how clients cope. Per cluster: delete a pod, flip its readiness, drop every open
//! port-forward/exec stream, make port-forward to a pod fail, delay new streams, pause the API
//! server and resume it, stop it and restart it on the same port with its state kept.
//!
//! Three ways in: these functions (tests), the admin HTTP endpoint on its own loopback port
//! ([`admin`], which keeps answering while the API server is paused or stopped), and the
//! `kubesim fault …` command ([`cli`]) that talks to it.

pub mod admin;
pub mod cli;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cluster::Cluster;
use crate::store::StoreError;

/// Stream faults of one cluster, consulted by the streaming endpoints. Lives on [`Cluster`].
#[derive(Default)]
pub struct Faults {
    latency: Mutex<Duration>,
    port_forward_errors: Mutex<HashMap<(String, String), String>>,
}

impl Faults {
    /// Every new port-forward/exec stream waits this long before its upgrade is answered.
    pub fn set_stream_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// The current added latency of new streams.
    pub fn stream_latency(&self) -> Duration {
        *lock(&self.latency)
    }

    /// Waits the injected latency (no-op without one).
    pub async fn delay_new_stream(&self) {
        let latency = self.stream_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Makes every port-forward to `namespace/pod` report `reason` on its error channel (in the
    /// kubelet's `error forwarding port …` sentence) instead of connecting; `None` heals it.
    pub fn fail_port_forward(&self, namespace: &str, pod: &str, reason: Option<String>) {
        let key = (namespace.to_string(), pod.to_string());
        let mut errors = lock(&self.port_forward_errors);
        match reason {
            Some(r) => errors.insert(key, r),
            None => errors.remove(&key),
        };
    }

    /// The injected port-forward failure of a pod, if any.
    pub fn port_forward_error(&self, namespace: &str, pod: &str) -> Option<String> {
        lock(&self.port_forward_errors)
            .get(&(namespace.to_string(), pod.to_string()))
            .cloned()
    }

    /// Removes every stream fault (latency and port-forward failures).
    pub fn clear(&self) {
        self.set_stream_latency(Duration::ZERO);
        lock(&self.port_forward_errors).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a fault could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("pod {namespace}/{name} not found in cluster {cluster}")]
    PodNotFound {
        cluster: String,
        namespace: String,
        name: String,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "cluster {0} is not being served, so its server cannot be paused, stopped or restarted"
    )]
    NotServed(String),
    #[error("could not listen again on the cluster's port: {0}")]
    Restart(#[source] std::io::Error),
}

/// Deletes a pod as `kubectl delete pod` would (graceful: Terminating, then gone); its owner,
/// if any, replaces it.
pub fn delete_pod(cluster: &Arc<Cluster>, namespace: &str, name: &str) -> Result<(), FaultError> {
    require_pod(cluster, namespace, name)?;
    crate::sim::delete(cluster, "pods", namespace, name, None)?;
    Ok(())
}

/// Ends every open port-forward and exec stream of the cluster, as a network cut would; clients
/// see their WebSocket close.
pub fn drop_streams(cluster: &Cluster) {
    cluster.streams.drop_all();
}

/// Makes a pod NotReady (`ready = false`) or Ready again, as a failing or passing readiness
/// probe would; endpoints follow. The choice sticks until changed.
pub fn set_pod_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    ready: bool,
) -> Result<(), FaultError> {
    require_pod(cluster, namespace, name)?;
    crate::sim::set_pod_ready(cluster, namespace, name, ready)?;
    Ok(())
}

/// Pauses the cluster's API server: new connections hang in the backlog and open ones stall
/// (streams included) until [`resume_server`].
pub fn pause_server(cluster: &Cluster) -> Result<(), FaultError> {
    server(cluster)?.pause();
    Ok(())
}

/// Resumes a paused API server; stalled connections carry on.
pub fn resume_server(cluster: &Cluster) -> Result<(), FaultError> {
    server(cluster)?.resume();
    Ok(())
}

/// Stops the API server: its port closes and every connection is reset. The cluster's objects
/// and simulation carry on; [`restart_server`] serves them again on the same port.
pub async fn stop_server(cluster: &Cluster) -> Result<(), FaultError> {
    server(cluster)?.stop().await;
    Ok(())
}

/// Listens again on the same port after [`stop_server`] (and resumes a paused server).
pub async fn restart_server(cluster: &Cluster) -> Result<(), FaultError> {
    server(cluster)?
        .restart()
        .await
        .map_err(FaultError::Restart)
}

/// Removes every stream fault and resumes a paused server (a stopped one stays stopped).
pub fn clear(cluster: &Cluster) {
    cluster.faults.clear();
    if let Some(server) = cluster.server.get() {
        server.resume();
    }
}

fn server(cluster: &Cluster) -> Result<&crate::server::ServerControl, FaultError> {
    cluster
        .server
        .get()
        .ok_or_else(|| FaultError::NotServed(cluster.name.clone()))
}

fn require_pod(cluster: &Cluster, namespace: &str, name: &str) -> Result<(), FaultError> {
    match cluster.store.get("pods", namespace, name) {
        Some(_) => Ok(()),
        None => Err(FaultError::PodNotFound {
            cluster: cluster.name.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
    }
}
