//! The simulated cluster behaves like a real one: pods go through their lifecycle, deployments
//! keep their replicas, endpoints follow the pods, services get addresses. These tests drive a
//! `Cluster` and its store directly (no HTTP) and wait on store events with deadlines.

use std::sync::Arc;
use std::time::Duration;

use kubesim::cluster::{Cluster, Timing};
use kubesim::sim;
use kubesim::world::World;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `check` returns `Some`, re-checking after every store change; fails the test with
/// `what` when the deadline passes.
async fn wait_until<T>(
    cluster: &Cluster,
    what: &str,
    mut check: impl FnMut(&Cluster) -> Option<T>,
) -> T {
    let mut rx = cluster.store.subscribe();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check(cluster) {
            return v;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
            Ok(Err(RecvError::Closed)) => panic!("store closed while waiting for {what}"),
            Ok(_) => {}
        }
    }
}

fn started(manifests: Vec<Value>) -> Arc<Cluster> {
    let cluster = Cluster::new("demo", Timing::fast());
    sim::start(&cluster, manifests).expect("cluster starts");
    cluster
}

fn create(cluster: &Cluster, resource: &str, ns: &str, mut object: Value) -> Result<Value, String> {
    sim::admit_create(cluster, resource, ns, &mut object).map_err(|e| e.message)?;
    cluster
        .store
        .create(resource, ns, object)
        .map_err(|e| e.to_string())
}

fn pods_with(cluster: &Cluster, ns: &str, label: (&str, &str)) -> Vec<Value> {
    let (pods, _) = cluster.store.list("pods", Some(ns));
    pods.into_iter()
        .filter(|p| p["metadata"]["labels"][label.0] == label.1)
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn name(o: &Value) -> String {
    o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

/// Waits until exactly `n` non-terminating pods of app `app` exist and all are Ready.
async fn wait_ready_pods(cluster: &Cluster, app: &str, n: usize) -> Vec<Value> {
    wait_until(cluster, &format!("{n} ready {app} pods"), |c| {
        let pods: Vec<Value> = pods_with(c, "default", ("app", app))
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (pods.len() == n && pods.iter().all(is_ready)).then_some(pods)
    })
    .await
}

#[tokio::test]
async fn a_new_pod_goes_pending_running_then_ready() {
    let cluster = started(vec![]);
    let mut events = cluster.store.subscribe();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}});
    let created = create(&cluster, "pods", "default", pod).unwrap();
    assert_eq!(created["status"]["phase"], "Pending");
    let ready = wait_until(&cluster, "pod web Ready", |c| {
        c.store.get("pods", "default", "web").filter(is_ready)
    })
    .await;
    let mut phases = Vec::new();
    while let Ok(change) = events.try_recv() {
        if change.key.resource == "pods" {
            let phase = change.object["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if phases.last() != Some(&phase) {
                phases.push(phase);
            }
        }
    }
    assert_eq!(phases, ["Pending", "Running"], "phases seen by a watcher");
    let status = &ready["status"];
    assert!(
        status["podIP"].as_str().unwrap().starts_with("10.244."),
        "{status}"
    );
    assert!(
        status["hostIP"].as_str().unwrap().starts_with("172.18.0."),
        "{status}"
    );
    assert!(
        ready["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with("demo-worker"),
        "not on the tainted control plane"
    );
    let container = &status["containerStatuses"][0];
    assert_eq!(container["ready"], true);
    assert_eq!(container["restartCount"], 0);
    assert!(container["state"]["running"]["startedAt"].is_string());
    assert!(
        container["containerID"]
            .as_str()
            .unwrap()
            .starts_with("containerd://")
    );
    let kinds: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled"
        ]
    );
}

