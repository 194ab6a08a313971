//! Hand-off of the streaming subresources (`pods/portforward`, `pods/exec`, `pods/log`) to
//! their own modules once the REST layer has authenticated and authorized the request; the
//! streaming code owns the protocol (WebSocket, SPDY, chunked logs) from there.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::path::ResourcePath;
use super::status::ApiError;

/// Serves `pods/{sub}` for an authorized request.
pub async fn serve(state: &Arc<ApiState>, rp: &ResourcePath, sub: &str, req: Request) -> Response {
    let cluster = state.cluster.clone();
    let namespace = rp.namespace.clone().unwrap_or_default();
    let pod = rp.name.clone().unwrap_or_default();
    match sub {
        "portforward" => crate::portforward::serve(cluster, namespace, pod, req).await,
        "exec" => crate::exec::serve(cluster, namespace, pod, req).await,
        "log" => crate::logs::serve(cluster, namespace, pod, req).await,
        _ => ApiError::not_implemented(format!("kubesim does not implement pods/{sub} yet"))
            .into_response(),
    }
}
