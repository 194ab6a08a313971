//! The runtime thread's main task: owns the client pool, the engine, the catalog and (in demo
//! mode) kubesim, applies [`Request`]s, and turns their snapshots into the UI's [`Model`].

use std::net::{IpAddr, SocketAddr};

use tokio::sync::mpsc;

use super::model::SourceState;
use super::runtime::{Notice, Publisher, Request, Source};
use super::theme::Tone;

/// Runs until the request channel closes (the window closed).
pub async fn run(
    source: Source,
    mut requests: mpsc::UnboundedReceiver<Request>,
    publisher: Publisher,
) {
    let state = match &source {
        Source::Demo => SourceState::Missing {
            looked_at: "the demo cluster".into(),
        },
        Source::Env | Source::Paths(_) => SourceState::Missing {
            looked_at: "~/.kube/config".into(),
        },
    };
    publisher.update(|m| m.source = state);
    while let Some(request) = requests.recv().await {
        handle(request, &publisher).await;
    }
}

async fn handle(request: Request, publisher: &Publisher) {
    match request {
        Request::CheckPort { bind, port } => {
            let free = port_is_free(bind, port).await;
            publisher.notice(Notice::PortChecked { bind, port, free });
        }
        Request::NextFreePort { index, bind, from } => {
            let mut found = None;
            for port in from..=u16::MAX {
                if port_is_free(bind, port).await {
                    found = Some(port);
                    break;
                }
            }
            publisher.notice(Notice::NextFreePort { index, port: found });
        }
        other => publisher.event(Tone::Warn, format!("not available yet: {other:?}")),
    }
}

/// Whether a listener could bind this address and port right now.
async fn port_is_free(bind: IpAddr, port: u16) -> bool {
    tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .is_ok()
}
