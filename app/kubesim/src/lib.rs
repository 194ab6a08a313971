//! kubesim is a simulated Kubernetes API server. It speaks the real wire protocol (REST,
//! watch, discovery, Table output, and later pods/portforward and pods/exec) so that the real
//! `kubectl` and kube-rs cannot tell it from a cluster, while everything behind the API —
//! pods, deployments, endpoints — is simulated in memory. Ferry's tests, its benchmarks and
//! `ferry --demo` all run on it.
//!
//! Layers, from the bottom: [`store`] (objects, versions, watch history), [`cluster`] (one
//! simulated cluster's shared state), the simulation controllers, the REST API, and the server
//! that owns the sockets.

pub mod api;
pub mod auth;
pub mod channel;
pub mod cluster;
pub mod containers;
pub mod discovery;
pub mod exec;
pub mod faults;
pub mod kubeconfig;
pub mod logs;
pub mod portforward;
pub mod process;
pub mod resources;
pub mod server;
pub mod sim;
pub mod spdy_server;
pub mod store;
pub mod streams;
pub mod tls;
pub mod world;

pub use auth::User;
pub use cluster::{Cluster, Timing};
pub use server::ServerControl;
pub use world::World;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How to start kubesim.
#[derive(Debug, Clone)]
pub struct KubesimConfig {
    /// The clusters and their manifests. An empty world gives the clusters `demo` and
    /// `staging` with only their system objects.
    pub world: World,
    /// Port of the primary cluster; `None` picks a free one. Other clusters always get free
    /// ports.
    pub port: Option<u16>,
    /// Serve plain HTTP instead of TLS.
    pub plain_http: bool,
    pub timing: Timing,
    /// Where to write the kubeconfig; `None` writes it into a private temporary directory that
    /// lives as long as the [`Kubesim`].
    pub kubeconfig_path: Option<PathBuf>,
    /// Address to listen on; loopback unless you really mean otherwise.
    pub bind: IpAddr,
    /// The `PortForwardWebsockets` feature gate (on by default since Kubernetes 1.31): accept
    /// kubectl's SPDY-over-WebSocket port-forward tunnel. Off, kubesim answers such a request
    /// as an API server before 1.30 does (400, the kubelet's "port is required"), so clients
    /// fall back to the v4 WebSocket or the legacy SPDY upgrade.
    pub port_forward_websockets: bool,
}

impl Default for KubesimConfig {
    fn default() -> Self {
        Self {
            world: World::default(),
            port: None,
            plain_http: false,
            timing: Timing::default(),
            kubeconfig_path: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_forward_websockets: true,
        }
    }
}

/// Why kubesim could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(
        "could not listen on {addr}: {source} (is the port already in use? choose another with --port, or 0 for any)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("could not create kubesim's private temporary folder: {0}")]
    TempDir(std::io::Error),
    #[error("the world could not be loaded into cluster {cluster}: {source}")]
    World {
        cluster: String,
        source: world::WorldError,
    },
}

/// One running cluster: its state and its listener.
struct Served {
    cluster: Arc<Cluster>,
    control: ServerControl,
    url: String,
}

/// A running kubesim: every cluster of the world served on its own port, and a kubeconfig
/// that reaches them. Dropping it stops the servers and the simulation.
pub struct Kubesim {
    served: Vec<Served>,
    tokens: Arc<auth::Tokens>,
    kubeconfig_path: PathBuf,
    ca_pem: Option<String>,
    /// This kubesim's private folder (mode 0700): the kubeconfig unless the config names one,
    /// and every simulated pod's working directory. Removed with everything in it when the
    /// kubesim stops or is dropped, so no `kubesim-…` folders pile up in the temp dir.
    scratch: tempfile::TempDir,
}

impl std::fmt::Debug for Kubesim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubesim")
            .field(
                "clusters",
                &self.served.iter().map(|s| &s.url).collect::<Vec<_>>(),
            )
            .field("kubeconfig", &self.kubeconfig_path)
            .field("scratch", &self.scratch.path())
            .finish_non_exhaustive()
    }
}

