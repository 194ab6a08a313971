//! Pods at admission: the validation, defaulting and admission plugins (ServiceAccount,
//! DefaultTolerationSeconds) a real apiserver applies, so that a created pod looks like one
//! `kubectl get pod -o yaml` shows on a real cluster. Pod templates of workloads share the spec
//! validation and defaulting.

use serde_json::{Map, Value, json};

use super::objects::{array_at, str_at};
use super::{AdmissionError, FieldError};
use crate::store::random_suffix;

/// Where the service-account token is mounted in every container.
const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Validates, defaults and admits a new pod; its status starts `Pending`.
pub fn admit(pod: &mut Value) -> Result<(), AdmissionError> {
    let name = str_at(pod, "/metadata/name")
        .or_else(|| str_at(pod, "/metadata/generateName"))
        .unwrap_or_default()
        .to_string();
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let errors = validate_spec(&spec, "spec");
    if !errors.is_empty() {
        return Err(AdmissionError::invalid("Pod", "", &name, errors));
    }
    let spec = &mut pod["spec"];
    default_spec(spec);
    add_service_account(spec);
    add_default_tolerations(spec);
    let qos = qos_class(spec);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    Ok(())
}

/// The validation errors of a pod spec found at `path` (`spec`, `spec.template.spec`).
pub fn validate_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let containers = array_at(spec, "/containers");
    if containers.is_empty() {
        errors.push(FieldError::required(format!("{path}.containers")));
    }
    let mut names = Vec::new();
    let mut port_names = Vec::new();
    for (list, pointer) in [
        ("containers", "/containers"),
        ("initContainers", "/initContainers"),
    ] {
        for (i, c) in array_at(spec, pointer).iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            validate_container(c, &at, &mut names, &mut port_names, &mut errors);
        }
    }
    if let Some(policy) = str_at(spec, "/restartPolicy")
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        errors.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &json!(policy),
            &["Always", "OnFailure", "Never"],
        ));
    }
    errors
}

fn validate_container(
    c: &Value,
    at: &str,
    names: &mut Vec<String>,
    port_names: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) {
    match str_at(c, "/name").filter(|n| !n.is_empty()) {
        None => errors.push(FieldError::required(format!("{at}.name"))),
        Some(n) if names.iter().any(|x| x == n) => {
            errors.push(FieldError::duplicate(format!("{at}.name"), &json!(n)));
        }
        Some(n) => names.push(n.to_string()),
    }
    if str_at(c, "/image").is_none_or(|i| i.trim().is_empty()) {
        errors.push(FieldError::required(format!("{at}.image")));
    }
    for (j, p) in array_at(c, "/ports").iter().enumerate() {
        let port_at = format!("{at}.ports[{j}]");
        let number = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("{port_at}.containerPort"),
                &json!(number),
                "must be between 1 and 65535, inclusive",
            ));
        }
        if let Some(pn) = str_at(p, "/name") {
            if pn.len() > 15 {
                errors.push(FieldError::invalid(
                    format!("{port_at}.name"),
                    &json!(pn),
                    "must be no more than 15 characters",
                ));
            } else if port_names.iter().any(|x| x == pn) {
                errors.push(FieldError::duplicate(format!("{port_at}.name"), &json!(pn)));
            } else {
                port_names.push(pn.to_string());
            }
        }
        if let Some(proto) = str_at(p, "/protocol")
            && !["TCP", "UDP", "SCTP"].contains(&proto)
        {
            errors.push(FieldError::not_supported(
                format!("{port_at}.protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

/// Fills the defaults the apiserver's defaulting functions give a pod spec.
pub fn default_spec(spec: &mut Value) {
    let Some(map) = spec.as_object_mut() else {
        return;
    };
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
    ];
    for (key, value) in defaults {
        map.entry(key).or_insert(value);
    }
    let account = map
        .get("serviceAccountName")
        .or_else(|| map.get("serviceAccount"))
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    map.insert("serviceAccountName".into(), json!(account));
    map.insert("serviceAccount".into(), json!(account));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = map.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(default_container);
        }
    }
}

fn default_container(c: &mut Value) {
    let image = str_at(c, "/image").unwrap_or_default().to_string();
    let Some(map) = c.as_object_mut() else {
        return;
    };
    map.entry("imagePullPolicy")
        .or_insert_with(|| json!(default_pull_policy(&image)));
    map.entry("terminationMessagePath")
        .or_insert_with(|| json!("/dev/termination-log"));
    map.entry("terminationMessagePolicy")
        .or_insert_with(|| json!("File"));
    map.entry("resources").or_insert_with(|| json!({}));
    if let Some(ports) = map.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = map.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
}

/// Probe defaults: 1 s timeout, every 10 s, 1 success, 3 failures, HTTP GETs over `HTTP`.
fn default_probe(probe: &mut Map<String, Value>) {
    probe.entry("timeoutSeconds").or_insert(json!(1));
    probe.entry("periodSeconds").or_insert(json!(10));
    probe.entry("successThreshold").or_insert(json!(1));
    probe.entry("failureThreshold").or_insert(json!(3));
    if let Some(get) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
        get.entry("scheme").or_insert(json!("HTTP"));
        get.entry("path").or_insert(json!("/"));
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (as the apiserver does).
fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The ServiceAccount admission plugin's projected token volume, mounted in every container.
fn add_service_account(spec: &mut Value) {
    if spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        == Some(false)
    {
        return;
    }
    let volume_name = format!("kube-api-access-{}", random_suffix(5));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut() {
                let has_mount = array_at(c, "/volumeMounts")
                    .iter()
                    .any(|m| str_at(m, "/mountPath") == Some(SERVICE_ACCOUNT_MOUNT));
                if !has_mount {
                    push(c, "volumeMounts", mount.clone());
                }
            }
        }
    }
    push(spec, "volumes", token_volume(&volume_name));
}

fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

/// The DefaultTolerationSeconds admission plugin: tolerate not-ready/unreachable nodes for 300 s.
fn add_default_tolerations(spec: &mut Value) {
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = array_at(spec, "/tolerations")
            .iter()
            .any(|t| str_at(t, "/key") == Some(key));
        if !present {
            push(
                spec,
                "tolerations",
                json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
            );
        }
    }
}

fn push(object: &mut Value, field: &str, item: Value) {
    if let Some(map) = object.as_object_mut() {
        let list = map.entry(field).or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut() {
            list.push(item);
        }
    }
}

/// `BestEffort` with no requests or limits, `Guaranteed` when every container's limits equal
/// its requests for cpu and memory, `Burstable` otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers = array_at(spec, "/containers");
    type Resources<'a> = (&'a Map<String, Value>, &'a Map<String, Value>);
    let resources: Vec<Resources> = containers
        .iter()
        .map(|c| {
            let get = |k: &str| {
                c.pointer(&format!("/resources/{k}"))
                    .and_then(Value::as_object)
            };
            (get("requests"), get("limits"))
        })
        .map(|(r, l)| (r.unwrap_or(&EMPTY), l.unwrap_or(&EMPTY)))
        .collect();
    if resources.iter().all(|(r, l)| r.is_empty() && l.is_empty()) {
        return "BestEffort";
    }
    let guaranteed = resources.iter().all(|(r, l)| {
        ["cpu", "memory"]
            .iter()
            .all(|k| l.get(*k).is_some() && r.get(*k).is_none_or(|rv| Some(rv) == l.get(*k)))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_without_containers_is_invalid_like_the_apiserver_says() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let err = admit(&mut pod).unwrap_err();
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.message,
            "Pod \"p\" is invalid: spec.containers: Required value"
        );
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn admitted_pod_gets_defaults_and_pending_status() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "web", "image": "luksa/kubia", "ports": [{"containerPort": 8080}]},
            {"name": "side", "image": "busybox:1.36"}]}});
        admit(&mut pod).unwrap();
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let volume = pod["spec"]["volumes"][0]["name"].as_str().unwrap();
        assert!(volume.starts_with("kube-api-access-"));
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"][0]["name"],
            volume
        );
    }

    #[test]
    fn several_errors_are_listed_together() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"}, {"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]}});
        let err = admit(&mut pod).unwrap_err();
        assert!(
            err.message
                .contains("spec.containers[0].image: Required value"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.containers[1].name: Duplicate value: \"a\""),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("must be between 1 and 65535"),
            "{}",
            err.message
        );
        assert_eq!(err.details.unwrap()["causes"].as_array().unwrap().len(), 3);
    }
}