#[tokio::test]
async fn deleting_a_deployment_pod_brings_a_replacement_with_a_new_name() {
    let cluster = started(vec![deployment("kubia", 3, "luksa/kubia:v1")]);
    let pods = wait_ready_pods(&cluster, "kubia", 3).await;
    let rs = &pods[0]["metadata"]["ownerReferences"][0];
    assert_eq!(rs["kind"], "ReplicaSet");
    assert_eq!(rs["controller"], true);
    let hash = pods[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["name"], format!("kubia-{hash}"));
    let victim = name(&pods[0]);
    assert!(
        victim.starts_with(&format!("kubia-{hash}-"))
            && victim.len() == format!("kubia-{hash}-").len() + 5
    );
    let deleted = sim::delete(&cluster, "pods", "default", &victim, None).unwrap();
    assert!(
        deleted["metadata"]["deletionTimestamp"].is_string(),
        "graceful deletion marks the pod"
    );
    assert_eq!(deleted["metadata"]["deletionGracePeriodSeconds"], 30);
    let after = wait_ready_pods(&cluster, "kubia", 3).await;
    let names: Vec<String> = after.iter().map(name).collect();
    assert!(!names.contains(&victim), "{names:?}");
    wait_until(&cluster, "the deleted pod to be gone", |c| {
        c.store
            .get("pods", "default", &victim)
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn scaling_a_deployment_adds_and_removes_pods() {
    let cluster = started(vec![deployment("kubia", 3, "luksa/kubia:v1")]);
    wait_ready_pods(&cluster, "kubia", 3).await;
    for replicas in [5, 1] {
        cluster
            .store
            .update("deployments", "default", "kubia", |d| {
                d["spec"]["replicas"] = json!(replicas)
            })
            .unwrap();
        wait_ready_pods(&cluster, "kubia", replicas as usize).await;
        wait_until(&cluster, "deployment status to settle", |c| {
            let d = c.store.get("deployments", "default", "kubia")?;
            let s = &d["status"];
            (s["replicas"] == replicas
                && s["readyReplicas"] == replicas
                && s["updatedReplicas"] == replicas
                && s["availableReplicas"] == replicas
                && s["observedGeneration"] == d["metadata"]["generation"])
                .then_some(())
        })
        .await;
    }
    let d = cluster
        .store
        .get("deployments", "default", "kubia")
        .unwrap();
    assert_eq!(
        d["metadata"]["generation"], 3,
        "two spec changes bump the generation twice"
    );
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "True");
}

#[tokio::test]
async fn a_template_change_rolls_out_a_new_replicaset_progressively() {
    let cluster = started(vec![deployment("kubia", 4, "luksa/kubia:v1")]);
    let before = wait_ready_pods(&cluster, "kubia", 4).await;
    let mut ready: std::collections::BTreeMap<String, bool> =
        before.iter().map(|p| (name(p), true)).collect();
    let mut events = cluster.store.subscribe();
    cluster
        .store
        .update("deployments", "default", "kubia", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("luksa/kubia:v2");
        })
        .unwrap();
    let pods = wait_until(&cluster, "all pods on v2 and ready", |c| {
        let pods: Vec<Value> = pods_with(c, "default", ("app", "kubia"));
        (pods.len() == 4
            && pods
                .iter()
                .all(|p| is_ready(p) && p["spec"]["containers"][0]["image"] == "luksa/kubia:v2"))
        .then_some(pods)
    })
    .await;
    // maxUnavailable 25% of 4 = 1: never fewer than 3 ready pods during the rollout.
    let mut min_ready = usize::MAX;
    while let Ok(change) = events.try_recv() {
        if change.key.resource == "pods" && change.object["metadata"]["labels"]["app"] == "kubia" {
            let counted = change.event != kubesim::store::EventType::Deleted
                && is_ready(&change.object)
                && change.object["metadata"]["deletionTimestamp"].is_null();
            ready.insert(change.key.name.clone(), counted);
            min_ready = min_ready.min(ready.values().filter(|r| **r).count());
        }
    }
    assert!(min_ready >= 3, "ready pods dropped to {min_ready}");
    let (sets, _) = cluster.store.list("replicasets", Some("default"));
    assert_eq!(sets.len(), 2, "old and new ReplicaSet are kept");
    let new_hash = pods[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    for rs in &sets {
        let expected = if name(rs).ends_with(&new_hash) {
            (4, "2")
        } else {
            (0, "1")
        };
        assert_eq!(
            (
                rs["spec"]["replicas"].as_i64().unwrap(),
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
            ),
            expected,
            "{}",
            name(rs)
        );
    }
}

#[tokio::test]
async fn deleting_a_deployment_deletes_its_replicasets_and_pods() {
    let cluster = started(vec![deployment("kubia", 2, "luksa/kubia:v1")]);
    wait_ready_pods(&cluster, "kubia", 2).await;
    sim::delete(&cluster, "deployments", "default", "kubia", None).unwrap();
    wait_until(&cluster, "replicasets and pods gone", |c| {
        let (rs, _) = c.store.list("replicasets", Some("default"));
        (rs.is_empty() && pods_with(c, "default", ("app", "kubia")).is_empty()).then_some(())
    })
    .await;
}

fn service(name: &str, target_port: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "main", "port": 80, "targetPort": target_port}]}})
}