impl Kubesim {
    /// Starts every cluster of `config.world`, each on its own listener, and writes the
    /// kubeconfig. Must be called inside a tokio runtime.
    pub async fn start(config: KubesimConfig) -> Result<Kubesim, Error> {
        let tls = if config.plain_http {
            None
        } else {
            Some(tls::generate()?)
        };
        let tokens = Arc::new(auth::Tokens::generate());
        let scratch = containers::private_tempdir("kubesim-", None).map_err(Error::TempDir)?;
        let mut clusters = config.world.clusters.clone();
        if clusters.is_empty() {
            clusters = vec![("demo".into(), Vec::new()), ("staging".into(), Vec::new())];
        }
        let mut served = Vec::new();
        for (i, (name, manifests)) in clusters.into_iter().enumerate() {
            let cluster = Cluster::new(name.clone(), config.timing.clone());
            cluster
                .port_forward_websockets
                .store(config.port_forward_websockets, Ordering::Relaxed);
            cluster.containers.keep_workdirs_in(scratch.path());
            // Before the pods: simulated container listeners follow pod events from the start.
            containers::start(&cluster);
            sim::start(&cluster, manifests).map_err(|source| Error::World {
                cluster: name.clone(),
                source,
            })?;
            let port = if i == 0 { config.port.unwrap_or(0) } else { 0 };
            let addr = SocketAddr::new(config.bind, port);
            let router = api::router(Arc::new(api::ApiState {
                cluster: cluster.clone(),
                tokens: tokens.clone(),
            }));
            let control =
                ServerControl::start(addr, router, tls.as_ref().map(|t| t.acceptor.clone()))
                    .await
                    .map_err(|source| Error::Bind { addr, source })?;
            let _ = cluster.server.set(control.clone());
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}", control.local_addr());
            tracing::info!(cluster = %name, %url, "serving");
            served.push(Served {
                cluster,
                control,
                url,
            });
        }
        let kubeconfig_path = config
            .kubeconfig_path
            .unwrap_or_else(|| scratch.path().join("kubeconfig"));
        let ca_pem = tls.map(|t| t.ca_pem);
        let entries: Vec<kubeconfig::ClusterEntry> = served
            .iter()
            .map(|s| kubeconfig::ClusterEntry {
                name: s.cluster.name.clone(),
                server: s.url.clone(),
                ca_pem: ca_pem.clone(),
            })
            .collect();
        kubeconfig::write(&kubeconfig_path, &kubeconfig::render(&entries, &tokens))?;
        Ok(Kubesim {
            served,
            tokens,
            kubeconfig_path,
            ca_pem,
            scratch,
        })
    }

    /// The kubeconfig file (mode 0600) with contexts `demo`, `demo-restricted`, `demo-viewer`
    /// and one per further cluster (`staging`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Option<Arc<Cluster>> {
        self.served
            .iter()
            .find(|s| s.cluster.name == name)
            .map(|s| s.cluster.clone())
    }

    /// Every cluster, primary first.
    pub fn clusters(&self) -> Vec<Arc<Cluster>> {
        self.served.iter().map(|s| s.cluster.clone()).collect()
    }

    /// The primary cluster (the kubeconfig's current context).
    pub fn primary(&self) -> Arc<Cluster> {
        self.served[0].cluster.clone()
    }

    /// `https://127.0.0.1:PORT` of the cluster called `name`.
    pub fn server_url(&self, name: &str) -> Option<String> {
        self.served
            .iter()
            .find(|s| s.cluster.name == name)
            .map(|s| s.url.clone())
    }

    /// The listener controls (pause, resume, stop, restart) of the cluster called `name`.
    pub fn server(&self, name: &str) -> Option<ServerControl> {
        self.served
            .iter()
            .find(|s| s.cluster.name == name)
            .map(|s| s.control.clone())
    }

    /// The bearer token of `user` (valid on every cluster of this kubesim).
    pub fn token(&self, user: User) -> String {
        self.tokens.token(user).to_string()
    }

    /// PEM of the CA that signed the server certificate (`None` with plain HTTP).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Stops every listener (closing every connection) and the simulation, and removes the
    /// private folder.
    pub async fn shutdown(self) {
        for s in &self.served {
            s.control.stop().await;
            sim::stop(&s.cluster);
            s.cluster.containers.stop_all();
        }
    }
}

impl Drop for Kubesim {
    fn drop(&mut self) {
        for s in &self.served {
            s.control.shutdown_now();
            sim::stop(&s.cluster);
            s.cluster.containers.stop_all();
        }
        // `scratch` is dropped after this, removing the folder and the pods' folders in it
        // (even those a stream still holds open).
    }
}
