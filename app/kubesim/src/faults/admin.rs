//! The admin endpoint: fault injection from outside the process (`kubesim fault …`, scripts),
//! on its own loopback listener so that it keeps answering while an API server is paused or
//! stopped. Every request needs the bearer token written, with the address, to the admin file
//! (mode 0600) next to the kubeconfig.
//!
//! `GET /clusters` lists the cluster names; `POST /clusters/{name}/faults` with a [`Fault`] as
//! JSON injects it and answers `{"message": …}`, or `{"error": …}` with 400/404/409.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::FaultError;
use crate::cluster::Cluster;

/// One fault, as the admin endpoint and the CLI exchange it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    DeletePod {
        namespace: String,
        name: String,
    },
    NotReady {
        namespace: String,
        name: String,
    },
    Ready {
        namespace: String,
        name: String,
    },
    DropStreams,
    FailPortForward {
        namespace: String,
        name: String,
        reason: Option<String>,
    },
    HealPortForward {
        namespace: String,
        name: String,
    },
    Latency {
        millis: u64,
    },
    Pause,
    Resume,
    Stop,
    Restart,
    Clear,
}

/// The reason reported for an injected port-forward failure when none is given.
pub const DEFAULT_PORT_FORWARD_FAILURE: &str =
    "failed to execute portforward in network namespace: fault injected by kubesim";

/// Injects `fault` into `cluster`; returns a sentence saying what was done.
pub async fn apply(cluster: &Arc<Cluster>, fault: &Fault) -> Result<String, FaultError> {
    let c = &cluster.name;
    Ok(match fault {
        Fault::DeletePod { namespace, name } => {
            super::delete_pod(cluster, namespace, name)?;
            format!("pod {namespace}/{name} in {c} is being deleted")
        }
        Fault::NotReady { namespace, name } | Fault::Ready { namespace, name } => {
            let ready = matches!(fault, Fault::Ready { .. });
            super::set_pod_ready(cluster, namespace, name, ready)?;
            let state = if ready { "Ready" } else { "NotReady" };
            format!("pod {namespace}/{name} in {c} is now {state}")
        }
        Fault::DropStreams => {
            super::drop_streams(cluster);
            format!("every port-forward and exec stream of {c} was dropped")
        }
        Fault::FailPortForward {
            namespace,
            name,
            reason,
        } => {
            let reason = reason
                .clone()
                .unwrap_or_else(|| DEFAULT_PORT_FORWARD_FAILURE.into());
            super::require_pod(cluster, namespace, name)?;
            cluster
                .faults
                .fail_port_forward(namespace, name, Some(reason));
            format!("port-forward to {namespace}/{name} in {c} now fails")
        }
        Fault::HealPortForward { namespace, name } => {
            cluster.faults.fail_port_forward(namespace, name, None);
            format!("port-forward to {namespace}/{name} in {c} works again")
        }
        Fault::Latency { millis } => {
            let latency = std::time::Duration::from_millis(*millis);
            cluster.faults.set_stream_latency(latency);
            format!("new streams of {c} now wait {millis} ms")
        }
        Fault::Pause => {
            super::pause_server(cluster)?;
            format!("the API server of {c} is paused")
        }
        Fault::Resume => {
            super::resume_server(cluster)?;
            format!("the API server of {c} is serving again")
        }
        Fault::Stop => {
            super::stop_server(cluster).await?;
            format!("the API server of {c} is stopped (state kept)")
        }
        Fault::Restart => {
            super::restart_server(cluster).await?;
            format!("the API server of {c} is listening again")
        }
        Fault::Clear => {
            super::clear(cluster);
            format!("stream faults of {c} cleared and its server resumed")
        }
    })
}

/// What the admin file holds: where the endpoint is and the token it wants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminAccess {
    pub url: String,
    pub token: String,
}

/// The admin file that goes with a kubeconfig: `<kubeconfig>.admin.json`.
pub fn admin_file_for(kubeconfig: &Path) -> PathBuf {
    let mut name = kubeconfig.file_name().unwrap_or_default().to_os_string();
    name.push(".admin.json");
    kubeconfig.with_file_name(name)
}

struct AdminState {
    clusters: Vec<Arc<Cluster>>,
    token: String,
}

/// A running admin endpoint; dropping it stops it.
pub struct AdminServer {
    access: AdminAccess,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AdminServer {
    /// Where the endpoint is and its token.
    pub fn access(&self) -> &AdminAccess {
        &self.access
    }

    /// Writes the admin file (0600, atomically) so that `kubesim fault` can find the endpoint.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&self.access)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// Starts the admin endpoint for `clusters` on `127.0.0.1:port` (0: any free port).
pub async fn start(clusters: Vec<Arc<Cluster>>, port: u16) -> std::io::Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let token = crate::store::random_suffix(32);
    let state = Arc::new(AdminState {
        clusters,
        token: token.clone(),
    });
    let router = axum::Router::new()
        .route("/clusters", get(list_clusters))
        .route("/clusters/{cluster}/faults", post(inject))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!("kubesim admin endpoint stopped: {e}");
        }
    });
    Ok(AdminServer {
        access: AdminAccess {
            url: format!("http://{addr}"),
            token,
        },
        task,
    })
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", state.token);
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) == Some(expected.as_bytes())
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong admin token (use the token from the admin file)",
    )
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn list_clusters(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let names: Vec<&str> = state.clusters.iter().map(|c| c.name.as_str()).collect();
    Json(json!({ "clusters": names })).into_response()
}

async fn inject(
    State(state): State<Arc<AdminState>>,
    UrlPath(cluster): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(target) = state.clusters.iter().find(|c| c.name == cluster) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no cluster named {cluster}"),
        );
    };
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("not a fault: {e}")),
    };
    tracing::info!(cluster = %cluster, ?fault, "injecting fault");
    match apply(target, &fault).await {
        Ok(message) => Json(json!({ "message": message })).into_response(),
        Err(e @ FaultError::PodNotFound { .. }) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ (FaultError::NotServed(_) | FaultError::Restart(_))) => {
            error(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_serialize_with_a_kebab_tag() {
        let f = Fault::FailPortForward {
            namespace: "default".into(),
            name: "web".into(),
            reason: None,
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["fault"], "fail-port-forward");
        assert_eq!(serde_json::from_value::<Fault>(v).unwrap(), f);
        assert_eq!(
            admin_file_for(Path::new("/tmp/kubesim.kubeconfig")),
            Path::new("/tmp/kubesim.kubeconfig.admin.json")
        );
    }
}