fn bare_pod(name: &str, ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": ports}]}})
}

#[tokio::test]
async fn endpoints_follow_readiness_and_resolve_named_ports_per_pod() {
    let cluster = started(vec![]);
    create(
        &cluster,
        "services",
        "default",
        service("web", json!("web")),
    )
    .unwrap();
    create(
        &cluster,
        "pods",
        "default",
        bare_pod("a", json!([{"name": "web", "containerPort": 8080}])),
    )
    .unwrap();
    create(
        &cluster,
        "pods",
        "default",
        bare_pod("b", json!([{"name": "web", "containerPort": 9090}])),
    )
    .unwrap();
    create(
        &cluster,
        "pods",
        "default",
        bare_pod("c", json!([{"name": "other", "containerPort": 7000}])),
    )
    .unwrap();
    let subsets = wait_until(&cluster, "two ready addresses", |c| {
        let ep = c.store.get("endpoints", "default", "web")?;
        let n: usize = ep["subsets"]
            .as_array()?
            .iter()
            .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
            .sum();
        (n == 2).then(|| ep["subsets"].clone())
    })
    .await;
    let mut ports: Vec<(String, i64)> = subsets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["addresses"][0]["targetRef"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s["ports"][0]["port"].as_i64().unwrap(),
            )
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [("a".to_string(), 8080), ("b".to_string(), 9090)],
        "pod c has no port named web"
    );
    let slices = wait_until(&cluster, "slices for both port sets", |c| {
        let (all, _) = c.store.list("endpointslices", Some("default"));
        let mine: Vec<Value> = all
            .into_iter()
            .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
            .collect();
        (mine.len() == 3).then_some(mine)
    })
    .await;
    for s in &slices {
        assert_eq!(
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert!(name(s).starts_with("web-"));
    }

    sim::set_pod_ready(&cluster, "default", "a", false).unwrap();
    wait_until(&cluster, "pod a in notReadyAddresses", |c| {
        let ep = c.store.get("endpoints", "default", "web")?;
        let text = ep["subsets"].to_string();
        let not_ready = ep["subsets"]
            .as_array()?
            .iter()
            .find(|s| s["ports"][0]["port"] == 8080)?;
        (not_ready["notReadyAddresses"][0]["targetRef"]["name"] == "a"
            && not_ready["addresses"].is_null())
        .then_some(text)
    })
    .await;
    wait_until(&cluster, "slice condition ready=false for a", |c| {
        let (all, _) = c.store.list("endpointslices", Some("default"));
        all.iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| {
                e["targetRef"]["name"] == "a"
                    && e["conditions"]["ready"] == false
                    && e["conditions"]["serving"] == false
            })
    })
    .await;

    sim::delete(&cluster, "pods", "default", "b", None).unwrap();
    wait_until(
        &cluster,
        "terminating pod b out of Endpoints, terminating in its slice",
        |c| {
            let ep = c.store.get("endpoints", "default", "web")?;
            let gone = !ep["subsets"].to_string().contains("\"b\"");
            let (all, _) = c.store.list("endpointslices", Some("default"));
            let terminating = all
                .iter()
                .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
                .any(|e| {
                    e["targetRef"]["name"] == "b"
                        && e["conditions"]["terminating"] == true
                        && e["conditions"]["ready"] == false
                });
            (gone && terminating).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_without_selector_gets_no_endpoints_until_made_by_hand() {
    let cluster = started(vec![]);
    let mut svc = service("external", json!(80));
    svc["spec"].as_object_mut().unwrap().remove("selector");
    create(&cluster, "services", "default", svc).unwrap();
    // A selector service created afterwards gets its Endpoints; the selector-less one must not.
    create(&cluster, "services", "default", service("web", json!(80))).unwrap();
    wait_until(&cluster, "endpoints of the selector service", |c| {
        c.store.get("endpoints", "default", "web")
    })
    .await;
    assert!(
        cluster
            .store
            .get("endpoints", "default", "external")
            .is_none()
    );
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "11.11.11.11"}], "ports": [{"port": 80}]}]});
    create(&cluster, "endpoints", "default", endpoints).unwrap();
    let slice = wait_until(&cluster, "a mirrored slice", |c| {
        let (all, _) = c.store.list("endpointslices", Some("default"));
        all.into_iter()
            .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "external")
    })
    .await;
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    assert_eq!(slice["endpoints"][0]["addresses"][0], "11.11.11.11");
    let ep = cluster
        .store
        .get("endpoints", "default", "external")
        .unwrap();
    assert_eq!(
        ep["subsets"][0]["addresses"][0]["ip"], "11.11.11.11",
        "hand-made endpoints are left alone"
    );
}

