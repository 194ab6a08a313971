//! The WebSocket upgrade of a port-forward request, done over [`kube::Client::send`] (kube's
//! auth, TLS and proxy) rather than by [`kube::Client::connect`], so that Ferry chooses the
//! subprotocol (`connect` offers only the v4/v5 channel protocols) and the socket's buffers
//! (`connect` gives every WebSocket tungstenite's default 128 KiB read buffer, which 1,000 v4
//! connections, one WebSocket each, would hold resident: 128 MB).

use http::header;
use hyper_util::rt::TokioIo;
use kube::client::UpgradeConnectionError;
use kube::core::Status;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded port-forward connection.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Sends `GET path` (with its query) as a WebSocket upgrade offering `protocol`, and returns
/// the socket once the API server switched to it. Errors are kube's, as `Client::connect`
/// gives them: a 4xx/5xx (or any answer but 101) is [`kube::Error::Api`] with the server's
/// `Status` (or one made of its body), a handshake that does not check out is
/// [`kube::Error::UpgradeConnection`].
pub async fn websocket(
    client: &kube::Client,
    path: &str,
    protocol: &str,
    config: WebSocketConfig,
) -> Result<Socket, kube::Error> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let request = http::Request::get(path)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(kube::client::Body::empty())
        .map_err(kube::Error::HttpError)?;
    let response = client.send(request).await?;
    let status = response.status();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .unwrap_or_default();
        let status = serde_json::from_slice::<Status>(&body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&body);
            Status::failure(text.trim(), "the port-forward upgrade was refused")
                .with_code(status.as_u16())
        });
        return Err(kube::Error::Api(status.boxed()));
    }
    let headers = response.headers();
    let accept = headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .and_then(|v| v.to_str().ok());
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if accept != Some(expected.as_str()) {
        return Err(kube::Error::UpgradeConnection(
            UpgradeConnectionError::SecWebSocketAcceptKeyMismatch,
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        != Some(protocol)
    {
        return Err(kube::Error::UpgradeConnection(
            UpgradeConnectionError::SecWebSocketProtocolMismatch,
        ));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(|e| {
        kube::Error::UpgradeConnection(UpgradeConnectionError::GetPendingUpgrade(e))
    })?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await)
}
