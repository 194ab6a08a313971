//! The simulated nodes: a kind-like control plane and two workers per cluster, with the
//! addresses, capacity, conditions and `nodeInfo` that `kubectl get nodes -o wide` and
//! `kubectl describe node` show on a real cluster.

use std::hash::{Hash, Hasher};

use serde_json::{Value, json};

use crate::store::now_rfc3339;

/// The kubelet version every simulated node reports (the server's minor version).
pub const KUBELET_VERSION: &str = "v1.32.4";

/// The default nodes of cluster `cluster`: `<cluster>-control-plane`, `<cluster>-worker`,
/// `<cluster>-worker2`.
pub fn default_nodes(cluster: &str) -> Vec<Value> {
    let net = network_octet(cluster);
    ["control-plane", "worker", "worker2"]
        .iter()
        .enumerate()
        .map(|(i, role)| node(cluster, &format!("{cluster}-{role}"), i, net))
        .collect()
}

/// Each cluster gets its own docker-like network (172.18.0.0/16 for `demo`).
fn network_octet(cluster: &str) -> u8 {
    if cluster == "demo" {
        return 18;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    cluster.hash(&mut h);
    19 + (h.finish() % 10) as u8
}

fn node(cluster: &str, name: &str, index: usize, net: u8) -> Value {
    let control_plane = index == 0;
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    });
    let mut spec = json!({
        "podCIDR": format!("10.244.{index}.0/24"),
        "podCIDRs": [format!("10.244.{index}.0/24")],
        "providerID": format!("kind://docker/{cluster}/{name}"),
    });
    if control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = json!("");
        spec["taints"] =
            json!([{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}]);
    }
    let resources = json!({
        "cpu": "8", "ephemeral-storage": "102626232Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
        "memory": "16318412Ki", "pods": "110",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": format!("172.{net}.0.{}", index + 2)},
                {"type": "ExternalIP", "address": format!("203.0.113.{}", usize::from(net) * 10 + index)},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": resources,
            "capacity": resources,
            "conditions": conditions(),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info(name),
        },
    })
}

fn conditions() -> Value {
    let now = now_rfc3339();
    let c = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn node_info(name: &str) -> Value {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let id = format!("{:016x}{:016x}", h.finish(), h.finish().rotate_left(17));
    json!({
        "architecture": "amd64",
        "bootID": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "containerRuntimeVersion": "containerd://1.7.24",
        "kernelVersion": "6.1.0-28-amd64",
        "kubeProxyVersion": KUBELET_VERSION,
        "kubeletVersion": KUBELET_VERSION,
        "machineID": id,
        "operatingSystem": "linux",
        "osImage": "Debian GNU/Linux 12 (bookworm)",
        "systemUUID": format!("{}-{}-{}-{}-{}", &id[0..8], &id[12..16], &id[8..12], &id[20..24], &id[16..28]),
    })
}
