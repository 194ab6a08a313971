//! What pods/portforward and pods/exec share: choosing the WebSocket subprotocol the way the
//! kubelet does, `Status` errors, and the set of open stream sessions of a cluster (so that a
//! fault can drop them all at once).

use std::sync::Mutex;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A `Status` failure response, as the apiserver writes it.
pub fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The subprotocols a client offered, in its order (one header with a comma list, or several).
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The kubelet's choice: the first protocol in the client's order that the server supports.
/// `Some("")` when the client offered none (the kubelet then speaks the default binary framing);
/// `None` when nothing offered is supported.
pub fn choose_protocol(offered: &[String], supported: &[&str]) -> Option<String> {
    if offered.is_empty() {
        return Some(String::new());
    }
    offered
        .iter()
        .find(|p| supported.contains(&p.as_str()))
        .cloned()
}

/// The 400 a kubelet answers when no offered subprotocol is supported.
pub fn unsupported_protocols(offered: &[String], supported: &[&str]) -> Response {
    let msg = format!(
        "unable to upgrade websocket connection: requested protocol(s) are not supported: {offered:?}; supports {supported:?}"
    );
    status_response(StatusCode::BAD_REQUEST, "BadRequest", &msg)
}

/// The open streams of one cluster. Each session holds a token from [`Streams::session`];
/// [`Streams::drop_all`] cancels every token handed out so far, which closes those sessions
/// (as an apiserver restart or a network cut would).
#[derive(Default)]
pub struct Streams {
    generation: Mutex<CancellationToken>,
    /// Port-forward connections upgraded so far (WebSocket or SPDY), for tests that check
    /// how many connections a client opens.
    port_forwards: std::sync::atomic::AtomicU64,
}

impl Streams {
    /// A token that is cancelled when the streams of the cluster are dropped.
    pub fn session(&self) -> CancellationToken {
        self.lock().child_token()
    }

    /// Counts one upgraded port-forward connection.
    pub fn port_forward_opened(&self) {
        self.port_forwards
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many port-forward connections have been upgraded so far.
    pub fn port_forwards_opened(&self) -> u64 {
        self.port_forwards
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends every open port-forward and exec stream of the cluster.
    pub fn drop_all(&self) {
        let old = std::mem::take(&mut *self.lock());
        old.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CancellationToken> {
        self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_is_chosen_in_client_order() {
        let offered = vec!["v5.channel.k8s.io".to_string(), "v4.channel.k8s.io".into()];
        assert_eq!(
            choose_protocol(&offered, &["v4.channel.k8s.io", "v4.base64.channel.k8s.io"]),
            Some("v4.channel.k8s.io".into())
        );
        assert_eq!(
            choose_protocol(&offered, &["v4.channel.k8s.io", "v5.channel.k8s.io"]),
            Some("v5.channel.k8s.io".into())
        );
        assert_eq!(choose_protocol(&offered, &["x"]), None);
        assert_eq!(choose_protocol(&[], &["x"]), Some(String::new()));
    }

    #[test]
    fn drop_all_cancels_only_existing_sessions() {
        let streams = Streams::default();
        let a = streams.session();
        streams.drop_all();
        let b = streams.session();
        assert!(a.is_cancelled());
        assert!(!b.is_cancelled());
    }
}
