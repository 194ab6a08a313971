//! Clusters added inside Ferry, made usable by the tunnel engine: a [`ClientSource`] that
//! answers for in-app cluster names (server URL + CA + bearer token from the OS keyring) and
//! asks another source (normally the kubeconfig's [`ClientPool`](crate::clients::ClientPool))
//! for every other context.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::model::Cluster;
use super::store::ProfileStore;
use crate::engine::{ClientSource, ContextClient};
use crate::errors::ClusterError;

/// A client source that knows the in-app clusters of a [`ProfileStore`] and delegates the rest.
pub struct WithInAppClusters {
    fallback: Arc<dyn ClientSource>,
    clusters: HashMap<String, InApp>,
    cache: tokio::sync::Mutex<HashMap<String, ContextClient>>,
}

/// One in-app cluster with its token (or why the token could not be read).
struct InApp {
    cluster: Cluster,
    token: Result<Option<String>, String>,
}

impl WithInAppClusters {
    /// Reads the store's clusters and their tokens now (one keyring lookup each), so the
    /// engine's calls never block on the keyring.
    pub fn new(fallback: Arc<dyn ClientSource>, store: &ProfileStore) -> Self {
        let clusters = store
            .clusters()
            .iter()
            .map(|c| {
                let token = store.cluster_token(&c.name).map_err(|e| e.to_string());
                (
                    c.name.clone(),
                    InApp {
                        cluster: c.clone(),
                        token,
                    },
                )
            })
            .collect();
        WithInAppClusters {
            fallback,
            clusters,
            cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Names of the in-app clusters this source answers for.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clusters.keys().map(String::as_str)
    }

    async fn in_app_client(
        &self,
        name: &str,
        entry: &InApp,
    ) -> Result<ContextClient, ClusterError> {
        let mut cache = self.cache.lock().await;
        if let Some(found) = cache.get(name) {
            return Ok(found.clone());
        }
        let bad = |reason: String| ClusterError::BadContext {
            context: name.to_string(),
            reason,
        };
        let token = entry
            .token
            .clone()
            .map_err(|e| bad(format!("its token cannot be read: {e}")))?;
        let config = kube_config(&entry.cluster, token.as_deref())
            .await
            .map_err(bad)?;
        let client = kube::Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        let made = ContextClient {
            client,
            url: entry.cluster.server.clone(),
        };
        cache.insert(name.to_string(), made.clone());
        Ok(made)
    }
}

impl ClientSource for WithInAppClusters {
    fn client(&self, context: &str) -> BoxFuture<'_, Result<ContextClient, ClusterError>> {
        let context = context.to_string();
        Box::pin(async move {
            match self.clusters.get(&context) {
                Some(entry) => self.in_app_client(&context, entry).await,
                None => self.fallback.client(&context).await,
            }
        })
    }
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
