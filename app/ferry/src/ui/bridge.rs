//! Turns ferry-core's snapshots (catalog views, tunnel snapshots, events, profiles) into the
//! UI's [`Model`] parts. Pure functions, run on the runtime thread, unit-tested here.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::catalog::{CatalogView, ConnectionState, ListKind, ListState};
use ferry_core::engine::{EventKind, TunnelSnapshot, TunnelState};
use ferry_core::profiles::Profile;
use ferry_core::spec::{RemotePort, TunnelSpec};

use super::model::{
    Connection, DeploymentRow, Listener, Namespaces, Objects, PodRow, ProfileInfo, ServiceRow,
    TunnelRow, TunnelStatus,
};
use super::theme::Tone;

/// The catalog's connection state in the sidebar's words.
pub fn connection(view: &CatalogView) -> Connection {
    match &view.connection {
        ConnectionState::Connecting => Connection::Connecting,
        ConnectionState::Connected => Connection::Ok,
        ConnectionState::Error { reason } => Connection::Error(reason.clone()),
    }
}

/// The namespaces part of the model.
pub fn namespaces(view: &CatalogView) -> Namespaces {
    let forbidden =
        view.namespaces_forbidden
            .then(|| match view.lists.get(&ListKind::Namespaces) {
                Some(ListState::Failed(e)) => e.to_string(),
                _ => "forbidden".to_string(),
            });
    Namespaces {
        names: view.namespaces.as_ref().clone(),
        loading: matches!(
            view.lists.get(&ListKind::Namespaces),
            Some(ListState::Loading)
        ),
        forbidden,
    }
}

/// Rebuilds the object rows for a catalog view, reusing the rows of objects that did not change
/// (same `Arc`), so a pod event in a 5,000-pod namespace reformats one row, not 5,000.
pub fn objects(view: &CatalogView, previous: &Objects, version: u64) -> Objects {
    let same_scope = previous.context == view.context && previous.namespace == view.namespace;
    let old_pods: HashMap<&str, &PodRow> = if same_scope {
        previous.pods.iter().map(|r| (r.name.as_str(), r)).collect()
    } else {
        HashMap::new()
    };
    let pods = view
        .pods
        .iter()
        .map(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            match old_pods.get(name) {
                Some(row) if Arc::ptr_eq(&row.pod, p) => (*row).clone(),
                _ => PodRow::new(p.clone()),
            }
        })
        .collect();
    let services = view
        .services
        .iter()
        .map(|s| {
            let endpoints = view
                .endpoints
                .iter()
                .find(|e| e.metadata.name == s.metadata.name);
            ServiceRow::new(
                s.clone(),
                endpoints.map(|e| e.as_ref()),
                view.pods.iter().map(|p| p.as_ref()),
            )
        })
        .collect();
    let loading = [ListKind::Pods, ListKind::Services, ListKind::Deployments]
        .iter()
        .any(|k| matches!(view.lists.get(k), Some(ListState::Loading)));
    Objects {
        context: view.context.clone(),
        namespace: view.namespace.clone(),
        loading: loading && !matches!(view.connection, ConnectionState::Error { .. }),
        version,
        pods,
        services,
        deployments: view
            .deployments
            .iter()
            .map(|d| DeploymentRow::new(d.clone()))
            .collect(),
        endpoints: view.endpoints.as_ref().clone(),
        ingresses: view.ingresses.as_ref().clone(),
        nodes: view.nodes.as_ref().clone(),
        error: list_error(view),
    }
}

/// What to say above the tables when the connection or a main list failed.
fn list_error(view: &CatalogView) -> Option<String> {
    if let ConnectionState::Error { reason } = &view.connection {
        return Some(reason.clone());
    }
    [ListKind::Pods, ListKind::Services, ListKind::Deployments]
        .iter()
        .find_map(|k| match view.lists.get(k) {
            Some(ListState::Failed(e)) => Some(e.to_string()),
            _ => None,
        })
}

/// Ports a browser makes sense for: named http/https/web, or the usual web port numbers.
pub fn looks_like_http(remote: &str, resolved: Option<u16>) -> bool {
    const WEB: [u16; 9] = [80, 443, 3000, 5000, 8000, 8080, 8443, 8888, 9090];
    let name = remote.to_ascii_lowercase();
    name.contains("http")
        || name.contains("web")
        || remote.parse().is_ok_and(|n: u16| WEB.contains(&n))
        || resolved.is_some_and(|n| WEB.contains(&n))
}

