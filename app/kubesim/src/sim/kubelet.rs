//! The kubelet: once a pod is bound to a node it walks it through the lifecycle a real kubelet
//! reports — `Pending` with `ContainerCreating`, then `Running` with an IP from the node's pod
//! CIDR after [`crate::cluster::Timing::pod_start`], then `Ready` after
//! [`crate::cluster::Timing::pod_ready`] — or keeps it crash-looping or not-ready when the pod's
//! behaviour annotation says so. One timer task per pod; no polling.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::behaviour::{PodBehaviour, pod_behaviour};
use super::events;
use super::objects::{array_at, is_terminating, name, set_condition, str_at, uid};
use super::scheduler;
use crate::cluster::Cluster;
use crate::store::{Change, EventType, StoreError, now_rfc3339};

/// The order in which a real kubelet lists pod conditions.
const CONDITION_ORDER: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Reacts to pod and node changes: schedules new pods and starts the lifecycle of bound ones.
pub fn on_changes(cluster: &Arc<Cluster>, changes: &[Change]) {
    let mut pods = BTreeSet::new();
    let mut nodes_changed = false;
    for change in changes {
        match (change.key.resource.as_str(), change.event) {
            ("pods", EventType::Deleted) => forget(cluster, uid(&change.object)),
            ("pods", _) => {
                pods.insert((change.key.namespace.clone(), change.key.name.clone()));
            }
            ("nodes", EventType::Added | EventType::Modified) => nodes_changed = true,
            _ => {}
        }
    }
    for (ns, name) in pods {
        if let Some(pod) = cluster.store.get("pods", &ns, &name) {
            handle_pod(cluster, &ns, &pod);
        }
    }
    if nodes_changed {
        retry_unschedulable(cluster);
    }
}

/// Looks at every pod (at start-up or after falling behind).
pub fn resync(cluster: &Arc<Cluster>) {
    let (pods, _) = cluster.store.list("pods", None);
    for pod in &pods {
        let ns = str_at(pod, "/metadata/namespace")
            .unwrap_or_default()
            .to_string();
        handle_pod(cluster, &ns, pod);
    }
}

fn handle_pod(cluster: &Arc<Cluster>, namespace: &str, pod: &Value) {
    if is_terminating(pod) {
        return;
    }
    let Some(node) = str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty()) else {
        if !scheduler::is_unschedulable(pod) {
            scheduler::schedule(cluster, namespace, pod);
        }
        return;
    };
    if str_at(pod, "/status/phase").is_some_and(|p| p == "Succeeded" || p == "Failed") {
        return;
    }
    let pod_uid = uid(pod).to_string();
    if !cluster.sim.lock().kubelet_pods.insert(pod_uid.clone()) {
        return;
    }
    let target = PodRef {
        cluster: Arc::downgrade(cluster),
        namespace: namespace.to_string(),
        name: name(pod).to_string(),
        uid: pod_uid,
        node: node.to_string(),
    };
    super::runner::spawn(cluster, lifecycle(target, pod_behaviour(pod)));
}

fn retry_unschedulable(cluster: &Arc<Cluster>) {
    let (pods, _) = cluster.store.list("pods", None);
    for pod in pods.iter().filter(|p| scheduler::is_unschedulable(p)) {
        let ns = str_at(pod, "/metadata/namespace")
            .unwrap_or_default()
            .to_string();
        scheduler::schedule(cluster, &ns, pod);
    }
}

fn forget(cluster: &Cluster, pod_uid: &str) {
    let mut sim = cluster.sim.lock();
    sim.kubelet_pods.remove(pod_uid);
    sim.terminating_pods.remove(pod_uid);
    sim.ready_override.remove(pod_uid);
}

/// The pod one lifecycle task looks after.
struct PodRef {
    cluster: Weak<Cluster>,
    namespace: String,
    name: String,
    uid: String,
    node: String,
}

impl PodRef {
    /// Applies `change` to the pod if it still exists, is still the same pod and is not being
    /// deleted. Returns `false` when the lifecycle should end.
    fn update(&self, change: impl FnOnce(&mut Value, &Cluster)) -> bool {
        let Some(cluster) = self.cluster.upgrade() else {
            return false;
        };
        let mut alive = false;
        let result = cluster
            .store
            .update("pods", &self.namespace, &self.name, |pod| {
                if uid(pod) == self.uid && !is_terminating(pod) {
                    alive = true;
                    change(pod, &cluster);
                }
            });
        result.is_ok() && alive
    }

