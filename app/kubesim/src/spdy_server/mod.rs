//! SPDY/3.1 streaming, as kubectl speaks it to pods/portforward and pods/exec: the session
//! ([`session`]), the kubelet's port-forward ([`portforward`]) and remote-command v4
//! ([`exec`]) on top of it, and the two transports that carry it:
//!
//! - the legacy upgrade: `POST` with `Connection: Upgrade`, `Upgrade: SPDY/3.1` and the
//!   offered `X-Stream-Protocol-Version`s; the 101 reply echoes `Upgrade`, `Connection` and the
//!   chosen version, then raw SPDY frames flow over the connection;
//! - the WebSocket tunnel (API servers since 1.30, kubectl port-forward's default since 1.31):
//!   `GET` with subprotocol `SPDY/3.1+portforward.k8s.io`; SPDY bytes travel in binary messages
//!   whose boundaries need not match frames.
//!
//! Facts from moby/spdystream, apimachinery's `httpstream`/`httpstream/spdy`, the apiserver's
//! `util/proxy` tunnel and the kubelet's streaming server.

pub mod exec;
pub mod portforward;
pub mod session;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio_util::io::ReaderStream;

use crate::streams::status_response;
use session::{Incoming, Outgoing};

/// The `Upgrade` token of the legacy transport.
pub const SPDY_31: &str = "SPDY/3.1";
/// The WebSocket subprotocol of the port-forward tunnel.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol of port-forward.
pub const PORT_FORWARD_V1: &str = "portforward.k8s.io";
/// Remote-command v4 (JSON `Status` on the error stream, resize stream).
pub const REMOTE_COMMAND_V4: &str = "v4.channel.k8s.io";
/// The header carrying the offered / chosen stream protocol.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// How a SPDY request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `Upgrade: SPDY/3.1`.
    Upgrade,
    /// WebSocket with subprotocol [`TUNNEL_PROTOCOL`].
    Tunnel,
}

/// Which SPDY transport a request asks for, if any.
pub fn transport(headers: &HeaderMap) -> Option<Transport> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        return Some(Transport::Upgrade);
    }
    let tunnelled = crate::streams::offered_protocols(headers)
        .iter()
        .any(|p| p.eq_ignore_ascii_case(TUNNEL_PROTOCOL));
    (upgrade == "websocket" && tunnelled).then_some(Transport::Tunnel)
}

/// The `X-Stream-Protocol-Version`s a client offered (several headers or comma lists).
pub fn offered_stream_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Upgrades `req` to SPDY over the transport it asked for and runs `serve` on the connection.
/// `protocol` is the stream protocol the server speaks (for the legacy upgrade, it must be
/// among the offered ones, as apimachinery's `httpstream.Handshake` requires).
pub async fn upgrade<F, Fut>(
    req: Request,
    transport: Transport,
    protocol: &'static str,
    serve: F,
) -> Response
where
    F: FnOnce(Incoming, Outgoing) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match transport {
        Transport::Upgrade => upgrade_http(req, protocol, serve),
        Transport::Tunnel => upgrade_websocket(req, serve).await,
    }
}

fn upgrade_http<F, Fut>(mut req: Request, protocol: &'static str, serve: F) -> Response
where
    F: FnOnce(Incoming, Outgoing) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let offered = offered_stream_protocols(req.headers());
    if !offered.iter().any(|p| p == protocol) {
        let msg = format!(
            "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{protocol:?}]"
        );
        return status_response(StatusCode::FORBIDDEN, "Forbidden", &msg);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                let incoming: Incoming = ReaderStream::with_capacity(r, 64 * 1024).boxed();
                let outgoing = Outgoing::Io(Box::new(w));
                serve(incoming, outgoing).await;
            }
            Err(e) => tracing::debug!("SPDY upgrade failed: {e}"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static(SPDY_31));
    h.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    resp
}

async fn upgrade_websocket<F, Fut>(req: Request, serve: F) -> Response
where
    F: FnOnce(Incoming, Outgoing) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut upgrade = match WebSocketUpgrade::from_request(req, &()).await {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade.set_selected_protocol(HeaderValue::from_static(TUNNEL_PROTOCOL));
    upgrade
        .max_message_size(32 * 1024 * 1024)
        .on_upgrade(move |socket| tunnel(socket, serve))
}

/// Runs the SPDY session inside the WebSocket: binary messages in, binary messages out, and a
/// normal close (1000) when the session ends.
async fn tunnel<F, Fut>(socket: WebSocket, serve: F)
where
    F: FnOnce(Incoming, Outgoing) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (sink, stream) = socket.split();
    let incoming: Incoming = stream
        .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(_) => None,
                Err(e) => Some(Err(std::io::Error::other(e))),
            })
        })
        .boxed();
    serve(incoming, Outgoing::WebSocket(sink)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spdy_transports_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert_eq!(transport(&h), Some(Transport::Upgrade));
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "SPDY/3.1+portforward.k8s.io".parse().unwrap(),
        );
        assert_eq!(transport(&h), Some(Transport::Tunnel));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v4.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(transport(&h), None);
    }

    #[test]
    fn offered_stream_protocols_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(STREAM_PROTOCOL_HEADER, "v4.channel.k8s.io".parse().unwrap());
        h.append(
            STREAM_PROTOCOL_HEADER,
            "v3.channel.k8s.io, v2.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(
            offered_stream_protocols(&h),
            [
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io"
            ]
        );
    }
}
