//! Port-forward subprotocol negotiation and the base64 framing, spoken by a raw WebSocket client
//! (kube-rs only speaks the binary v4 protocol, which the e2e tests cover).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use kubesim::cluster::{Cluster, Timing};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

async fn serve_pod() -> (Arc<Cluster>, String) {
    let cluster = Cluster::new("t", Timing::fast());
    kubesim::containers::start(&cluster);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"kubesim.ferry.dev/port.7": "echo"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 7}]}]},
        "status": {"phase": "Running"}
    });
    cluster
        .store
        .create("pods", "default", pod)
        .expect("pod stored");
    let c = cluster.clone();
    let router = axum::Router::new().route(
        "/pf",
        axum::routing::get(move |req: Request| {
            let c = c.clone();
            async move { kubesim::portforward::serve(c, "default".into(), "p".into(), req).await }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (cluster, format!("ws://{addr}/pf?ports=7"))
}

fn request(url: &str, protocol: Option<&str>) -> tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("request");
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().expect("header"));
    }
    req
}

#[tokio::test]
async fn base64_protocol_frames_are_text_with_a_digit_channel() {
    let (_cluster, url) = serve_pod().await;
    let (mut ws, resp) =
        tokio_tungstenite::connect_async(request(&url, Some("v4.base64.channel.k8s.io")))
            .await
            .expect("upgrade");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v4.base64.channel.k8s.io"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let prefix = format!("0{}", b64.encode(7u16.to_le_bytes()));
    let error_prefix = format!("1{}", b64.encode(7u16.to_le_bytes()));
    let mut seen = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => seen.push(t.to_string()),
            other => panic!("expected a text port prefix, got {other:?}"),
        }
    }
    assert_eq!(seen, [prefix, error_prefix]);
    ws.send(Message::text(format!("0{}", b64.encode(b"hello"))))
        .await
        .expect("send");
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    match echoed {
        Ok(Some(Ok(Message::Text(t)))) => {
            assert_eq!(t.as_str(), format!("0{}", b64.encode(b"hello")))
        }
        other => panic!("expected the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn no_subprotocol_means_binary_and_unknown_ones_are_refused() {
    let (_cluster, url) = serve_pod().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(request(&url, None))
        .await
        .expect("upgrade");
    assert!(resp.headers().get("sec-websocket-protocol").is_none());
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => assert_eq!(&b[..], &[0, 7, 0]),
        other => panic!("expected a binary port prefix, got {other:?}"),
    }
    let refused = tokio_tungstenite::connect_async(request(&url, Some("v5.channel.k8s.io"))).await;
    match refused {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("v5-only port-forward must be refused with 400, got {other:?}"),
    }
}