    fn timing(&self) -> Option<crate::cluster::Timing> {
        self.cluster.upgrade().map(|c| c.timing.clone())
    }

    /// Records, for each container, the kubelet event `reason` with the message `message`
    /// gives for it (none when it gives `None`).
    fn container_events(
        &self,
        reason: &str,
        warning: bool,
        message: impl Fn(&Value) -> Option<String>,
    ) {
        let Some(cluster) = self.cluster.upgrade() else {
            return;
        };
        let Some(pod) = cluster.store.get("pods", &self.namespace, &self.name) else {
            return;
        };
        if uid(&pod) != self.uid {
            return;
        }
        for container in array_at(&pod, "/spec/containers") {
            let Some(text) = message(container) else {
                continue;
            };
            let name = str_at(container, "/name");
            let mut event = events::pod_event(&pod, name, reason, text);
            event.warning = warning;
            events::record(&cluster, events::Source::kubelet(&self.node), event);
        }
    }

    /// `Created` and `Started` for every container.
    fn started_events(&self) {
        self.container_events("Created", false, |c| {
            Some(format!(
                "Created container: {}",
                str_at(c, "/name").unwrap_or_default()
            ))
        });
        self.container_events("Started", false, |c| {
            Some(format!(
                "Started container {}",
                str_at(c, "/name").unwrap_or_default()
            ))
        });
    }

    fn ready_override(&self) -> Option<bool> {
        let cluster = self.cluster.upgrade()?;
        let sim = cluster.sim.lock();
        sim.ready_override.get(&self.uid).copied()
    }
}

async fn lifecycle(pod: PodRef, behaviour: PodBehaviour) {
    let Some(timing) = pod.timing() else { return };
    let host_ip = host_ip(&pod);
    if !pod.update(|p, _| accept(p, &host_ip)) {
        return;
    }
    pod.container_events("Pulling", false, |c| {
        (pull_policy(c) == "Always").then(|| format!("Pulling image \"{}\"", image(c)))
    });
    tokio::time::sleep(timing.pod_start).await;
    let pod_ip = allocate_pod_ip(&pod);
    if !pod.update(|p, _| start_containers(p, &pod_ip, 0)) {
        return;
    }
    let pull_ms = timing.pod_start.as_millis();
    pod.container_events("Pulled", false, |c| {
        Some(if pull_policy(c) == "Always" {
            format!(
                "Successfully pulled image \"{}\" in {pull_ms}ms ({pull_ms}ms including waiting). Image size: {} bytes.",
                image(c),
                image_size(image(c))
            )
        } else {
            already_present(c)
        })
    });
    pod.started_events();
    match behaviour {
        PodBehaviour::CrashLoop => crash_loop(&pod, &pod_ip, &timing).await,
        PodBehaviour::NeverReady => {
            if pod.ready_override() == Some(true) {
                pod.update(|p, _| set_ready(p, true));
            }
        }
        _ => {
            tokio::time::sleep(timing.pod_ready).await;
            let ready = pod.ready_override().unwrap_or(true);
            pod.update(|p, _| set_ready(p, ready));
        }
    }
}

fn image(container: &Value) -> &str {
    str_at(container, "/image").unwrap_or_default()
}

fn pull_policy(container: &Value) -> &str {
    str_at(container, "/imagePullPolicy").unwrap_or("IfNotPresent")
}

fn already_present(container: &Value) -> String {
    format!(
        "Container image \"{}\" already present on machine",
        image(container)
    )
}

/// A plausible, stable image size for the `Pulled` event.
fn image_size(image: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    image.hash(&mut h);
    5_000_000 + h.finish() % 120_000_000
}

