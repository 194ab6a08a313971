//! Helpers for the port-forward, exec, log and fault tests: pods with chosen port behaviours,
//! waiting for them to run, and the byte pattern of kubesim's `source` ports.

use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

/// How long a pod may take to become Running under fast timing.
pub const POD_START: Duration = Duration::from_secs(20);

/// A pod with one container `main` (and `second` when `two_containers`) whose ports behave as
/// named: 80 `http` (http-hello), 7 `echo`, 19 `chargen` (source), 9 `discard`, 13 `shut`
/// (closed, declared but nothing listens).
pub fn test_pod(name: &str, two_containers: bool) -> Value {
    let mut containers = vec![json!({
        "name": "main",
        "image": "busybox:1.36",
        "env": [{"name": "GREETING", "value": "hello from main"}],
        "ports": [
            {"containerPort": 80, "name": "http"},
            {"containerPort": 7, "name": "echo"},
            {"containerPort": 19, "name": "chargen"},
            {"containerPort": 9, "name": "discard"},
            {"containerPort": 13, "name": "shut"}
        ]
    })];
    if two_containers {
        containers.push(json!({
            "name": "second",
            "image": "busybox:1.36",
            "env": [{"name": "GREETING", "value": "hello from second"}]
        }));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "annotations": {
                "kubesim.ferry.dev/port.echo": "echo",
                "kubesim.ferry.dev/port.chargen": "source",
                "kubesim.ferry.dev/port.discard": "discard",
                "kubesim.ferry.dev/port.shut": "closed"
            }
        },
        "spec": {"containers": containers}
    })
}

/// Creates `manifest` in `default` and waits until the pod is Running.
pub async fn create_running_pod(client: &kube::Client, manifest: Value) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(manifest).context("test pod manifest")?;
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .context("creating the test pod")?;
    let name = created.metadata.name.clone().unwrap_or_default();
    wait_running(&pods, &name).await
}

/// Waits until the pod is Running (fails after [`POD_START`]).
pub async fn wait_running(pods: &Api<Pod>, name: &str) -> anyhow::Result<Pod> {
    let running = kube::runtime::wait::conditions::is_pod_running();
    let waited = tokio::time::timeout(
        POD_START,
        kube::runtime::wait::await_condition(pods.clone(), name, running),
    )
    .await;
    match waited {
        Ok(Ok(Some(pod))) => Ok(pod),
        Ok(Ok(None)) => bail!("pod {name} was deleted while waiting for it to run"),
        Ok(Err(e)) => Err(e).context("watching the pod"),
        Err(_) => bail!("pod {name} did not become Running within {POD_START:?}"),
    }
}

/// Byte `i` of any connection to a kubesim `source` port.
pub fn source_byte(i: u64) -> u8 {
    (i % 256) as u8
}

/// SHA-256 of the first `len` bytes a `source` port sends.
pub fn source_sha256(len: u64) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let block: Vec<u8> = (0..65536u64).map(source_byte).collect();
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        h.update(&block[..n]);
        left -= n as u64;
    }
    h.finalize().into()
}
