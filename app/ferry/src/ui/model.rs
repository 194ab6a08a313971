//! What the views read: one immutable [`Model`], assembled on the runtime thread from the
//! engine's and the catalog's snapshots, and swapped in whole. Views never lock, wait or do I/O;
//! they borrow an `Arc<Model>` for the frame.
//!
//! Rows are precomputed here (strings, counts) so that a frame with 5,000 pods only formats the
//! few rows that are visible.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::spec::TunnelSpec;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::networking::v1::Ingress;

/// Everything the window shows, at one instant.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Where the contexts come from; decides between the welcome screen and the main view.
    pub source: SourceState,
    pub contexts: Vec<ContextInfo>,
    /// The kubeconfig's `current-context`, chosen when nothing else was remembered.
    pub current_context: Option<String>,
    /// The namespaces of the selected context.
    pub namespaces: Namespaces,
    /// The objects of the selected context and namespace.
    pub objects: Arc<Objects>,
    pub tunnels: Arc<Vec<TunnelRow>>,
    /// Bumped whenever any tunnel row changes.
    pub tunnels_version: u64,
    pub profiles: Arc<Profiles>,
    /// The app's settings as last read (defaults until then).
    pub settings: ferry_core::settings::Settings,
    /// Why the settings file could not be read or written, if so.
    pub settings_problem: Option<String>,
    /// The instance's open shells, oldest first (each handle reads its latest grid).
    pub terminals: Vec<ferry_core::exec::TerminalHandle>,
}

/// Where the kubeconfig came from, as the welcome screen and the title need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SourceState {
    /// Still reading the kubeconfig.
    #[default]
    Loading,
    /// A kubeconfig was read.
    Kubeconfig { path: String },
    /// The built-in demo cluster runs in this process.
    Demo { kubeconfig: String },
    /// No kubeconfig was found: offer the demo.
    Missing { looked_at: String },
    /// The kubeconfig exists but could not be used.
    Broken { path: String, reason: String },
}

/// One kubeconfig context and how talking to it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextInfo {
    pub name: String,
    pub cluster: String,
    /// The namespace the kubeconfig sets for this context, if any.
    pub namespace: Option<String>,
    pub connection: Connection,
}

/// The connection state of a context, shown next to its name.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Connection {
    /// Not contacted yet (contexts are contacted when first selected).
    #[default]
    Idle,
    Connecting,
    Ok,
    Error(String),
}

/// The namespaces of the selected context.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    pub names: Vec<String>,
    pub loading: bool,
    /// Set when listing namespaces is forbidden: the user types one by hand.
    pub forbidden: Option<String>,
}

/// The objects of one context and namespace, with precomputed table rows.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub context: String,
    pub namespace: String,
    /// True until the first full list has arrived.
    pub loading: bool,
    /// Bumped by the runtime whenever any list changes (tables cache their order on it).
    pub version: u64,
    pub pods: Vec<PodRow>,
    pub services: Vec<ServiceRow>,
    pub deployments: Vec<DeploymentRow>,
    pub endpoints: Vec<Arc<Endpoints>>,
    pub ingresses: Vec<Arc<Ingress>>,
    pub nodes: Vec<Arc<Node>>,
    /// Why a list could not be read (RBAC, connection), if one could not.
    pub error: Option<String>,
}

/// One line of the Pods table.
#[derive(Debug, Clone)]
pub struct PodRow {
    pub name: String,
    pub ready: (usize, usize),
    pub status: String,
    pub restarts: i32,
    pub created: Option<Timestamp>,
    pub node: String,
    pub ip: String,
    pub ports: String,
    pub pod: Arc<Pod>,
}

/// One line of the Services table.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub name: String,
    pub kind: String,
    pub cluster_ip: String,
    pub external_ip: String,
    pub ports: String,
    pub selector: String,
    /// Ready endpoint addresses, when the Endpoints object is known.
    pub endpoints: Option<usize>,
    pub created: Option<Timestamp>,
    /// Its ports with their targets resolved against a backing pod, computed off the frame.
    pub resolved_ports: Vec<ResolvedPort>,
    pub service: Arc<Service>,
}

/// One service port with its target resolved against a backing pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPort {
    pub name: Option<String>,
    pub port: i32,
    pub protocol: String,
    /// The targetPort as written (`8080`, `http`).
    pub target: String,
    /// The container port the target resolves to on a backing pod, if one is known.
    pub container_port: Option<i32>,
    pub node_port: Option<i32>,
}

/// One line of the Deployments table.
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub name: String,
    pub ready: (i32, i32),
    pub up_to_date: i32,
    pub available: i32,
    pub created: Option<Timestamp>,
    pub deployment: Arc<Deployment>,
}

/// The state of a tunnel, as the tunnels table shows it. "Active" only when a listener is bound
/// and a Ready pod is chosen, i.e. a connection made now would be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelStatus {
    Starting,
    Active,
    /// Listening, but no Ready pod to send connections to (waits for one).
    Waiting(String),
    /// Serving, but recent connection attempts failed (the reason says why).
    Degraded(String),
    Stopped,
    /// Gave up until the user acts (e.g. local port taken, target deleted).
    Failed(String),
}

/// One local listener of a tunnel.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub local: SocketAddr,
    /// The remote port as the spec names it (`http`, `8080`).
    pub remote: String,
    /// The resolved container port, once a pod is chosen.
    pub pod_port: Option<u16>,
    /// Whether a browser makes sense for it (named http/https or a common web port).
    pub http: bool,
}

/// One line of the Tunnels table.
#[derive(Debug, Clone)]
pub struct TunnelRow {
    pub id: String,
    pub spec: TunnelSpec,
    /// The profile it was started from, or ad hoc.
    pub origin: ferry_core::engine::Origin,
    pub status: TunnelStatus,
    pub pod: Option<String>,
    pub listeners: Vec<Listener>,
    /// The port-forward protocol of the latest connection (`None` before the first one).
    pub transport: Option<ferry_core::tunnel::Transport>,
    /// Open connections now.
    pub connections: u64,
    pub total_connections: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub errors: u64,
    pub last_error: Option<(Timestamp, String)>,
}

/// Saved profiles as the sidebar and the profiles window show them.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub items: Vec<ProfileInfo>,
    /// Set when the profile file could not be read; the UI offers to restore the backup.
    pub corrupt: Option<String>,
    pub path: Option<String>,
    /// Whether a backup exists to restore (only then is restoring offered).
    pub has_backup: bool,
}

/// One saved profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInfo {
    pub name: String,
    pub autostart: bool,
    pub tunnels: Vec<TunnelSpec>,
    /// How many of its tunnels are running now.
    pub running: usize,
}

impl Model {
    /// The context with this name, if the kubeconfig has it.
    pub fn context(&self, name: &str) -> Option<&ContextInfo> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// True when the app runs on its built-in demo cluster.
    pub fn is_demo(&self) -> bool {
        matches!(self.source, SourceState::Demo { .. })
    }
}