/// The kubelet has seen the pod: `Pending`, containers being created.
fn accept(pod: &mut Value, host_ip: &str) {
    let now = now_rfc3339();
    let has_init = !array_at(pod, "/spec/initContainers").is_empty();
    let mut conditions = array_at(pod, "/status/conditions").to_vec();
    let null_probe = probe_time();
    set_condition(
        &mut conditions,
        "PodReadyToStartContainers",
        false,
        None,
        None,
        &now,
        &null_probe,
    );
    let (init_reason, init_msg) = init_pending_reason(pod);
    if has_init {
        set_condition(
            &mut conditions,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(&init_msg),
            &now,
            &null_probe,
        );
    } else {
        set_condition(
            &mut conditions,
            "Initialized",
            true,
            None,
            None,
            &now,
            &null_probe,
        );
    }
    set_containers_not_ready(&mut conditions, pod, &now, &null_probe);
    order_conditions(&mut conditions);
    let waiting = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let statuses: Vec<Value> = array_at(pod, "/spec/containers")
        .iter()
        .map(|c| waiting_status(c, waiting, 0))
        .collect();
    let status = &mut pod["status"];
    status["phase"] = json!("Pending");
    status["conditions"] = json!(conditions);
    status["hostIP"] = json!(host_ip);
    status["hostIPs"] = json!([{"ip": host_ip}]);
    status["startTime"] = json!(now);
    status["containerStatuses"] = json!(statuses);
    if has_init {
        let init: Vec<Value> = array_at(pod, "/spec/initContainers")
            .iter()
            .map(|c| waiting_status(c, init_reason, 0))
            .collect();
        pod["status"]["initContainerStatuses"] = json!(init);
    }
}

/// `Ready` and `ContainersReady` false with the kubelet's "containers with unready status"
/// message: how every phase before readiness reports itself.
fn set_containers_not_ready(
    conditions: &mut Vec<Value>,
    pod: &Value,
    now: &str,
    probe: &Map<String, Value>,
) {
    let unready = unready_message(pod);
    for kind in ["Ready", "ContainersReady"] {
        set_condition(
            conditions,
            kind,
            false,
            Some("ContainersNotReady"),
            Some(&unready),
            now,
            probe,
        );
    }
}

fn init_pending_reason(pod: &Value) -> (&'static str, String) {
    let names: Vec<&str> = array_at(pod, "/spec/initContainers")
        .iter()
        .filter_map(|c| str_at(c, "/name"))
        .collect();
    (
        "PodInitializing",
        format!("containers with incomplete status: [{}]", names.join(" ")),
    )
}

/// Containers started (`Running`, not yet ready) with `restarts` restarts so far.
fn start_containers(pod: &mut Value, pod_ip: &str, restarts: i64) {
    let now = now_rfc3339();
    let mut conditions = array_at(pod, "/status/conditions").to_vec();
    let null_probe = probe_time();
    set_condition(
        &mut conditions,
        "PodReadyToStartContainers",
        true,
        None,
        None,
        &now,
        &null_probe,
    );
    set_condition(
        &mut conditions,
        "Initialized",
        true,
        None,
        None,
        &now,
        &null_probe,
    );
    set_containers_not_ready(&mut conditions, pod, &now, &null_probe);
    order_conditions(&mut conditions);
    let previous: Vec<Value> = array_at(pod, "/status/containerStatuses").to_vec();
    let statuses: Vec<Value> = array_at(pod, "/spec/containers")
        .iter()
        .map(|c| {
            let last = previous
                .iter()
                .find(|s| str_at(s, "/name") == str_at(c, "/name"))
                .and_then(|s| match s.pointer("/state/terminated") {
                    Some(t) => Some(json!({"terminated": t})),
                    None => s.get("lastState").cloned(),
                })
                .unwrap_or(json!({}));
            let mut s = running_status(c, &now, restarts);
            s["lastState"] = last;
            s
        })
        .collect();
    let init: Vec<Value> = array_at(pod, "/spec/initContainers")
        .iter()
        .map(|c| completed_status(c, &now))
        .collect();
    let status = &mut pod["status"];
    status["phase"] = json!("Running");
    status["conditions"] = json!(conditions);
    status["podIP"] = json!(pod_ip);
    status["podIPs"] = json!([{"ip": pod_ip}]);
    status["containerStatuses"] = json!(statuses);
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
}

