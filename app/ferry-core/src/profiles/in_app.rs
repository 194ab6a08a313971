//! Clusters added inside Ferry, made usable everywhere: their server URL + CA + bearer token
//! (from the OS keyring) become clients in the instance's one
//! [`ClientPool`](crate::clients::ClientPool), beside the kubeconfig's contexts, so the
//! catalog, logs, tunnels and exec all reach them the same way.

use super::model::Cluster;
use super::store::ProfileStore;
use crate::clients::ClientPool;
use crate::kubeconfig::ContextInfo;

/// The in-app clusters of a profile store with their tokens, read once (one keyring lookup
/// each) so that nothing later blocks on the keyring.
pub struct InAppClusters {
    clusters: Vec<InApp>,
}

/// One in-app cluster with its token (or why the token could not be read).
struct InApp {
    cluster: Cluster,
    token: Result<Option<String>, String>,
}

impl InAppClusters {
    /// Reads the store's clusters and their tokens now. Blocking (the keyring): call it off
    /// the async threads.
    pub fn read(store: &ProfileStore) -> Self {
        let clusters = store
            .clusters()
            .iter()
            .map(|c| InApp {
                cluster: c.clone(),
                token: store.cluster_token(&c.name).map_err(|e| e.to_string()),
            })
            .collect();
        InAppClusters { clusters }
    }

    /// Names of the clusters read.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clusters.iter().map(|c| c.cluster.name.as_str())
    }

    /// Adds every cluster whose client can be built to `pool` (shadowing a kubeconfig context
    /// of the same name). Returns one sentence per cluster that could not be added; these
    /// never contain the token.
    pub async fn install(self, pool: &ClientPool) -> Vec<String> {
        let mut problems = Vec::new();
        for entry in self.clusters {
            let name = entry.cluster.name.clone();
            match client(&entry).await {
                Ok(client) => pool.add_in_app(
                    ContextInfo {
                        name: name.clone(),
                        cluster: name,
                        server: Some(entry.cluster.server.clone()),
                        user: None,
                        namespace: None,
                        is_current: false,
                        uses_exec_plugin: false,
                        source: None,
                    },
                    client,
                ),
                Err(reason) => problems.push(format!(
                    "the cluster \"{name}\" added in Ferry cannot be used: {reason}"
                )),
            }
        }
        problems
    }
}

async fn client(entry: &InApp) -> Result<kube::Client, String> {
    let token = entry
        .token
        .clone()
        .map_err(|e| format!("its token cannot be read from the OS keyring ({e})"))?;
    let config = kube_config(&entry.cluster, token.as_deref()).await?;
    crate::http_stack::client(config).map_err(|e| e.to_string())
}

/// A kube config for an in-app cluster, built the way kube reads a kubeconfig entry (so the CA
/// is decoded exactly as for `certificate-authority-data`).
async fn kube_config(cluster: &Cluster, token: Option<&str>) -> Result<kube::Config, String> {
    let mut user = serde_json::Map::new();
    if let Some(token) = token {
        user.insert("token".into(), token.into());
    }
    let mut server = serde_json::Map::new();
    server.insert("server".into(), cluster.server.clone().into());
    if let Some(ca) = &cluster.ca_data {
        server.insert("certificate-authority-data".into(), ca.clone().into());
    }
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-app", "cluster": server}],
        "users": [{"name": "in-app", "user": user}],
        "contexts": [{"name": "in-app", "context": {"cluster": "in-app", "user": "in-app"}}],
        "current-context": "in-app",
    });
    let kubeconfig: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig).map_err(|e| format!("invalid cluster settings: {e}"))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| format!("invalid cluster settings (server URL or CA): {e}"))
}