/// One row of the tunnels table from an engine snapshot.
pub fn tunnel_row(s: &TunnelSnapshot) -> TunnelRow {
    let detail = s.detail.clone().unwrap_or_default();
    let status = match s.state {
        TunnelState::Starting => TunnelStatus::Starting,
        TunnelState::Active => TunnelStatus::Active,
        TunnelState::Degraded => TunnelStatus::Degraded(detail),
        TunnelState::Waiting => TunnelStatus::Waiting(detail),
        TunnelState::Failed => TunnelStatus::Failed(detail),
        TunnelState::Stopped => TunnelStatus::Stopped,
    };
    let listeners = s
        .ports
        .iter()
        .zip(&s.spec.ports)
        .flat_map(|(p, spec)| {
            let remote = match &spec.remote {
                RemotePort::Number(n) => n.to_string(),
                RemotePort::Name(n) => n.clone(),
            };
            let http = looks_like_http(&remote, p.remote);
            p.local.iter().map(move |local| Listener {
                local: *local,
                remote: remote.clone(),
                pod_port: p.remote,
                http,
            })
        })
        .collect();
    let pod = match s.pods.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} +{}", rest.len())),
    };
    TunnelRow {
        origin: s.origin.clone(),
        id: s.id.to_string(),
        spec: s.spec.clone(),
        status,
        pod,
        listeners,
        transport: s.transport,
        connections: s.active_connections,
        total_connections: s.total_connections,
        bytes_in: s.bytes_received,
        bytes_out: s.bytes_sent,
        errors: s.errors,
        last_error: s.last_error.as_ref().map(|e| (e.at, e.message.clone())),
    }
}

/// The tone of an engine event in the log, and whether it deserves a toast.
pub fn event_tone(kind: &EventKind) -> (Tone, bool) {
    match kind {
        EventKind::StateChanged { to, .. } => match to {
            TunnelState::Active => (Tone::Good, false),
            TunnelState::Starting => (Tone::Busy, false),
            TunnelState::Degraded | TunnelState::Waiting => (Tone::Warn, false),
            TunnelState::Failed => (Tone::Bad, true),
            TunnelState::Stopped => (Tone::Quiet, false),
        },
        EventKind::Listening { .. } | EventKind::PodsChanged { .. } => (Tone::Quiet, false),
        EventKind::ConnectionFailed { .. }
        | EventKind::Reconnecting { .. }
        | EventKind::ClockJumped { .. } => (Tone::Warn, false),
        EventKind::Warning { .. } => (Tone::Warn, true),
    }
}

/// The sidebar's view of the saved profiles: how many of each profile's tunnels run now.
pub fn profiles(saved: &[Profile], tunnels: &[TunnelRow]) -> Vec<ProfileInfo> {
    saved
        .iter()
        .map(|p| {
            let specs: Vec<TunnelSpec> = p.specs().cloned().collect();
            // A tunnel says which profile started it; specs are never compared for this.
            let running = tunnels
                .iter()
                .filter(|t| t.origin.profile() == Some(p.name.as_str()) && t.status.is_running())
                .count();
            ProfileInfo {
                name: p.name.clone(),
                autostart: p.autostart,
                tunnels: specs,
                running,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::engine::Origin;

    #[test]
    fn web_ports_open_in_the_browser_and_databases_do_not() {
        assert!(looks_like_http("http", Some(8080)));
        assert!(looks_like_http("80", None));
        assert!(looks_like_http("metrics", Some(9090)));
        assert!(!looks_like_http("5432", Some(5432)));
        assert!(!looks_like_http("redis", Some(6379)));
    }

    #[test]
    fn profile_running_counts_only_live_tunnels_of_that_profile() {
        let spec: TunnelSpec = serde_json::from_str(
            r#"{"context":"demo","namespace":"default","target":"svc/kubia","ports":["8080:80"]}"#,
        )
        .unwrap();
        let row = |status, origin| TunnelRow {
            id: "t1".into(),
            spec: spec.clone(),
            origin,
            status,
            pod: None,
            listeners: Vec::new(),
            transport: None,
            connections: 0,
            total_connections: 0,
            bytes_in: 0,
            bytes_out: 0,
            errors: 0,
            last_error: None,
        };
        let web = || Origin::Profile("web".into());
        let profile = Profile::new("web", [spec.clone()]);
        let running =
            |rows: &[TunnelRow]| profiles(std::slice::from_ref(&profile), rows)[0].running;
        assert_eq!(running(&[row(TunnelStatus::Active, web())]), 1);
        assert_eq!(running(&[row(TunnelStatus::Stopped, web())]), 0);
        // The same spec started ad hoc, or by another profile, is not this profile's.
        assert_eq!(running(&[row(TunnelStatus::Active, Origin::AdHoc)]), 0);
        assert_eq!(
            running(&[row(TunnelStatus::Active, Origin::Profile("db".into()))]),
            0
        );
    }
}