/// Sets every container's readiness and the pod's `Ready`/`ContainersReady` conditions.
fn set_ready(pod: &mut Value, ready: bool) {
    if str_at(pod, "/status/phase") != Some("Running") {
        return;
    }
    if let Some(statuses) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for s in statuses.iter_mut() {
            let running = s.pointer("/state/running").is_some();
            s["ready"] = json!(ready && running);
        }
    }
    let all_ready = array_at(pod, "/status/containerStatuses")
        .iter()
        .all(|s| s.get("ready") == Some(&json!(true)));
    let now = now_rfc3339();
    let mut conditions = array_at(pod, "/status/conditions").to_vec();
    let null_probe = probe_time();
    let unready = unready_message(pod);
    let (reason, message) = if all_ready {
        (None, None)
    } else {
        (Some("ContainersNotReady"), Some(unready.as_str()))
    };
    set_condition(
        &mut conditions,
        "Ready",
        all_ready,
        reason,
        message,
        &now,
        &null_probe,
    );
    set_condition(
        &mut conditions,
        "ContainersReady",
        all_ready,
        reason,
        message,
        &now,
        &null_probe,
    );
    order_conditions(&mut conditions);
    pod["status"]["conditions"] = json!(conditions);
}

/// Like a real kubelet: the first exit (`Error`) is restarted at once; later ones wait in
/// `CrashLoopBackOff` for a back-off that doubles each time (10 s … 5 min as reported; the
/// actual wait is scaled by the cluster's timing).
async fn crash_loop(pod: &PodRef, pod_ip: &str, timing: &crate::cluster::Timing) {
    let base = (timing.pod_start * 8).max(Duration::from_millis(100));
    let mut restarts: i64 = 0;
    loop {
        tokio::time::sleep(timing.pod_ready).await;
        let wait = if restarts == 0 {
            if !pod.update(|p, _| exit_with_error(p)) {
                return;
            }
            timing.pod_start
        } else {
            let doublings = (restarts - 1).min(5) as u32;
            let backoff_secs = (10u64 << doublings).min(300);
            if !pod.update(|p, _| crash(p, backoff_secs)) {
                return;
            }
            let (ns, pod_name, pod_uid) = (&pod.namespace, &pod.name, &pod.uid);
            pod.container_events("BackOff", true, |c| {
                let c = str_at(c, "/name").unwrap_or_default();
                Some(format!(
                    "Back-off restarting failed container {c} in pod {pod_name}_{ns}({pod_uid})"
                ))
            });
            (base * (1u32 << doublings)).min(base * 30)
        };
        tokio::time::sleep(wait).await;
        restarts += 1;
        if !pod.update(|p, _| start_containers(p, pod_ip, restarts)) {
            return;
        }
        pod.container_events("Pulled", false, |c| Some(already_present(c)));
        pod.started_events();
    }
}

/// The containers' terminated state after exiting with an error.
fn terminated_with_error(status: &Value, now: &str) -> Value {
    let started_at = status
        .pointer("/state/running/startedAt")
        .cloned()
        .unwrap_or(json!(now));
    json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started_at, "finishedAt": now,
        "containerID": status.get("containerID").cloned().unwrap_or(Value::Null)}})
}

/// Every container has just exited with an error (`kubectl get` shows `Error`).
fn exit_with_error(pod: &mut Value) {
    let now = now_rfc3339();
    if let Some(statuses) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for s in statuses.iter_mut() {
            s["state"] = terminated_with_error(s, &now);
            s["ready"] = json!(false);
            s["started"] = json!(false);
        }
    }
    set_ready(pod, false);
}

/// Every container exits with an error and waits in `CrashLoopBackOff`.
fn crash(pod: &mut Value, backoff_secs: u64) {
    let now = now_rfc3339();
    let pod_name = name(pod).to_string();
    let ns = str_at(pod, "/metadata/namespace")
        .unwrap_or_default()
        .to_string();
    let pod_uid = uid(pod).to_string();
    if let Some(statuses) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for s in statuses.iter_mut() {
            let container = str_at(s, "/name").unwrap_or_default().to_string();
            s["lastState"] = terminated_with_error(s, &now);
            s["state"] = json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!(
                "back-off {} restarting failed container={container} pod={pod_name}_{ns}({pod_uid})",
                go_duration(backoff_secs))}});
            s["ready"] = json!(false);
            s["started"] = json!(false);
        }
    }
    set_ready(pod, false);
}