#[tokio::test]
async fn the_demo_world_comes_alive() {
    let world = World::try_demo().unwrap();
    let cluster = started(world.manifests("demo").to_vec());
    let (pods, _) = cluster.store.list("pods", None);
    assert!(pods.is_empty() || pods.iter().all(|p| p["status"]["phase"] == "Pending"));
    let expected_ready = 3 + 1 + 1 + 2 + 2; // kubia, fortune, postgres, web, coredns
    let pods = wait_until(&cluster, "every healthy demo pod Ready", |c| {
        let (pods, _) = c.store.list("pods", None);
        (pods.iter().filter(|p| is_ready(p)).count() == expected_ready).then_some(pods)
    })
    .await;
    assert_eq!(
        pods.len(),
        expected_ready + 2,
        "plus the stuck and crash-looping pods"
    );
    let stuck = cluster
        .store
        .get("pods", "default", "batch-report")
        .unwrap();
    assert_eq!(stuck["status"]["phase"], "Pending");
    assert_eq!(stuck["status"]["conditions"][0]["reason"], "Unschedulable");
    let crash = wait_until(&cluster, "flaky-worker to restart", |c| {
        let p = c.store.get("pods", "default", "flaky-worker")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1
            && p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CrashLoopBackOff")
            .then_some(p)
    })
    .await;
    assert_eq!(
        crash["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        1
    );
    assert!(!is_ready(&crash));
    let (events, _) = cluster.store.list("events", Some("default"));
    let back_off = events
        .iter()
        .find(|e| e["reason"] == "BackOff" && e["involvedObject"]["name"] == "flaky-worker")
        .expect("a BackOff event for the crash-looping pod");
    assert_eq!(back_off["type"], "Warning");
    let failed = events
        .iter()
        .find(|e| {
            e["reason"] == "FailedScheduling" && e["involvedObject"]["name"] == "batch-report"
        })
        .expect("a FailedScheduling event for the stuck pod");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient memory"),
        "{failed}"
    );

    let kubia = wait_until(
        &cluster,
        "kubia endpoints with 3 addresses on both ports",
        |c| {
            let ep = c.store.get("endpoints", "default", "kubia")?;
            let subset = &ep["subsets"][0];
            (subset["addresses"].as_array()?.len() == 3 && subset["ports"].as_array()?.len() == 2)
                .then_some(ep)
        },
    )
    .await;
    let mut ports: Vec<i64> = kubia["subsets"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    ports.sort();
    assert_eq!(ports, [8080, 8443], "443 → the pods' port named https");

    let svc = |n: &str| cluster.store.get("services", "default", n).unwrap();
    assert_eq!(svc("kubia-nodeport")["spec"]["ports"][0]["nodePort"], 30123);
    assert_eq!(svc("kubia-headless")["spec"]["clusterIP"], "None");
    assert_eq!(svc("kubia-sticky")["spec"]["sessionAffinity"], "ClientIP");
    assert!(
        svc("kubia")["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.9")
    );
    let lb = wait_until(&cluster, "load balancer address", |c| {
        let s = c.store.get("services", "default", "kubia-loadbalancer")?;
        s["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(lb.starts_with("172.18.255."), "{lb}");
    wait_until(&cluster, "ingress address", |c| {
        c.store.get("ingresses", "default", "kubia")?["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    assert!(
        cluster
            .store
            .get("endpoints", "default", "external-service")
            .is_some()
    );
    let conflict = create(&cluster, "services", "default", {
        let mut s = svc("kubia-nodeport");
        s["metadata"] = json!({"name": "second-nodeport"});
        s["spec"].as_object_mut().unwrap().remove("clusterIP");
        s["spec"].as_object_mut().unwrap().remove("clusterIPs");
        s
    })
    .unwrap_err();
    assert!(
        conflict.contains("30123: provided port is already allocated"),
        "{conflict}"
    );

    let (nodes, _) = cluster.store.list("nodes", None);
    assert_eq!(nodes.len(), 3);
    let (namespaces, _) = cluster.store.list("namespaces", None);
    let ns: Vec<String> = namespaces.iter().map(name).collect();
    assert_eq!(
        ns,
        [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "shop"
        ]
    );
    assert!(
        cluster
            .store
            .get("services", "default", "kubernetes")
            .is_some()
    );
}

#[tokio::test]
async fn a_deleted_namespace_terminates_then_disappears_with_its_contents() {
    let cluster = started(World::try_demo().unwrap().manifests("demo").to_vec());
    let marked = sim::delete(&cluster, "namespaces", "", "shop", None).unwrap();
    assert_eq!(marked["status"]["phase"], "Terminating");
    let err = create(&cluster, "pods", "shop", bare_pod("late", json!([]))).unwrap_err();
    assert!(err.contains("being terminated"), "{err}");
    wait_until(&cluster, "namespace shop gone", |c| {
        (c.store.get("namespaces", "", "shop").is_none()
            && c.store.keys_in_namespace("shop").is_empty())
        .then_some(())
    })
    .await;
}

/// Scale: a 200-replica deployment behind five services; every pod must reach every
/// service's Endpoints. (Prints the time taken; `KUBESIM_SCALE_PODS` changes the count.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_pods_all_reach_their_services_endpoints() {
    let n: usize = std::env::var("KUBESIM_SCALE_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut manifests = vec![deployment("big", n as i64, "example/big:1")];
    for i in 0..5 {
        manifests.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("big-{i}"), "namespace": "default"},
            "spec": {"selector": {"app": "big"}, "ports": [{"port": 80, "targetPort": "http"}]}}));
    }
    let started_at = std::time::Instant::now();
    let cluster = started(manifests);
    for i in 0..5 {
        wait_until(&cluster, &format!("{n} addresses in big-{i}"), |c| {
            let ep = c.store.get("endpoints", "default", &format!("big-{i}"))?;
            let count = ep["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
            (count == n).then_some(())
        })
        .await;
    }
    let ips: std::collections::HashSet<String> = pods_with(&cluster, "default", ("app", "big"))
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ips.len(), n, "every pod has its own IP");
    println!(
        "{n} pods ready in 5 services' endpoints after {:?}",
        started_at.elapsed()
    );
}

#[tokio::test]
async fn a_restarted_container_counts_a_restart_and_becomes_ready_again() {
    let cluster = started(vec![]);
    create(
        &cluster,
        "pods",
        "default",
        bare_pod("p", json!([{"name": "web", "containerPort": 80}])),
    )
    .unwrap();
    let before = wait_until(&cluster, "pod p Ready", |c| {
        c.store.get("pods", "default", "p").filter(is_ready)
    })
    .await;
    let crashed = sim::restart_containers(&cluster, "default", "p").unwrap();
    assert!(!is_ready(&crashed));
    assert_eq!(
        crashed["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Error"
    );
    let after = wait_until(&cluster, "pod p Ready again", |c| {
        c.store.get("pods", "default", "p").filter(is_ready)
    })
    .await;
    let status = |p: &Value, f: &str| p["status"]["containerStatuses"][0][f].clone();
    assert_eq!(status(&after, "restartCount"), 1);
    assert_ne!(
        status(&after, "containerID"),
        status(&before, "containerID")
    );
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(status(&after, "lastState")["terminated"]["exitCode"], 1);
}

#[tokio::test]
async fn rolling_back_reuses_the_old_replicaset_as_the_newest_revision() {
    let cluster = started(vec![deployment("kubia", 2, "luksa/kubia:v1")]);
    let first = wait_ready_pods(&cluster, "kubia", 2).await;
    let first_rs = first[0]["metadata"]["ownerReferences"][0]["name"].clone();
    for image in ["luksa/kubia:v2", "luksa/kubia:v1"] {
        cluster
            .store
            .update("deployments", "default", "kubia", |d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            })
            .unwrap();
        wait_until(&cluster, &format!("all pods on {image}"), |c| {
            let pods = pods_with(c, "default", ("app", "kubia"));
            (pods.len() == 2
                && pods
                    .iter()
                    .all(|p| is_ready(p) && p["spec"]["containers"][0]["image"] == image))
            .then_some(())
        })
        .await;
    }
    let pods = pods_with(&cluster, "default", ("app", "kubia"));
    assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["name"], first_rs);
    let rs = cluster
        .store
        .get("replicasets", "default", first_rs.as_str().unwrap())
        .unwrap();
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let d = cluster
        .store
        .get("deployments", "default", "kubia")
        .unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
}

#[tokio::test]
async fn a_node_port_is_free_again_once_its_service_is_deleted_even_after_updates() {
    let cluster = started(vec![]);
    let mut svc = service("np", json!(80));
    svc["spec"]["type"] = json!("NodePort");
    svc["spec"]["ports"][0]["nodePort"] = json!(30200);
    let stored = create(&cluster, "services", "default", svc.clone()).unwrap();
    let mut changed = stored.clone();
    changed["metadata"]["labels"] = json!({"tier": "web"});
    sim::admit_update(&cluster, "services", "default", &stored, &mut changed).unwrap();
    cluster
        .store
        .update("services", "default", "np", |s| *s = changed)
        .unwrap();
    let mut other = svc.clone();
    other["metadata"]["name"] = json!("np2");
    let err = create(&cluster, "services", "default", other.clone()).unwrap_err();
    assert!(err.contains("provided port is already allocated"), "{err}");
    sim::delete(&cluster, "services", "default", "np", None).unwrap();
    let reused = create(&cluster, "services", "default", other).unwrap();
    assert_eq!(reused["spec"]["ports"][0]["nodePort"], 30200);
}

#[tokio::test]
async fn what_the_cluster_does_is_recorded_as_events() {
    let cluster = started(vec![deployment("kubia", 2, "luksa/kubia:v1")]);
    let pods = wait_ready_pods(&cluster, "kubia", 2).await;
    let events = |c: &Cluster| c.store.list("events", Some("default")).0;
    let has = |c: &Cluster, kind: &str, reason: &str, fragment: &str| {
        events(c).iter().any(|e| {
            e["involvedObject"]["kind"] == kind
                && e["reason"] == reason
                && e["message"].as_str().is_some_and(|m| m.contains(fragment))
        })
    };
    let pod = name(&pods[0]);
    wait_until(&cluster, "deployment, replicaset and pod events", |c| {
        (has(
            c,
            "Deployment",
            "ScalingReplicaSet",
            "Scaled up replica set kubia-",
        ) && has(
            c,
            "ReplicaSet",
            "SuccessfulCreate",
            &format!("Created pod: {pod}"),
        ) && has(
            c,
            "Pod",
            "Scheduled",
            &format!("Successfully assigned default/{pod} to demo-worker"),
        ) && has(
            c,
            "Pod",
            "Pulled",
            "Container image \"luksa/kubia:v1\" already present on machine",
        ) && has(c, "Pod", "Started", "Started container main"))
        .then_some(())
    })
    .await;
    let started = events(&cluster)
        .into_iter()
        .find(|e| e["reason"] == "Started" && e["involvedObject"]["name"] == pod.as_str())
        .unwrap();
    assert_eq!(started["source"]["component"], "kubelet");
    assert_eq!(
        started["involvedObject"]["fieldPath"],
        "spec.containers{main}"
    );
    assert_eq!(started["type"], "Normal");
    assert_eq!(started["count"], 1);
    sim::delete(&cluster, "pods", "default", &pod, None).unwrap();
    wait_until(&cluster, "Killing event", |c| {
        has(c, "Pod", "Killing", "Stopping container main").then_some(())
    })
    .await;
}

/// kube-rs clients decode objects into k8s-openapi types: every simulated object must decode.
#[tokio::test]
async fn every_simulated_object_decodes_into_the_typed_kubernetes_api() {
    use k8s_openapi::api::{apps, core, discovery, networking};
    let cluster = started(World::try_demo().unwrap().manifests("demo").to_vec());
    wait_until(&cluster, "flaky-worker crash-looping", |c| {
        let p = c.store.get("pods", "default", "flaky-worker")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 1).then_some(())
    })
    .await;
    sim::delete(
        &cluster,
        "pods",
        "shop",
        &name(&cluster.store.list("pods", Some("shop")).0[0]),
        None,
    )
    .unwrap();
    fn check<T: serde::de::DeserializeOwned>(cluster: &Cluster, resource: &str) -> usize {
        let (items, _) = cluster.store.list(resource, None);
        for item in &items {
            if let Err(e) = serde_json::from_value::<T>(item.clone()) {
                panic!("{resource} {} does not decode: {e}\n{item:#}", name(item));
            }
        }
        items.len()
    }
    assert!(check::<core::v1::Pod>(&cluster, "pods") > 0);
    assert!(check::<core::v1::Service>(&cluster, "services") > 0);
    assert!(check::<core::v1::Endpoints>(&cluster, "endpoints") > 0);
    assert!(check::<discovery::v1::EndpointSlice>(&cluster, "endpointslices") > 0);
    assert!(check::<apps::v1::Deployment>(&cluster, "deployments") > 0);
    assert!(check::<apps::v1::ReplicaSet>(&cluster, "replicasets") > 0);
    assert!(check::<core::v1::Node>(&cluster, "nodes") > 0);
    assert!(check::<core::v1::Namespace>(&cluster, "namespaces") > 0);
    assert!(check::<networking::v1::Ingress>(&cluster, "ingresses") > 0);
    assert!(check::<core::v1::Event>(&cluster, "events") > 0);
}
