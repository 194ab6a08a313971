//! Helpers for the tunnel tests: an engine on a kubesim, tunnel specs, waiting for states with
//! deadlines, plain HTTP/1.1 over real sockets, and cluster changes (delete a pod, scale).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ferry_core::clients::ClientPool;
use ferry_core::engine::{Engine, EngineOptions, TunnelId, TunnelSnapshot, TunnelState};
use ferry_core::spec::{Spread, TunnelSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::TestCluster;

/// A kubesim with the demo world and a tunnel engine using its kubeconfig.
pub struct TunnelEnv {
    pub cluster: TestCluster,
    pub engine: Engine,
    /// An admin client for `demo`, to change the cluster under the tunnels.
    pub client: kube::Client,
}

/// Start the demo world and an engine on it with default options.
pub async fn tunnel_env() -> anyhow::Result<TunnelEnv> {
    tunnel_env_with(EngineOptions::default()).await
}

/// Start the demo world and an engine with `options`.
pub async fn tunnel_env_with(options: EngineOptions) -> anyhow::Result<TunnelEnv> {
    tunnel_env_on(crate::start_demo().await?, options).await
}

/// An engine with `options` on `cluster`, which runs the demo world.
pub async fn tunnel_env_on(
    cluster: TestCluster,
    options: EngineOptions,
) -> anyhow::Result<TunnelEnv> {
    let pool = ClientPool::from_paths(&[cluster.kubeconfig().to_path_buf()])
        .context("the kubeconfig kubesim wrote could not be loaded")?;
    let engine = Engine::new(&tokio::runtime::Handle::current(), Arc::new(pool), options);
    let client = cluster.client("demo").await?;
    let env = TunnelEnv {
        cluster,
        engine,
        client,
    };
    env.wait_ready_pods("app=kubia", 3).await?;
    Ok(env)
}

/// A tunnel spec in context `demo`, namespace `default`.
pub fn spec(target: &str, ports: &[&str]) -> TunnelSpec {
    spec_in("demo", "default", target, ports)
}

/// A tunnel spec in any context and namespace. Panics on a malformed literal (test input).
pub fn spec_in(context: &str, namespace: &str, target: &str, ports: &[&str]) -> TunnelSpec {
    TunnelSpec {
        context: context.into(),
        namespace: namespace.into(),
        target: target.parse().expect("test target literal"),
        ports: ports
            .iter()
            .map(|p| p.parse().expect("test port literal"))
            .collect(),
        bind: vec![],
        spread: Spread::Single,
        alias: None,
        note: None,
    }
}

impl TunnelEnv {
    /// Start a tunnel and wait until it is Active.
    pub async fn start_active(
        &self,
        spec: TunnelSpec,
    ) -> anyhow::Result<(TunnelId, TunnelSnapshot)> {
        let id = self.engine.start(spec);
        let snap = self
            .wait_state(id, TunnelState::Active, Duration::from_secs(10))
            .await?;
        Ok((id, snap))
    }

    /// Wait until tunnel `id` is in `state`, failing with its last snapshot after `deadline`.
    pub async fn wait_state(
        &self,
        id: TunnelId,
        state: TunnelState,
        deadline: Duration,
    ) -> anyhow::Result<TunnelSnapshot> {
        self.wait_snapshot(id, deadline, &format!("state {state}"), |s| {
            s.state == state
        })
        .await
    }

    /// Wait until tunnel `id`'s snapshot satisfies `check`.
    pub async fn wait_snapshot(
        &self,
        id: TunnelId,
        deadline: Duration,
        what: &str,
        check: impl FnMut(&TunnelSnapshot) -> bool,
    ) -> anyhow::Result<TunnelSnapshot> {
        match self.engine.wait_for(id, deadline, check).await {
            Ok(s) => Ok(s),
            Err(last) => {
                bail!("timed out after {deadline:?} waiting for {what}; last snapshot: {last:#?}")
            }
        }
    }

    /// Names of the Ready pods matching `selector`, once there are `count` of them.
    pub async fn wait_ready_pods(
        &self,
        selector: &str,
        count: usize,
    ) -> anyhow::Result<Vec<String>> {
        wait_ready_pods(&self.client, selector, count).await
    }

    /// Delete a pod in `default` (immediately: grace period 0).
    pub async fn delete_pod(&self, name: &str) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        api.delete(name, &DeleteParams::default().grace_period(0))
            .await
            .with_context(|| format!("could not delete pod {name}"))?;
        Ok(())
    }

    /// Scale a deployment in `default`.
    pub async fn scale(&self, deployment: &str, replicas: i32) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), "default");
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        api.patch_scale(deployment, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("could not scale {deployment} to {replicas}"))?;
        Ok(())
    }
}

/// Names of the Ready pods in `default` matching `selector`, once there are exactly `count`.
pub async fn wait_ready_pods(
    client: &kube::Client,
    selector: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    crate::wait_for(
        &format!("{count} ready pods for {selector}"),
        Duration::from_secs(20),
        || {
            let api = api.clone();
            async move {
                let pods = api
                    .list(&ListParams::default().labels(selector))
                    .await
                    .ok()?;
                let ready: Vec<String> = pods
                    .items
                    .iter()
                    .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                (ready.len() == count).then_some(ready)
            }
        },
    )
    .await
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The IPv4 loopback address of port `index` of a snapshot.
pub fn local_v4(snap: &TunnelSnapshot, index: usize) -> anyhow::Result<SocketAddr> {
    snap.ports
        .get(index)
        .and_then(|p| p.local.iter().find(|a| a.is_ipv4()).copied())
        .with_context(|| format!("port {index} of the tunnel is not listening on IPv4: {snap:#?}"))
}

/// `GET path` over a new connection with `Connection: close`; returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("could not connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("no complete HTTP answer within 10 s")??;
    let text = String::from_utf8_lossy(&response).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("not an HTTP response: {text:?}");
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("HTTP answer was not 200: {head}");
    }
    Ok(body.to_string())
}

/// The pod name in a kubia `http-hello` answer ("You've hit kubia-…").
pub fn hit_pod(body: &str) -> Option<String> {
    body.trim().strip_prefix("You've hit ").map(str::to_string)
}

impl TunnelEnv {
    /// Create a deployment `name` in `default` whose pods echo on container port 7777 (named
    /// `echo`), wait for `replicas` Ready pods, and return the first two names.
    pub async fn echo_pods(&self, name: &str, replicas: i32) -> anyhow::Result<(String, String)> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), "default");
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {
                        "labels": {"app": name},
                        "annotations": {"kubesim.ferry.dev/port.echo": "echo"}
                    },
                    "spec": {"containers": [{
                        "name": "echo",
                        "image": "echo:1",
                        "ports": [{"name": "echo", "containerPort": 7777}]
                    }]}
                }
            }
        }))?;
        api.create(&Default::default(), &deployment)
            .await
            .with_context(|| format!("could not create deployment {name}"))?;
        let pods = self
            .wait_ready_pods(&format!("app={name}"), replicas as usize)
            .await?;
        match pods.as_slice() {
            [a, b, ..] => Ok((a.clone(), b.clone())),
            _ => bail!("need at least two echo pods, got {pods:?}"),
        }
    }
}