/// Seconds as Go prints a `time.Duration` (`10s`, `1m20s`, `5m0s`).
fn go_duration(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

fn order_conditions(conditions: &mut [Value]) {
    conditions.sort_by_key(|c| {
        let kind = str_at(c, "/type").unwrap_or_default();
        CONDITION_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(CONDITION_ORDER.len())
    });
}

fn probe_time() -> Map<String, Value> {
    [("lastProbeTime".to_string(), Value::Null)]
        .into_iter()
        .collect()
}

fn unready_message(pod: &Value) -> String {
    let names: Vec<&str> = array_at(pod, "/spec/containers")
        .iter()
        .filter_map(|c| str_at(c, "/name"))
        .collect();
    format!("containers with unready status: [{}]", names.join(" "))
}

fn waiting_status(container: &Value, reason: &str, restarts: i64) -> Value {
    json!({
        "name": str_at(container, "/name").unwrap_or_default(),
        "image": full_image(str_at(container, "/image").unwrap_or_default()),
        "imageID": "",
        "lastState": {},
        "ready": false,
        "restartCount": restarts,
        "started": false,
        "state": {"waiting": {"reason": reason}},
    })
}

fn running_status(container: &Value, now: &str, restarts: i64) -> Value {
    let image = full_image(str_at(container, "/image").unwrap_or_default());
    json!({
        "name": str_at(container, "/name").unwrap_or_default(),
        "image": image,
        "imageID": image_id(&image),
        "containerID": format!("containerd://{}", random_hex(64)),
        "lastState": {},
        "ready": false,
        "restartCount": restarts,
        "started": true,
        "state": {"running": {"startedAt": now}},
    })
}

fn completed_status(container: &Value, now: &str) -> Value {
    let image = full_image(str_at(container, "/image").unwrap_or_default());
    let id = format!("containerd://{}", random_hex(64));
    json!({
        "name": str_at(container, "/name").unwrap_or_default(),
        "image": image,
        "imageID": image_id(&image),
        "containerID": id,
        "lastState": {},
        "ready": true,
        "restartCount": 0,
        "started": false,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now,
                                 "finishedAt": now, "containerID": id}},
    })
}

/// The image reference as containerd reports it: `luksa/kubia` → `docker.io/luksa/kubia:latest`.
pub fn full_image(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let has_registry =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let path = match (first.is_empty(), has_registry) {
        (true, _) => format!("docker.io/library/{rest}"),
        (false, true) => image.to_string(),
        (false, false) => format!("docker.io/{image}"),
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || path.contains('@') {
        path
    } else {
        format!("{path}:latest")
    }
}

fn image_id(image: &str) -> String {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    format!("{repo}@sha256:{}", stable_hex(image, 64))
}

/// Hex digits derived from `seed` (the same image always has the same digest).
fn stable_hex(seed: &str, len: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::new();
    let mut round = 0u64;
    while out.len() < len {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seed, round).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
        round += 1;
    }
    out.truncate(len);
    out
}

fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// The node's InternalIP (the pod's `hostIP`).
fn host_ip(pod: &PodRef) -> String {
    let Some(cluster) = pod.cluster.upgrade() else {
        return String::new();
    };
    cluster
        .store
        .get("nodes", "", &pod.node)
        .and_then(|n| {
            array_at(&n, "/status/addresses")
                .iter()
                .find(|a| str_at(a, "/type") == Some("InternalIP"))
                .and_then(|a| str_at(a, "/address"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "172.18.0.2".into())
}

/// The next free address in the node's pod CIDR (`10.244.N.0/24`).
fn allocate_pod_ip(pod: &PodRef) -> String {
    let Some(cluster) = pod.cluster.upgrade() else {
        return String::new();
    };
    let prefix = cluster
        .store
        .get("nodes", "", &pod.node)
        .and_then(|n| str_at(&n, "/spec/podCIDR").map(str::to_string))
        .and_then(|cidr| cidr.rsplit_once('.').map(|(p, _)| p.to_string()))
        .unwrap_or_else(|| "10.244.1".into());
    let mut used = HashSet::new();
    cluster.store.for_each("pods", None, |p| {
        if let Some(ip) = str_at(p, "/status/podIP") {
            used.insert(ip.to_string());
        }
    });
    let mut sim = cluster.sim.lock();
    let next = sim.next_pod_host.entry(pod.node.clone()).or_insert(2);
    for _ in 0..253 {
        let candidate = format!("{prefix}.{next}");
        *next = if *next >= 254 { 2 } else { *next + 1 };
        if !used.contains(&candidate) {
            return candidate;
        }
    }
    // The node's /24 is full (a real node would have refused the pod long before, at 110 pods):
    // spill into 10.245+ so that every pod still has its own address.
    let third = prefix.rsplit('.').next().unwrap_or("1").to_string();
    (245..=254u32)
        .flat_map(|second| {
            let third = third.clone();
            (2..=254u32).map(move |host| format!("10.{second}.{third}.{host}"))
        })
        .find(|c| !used.contains(c))
        .unwrap_or_else(|| format!("{prefix}.254"))
}

/// Makes every container of a running pod exit with an error and start again, as after an
/// out-of-memory kill or a crash: `Error` (not ready, nothing listening), then `Running` with
/// `restartCount` one higher after [`crate::cluster::Timing::pod_start`], then Ready after
/// [`crate::cluster::Timing::pod_ready`] (unless [`set_pod_ready`] said otherwise). The pod keeps
/// its name, UID and IP. Fails with `NotFound` if the pod does not exist; a pod that is not
/// running is left as it is.
pub fn restart_containers(
    cluster: &Arc<Cluster>,
    namespace: &str,
    name: &str,
) -> Result<Value, StoreError> {
    let pod = cluster
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| StoreError::NotFound {
            resource: "pods".into(),
            name: name.to_string(),
        })?;
    let running = str_at(&pod, "/status/phase") == Some("Running") && !is_terminating(&pod);
    if !running {
        return Ok(pod);
    }
    let target = PodRef {
        cluster: Arc::downgrade(cluster),
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: uid(&pod).to_string(),
        node: str_at(&pod, "/spec/nodeName")
            .unwrap_or_default()
            .to_string(),
    };
    let pod_ip = str_at(&pod, "/status/podIP")
        .unwrap_or_default()
        .to_string();
    let restarts = array_at(&pod, "/status/containerStatuses")
        .iter()
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .max()
        .unwrap_or(0)
        + 1;
    let crashed = cluster
        .store
        .update("pods", namespace, name, exit_with_error)?;
    let timing = cluster.timing.clone();
    super::runner::spawn(cluster, async move {
        tokio::time::sleep(timing.pod_start).await;
        if !target.update(|p, _| start_containers(p, &pod_ip, restarts)) {
            return;
        }
        target.container_events("Pulled", false, |c| Some(already_present(c)));
        target.started_events();
        tokio::time::sleep(timing.pod_ready).await;
        let ready = target.ready_override().unwrap_or(true);
        target.update(|p, _| set_ready(p, ready));
    });
    Ok(crashed)
}

/// Makes a pod Ready or NotReady, as a passing or failing readiness probe would (for fault
/// injection and tests). The choice sticks: the simulated kubelet will not change it back.
/// Fails with `NotFound` if the pod does not exist.
pub fn set_pod_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    ready: bool,
) -> Result<Value, StoreError> {
    let pod = cluster
        .store
        .get("pods", namespace, name)
        .ok_or_else(|| StoreError::NotFound {
            resource: "pods".into(),
            name: name.to_string(),
        })?;
    let pod_uid = uid(&pod).to_string();
    cluster
        .sim
        .lock()
        .ready_override
        .insert(pod_uid.clone(), ready);
    let updated = cluster.store.update("pods", namespace, name, |p| {
        if uid(p) == pod_uid {
            set_ready(p, ready);
        }
    })?;
    if let (false, Some(node)) = (ready, str_at(&updated, "/spec/nodeName")) {
        for c in array_at(&updated, "/spec/containers") {
            if c.get("readinessProbe").is_some() {
                let container = str_at(c, "/name");
                let message =
                    "Readiness probe failed: HTTP probe failed with statuscode: 503".to_string();
                let mut event = events::pod_event(&updated, container, "Unhealthy", message);
                event.warning = true;
                events::record(cluster, events::Source::kubelet(node), event);
            }
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_reported_with_registry_and_tag() {
        assert_eq!(full_image("luksa/kubia"), "docker.io/luksa/kubia:latest");
        assert_eq!(full_image("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(
            full_image("registry.k8s.io/coredns/coredns:v1.11.3"),
            "registry.k8s.io/coredns/coredns:v1.11.3"
        );
        assert!(
            image_id("docker.io/library/nginx:1.27").starts_with("docker.io/library/nginx@sha256:")
        );
    }

    #[test]
    fn backoff_is_printed_like_go() {
        assert_eq!(go_duration(10), "10s");
        assert_eq!(go_duration(80), "1m20s");
        assert_eq!(go_duration(300), "5m0s");
    }
}
