//! Server-side printing: the `Table` documents `kubectl get` asks for, with the same columns,
//! priorities (priority 1 = only with `-o wide`) and cell wording as kube-apiserver's printers
//! (`pkg/printers/internalversion/printers.go`). Pure functions over JSON objects.

use serde_json::{Value, json};

use crate::resources::Resource;

/// How each row carries its object (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Options of one Table rendering.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub include_object: IncludeObject,
}

/// One column: name, type, priority (0 always shown, 1 with `-o wide`), description.
type Column = (&'static str, &'static str, u8, &'static str);

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

fn columns(r: &Resource) -> Vec<Column> {
    let name = ("Name", "string", 0, NAME_DOC);
    let age = ("Age", "string", 0, AGE_DOC);
    match r.plural {
        "pods" => vec![
            name,
            (
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            (
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            (
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age,
            (
                "IP",
                "string",
                1,
                "podIP is the IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            (
                "Node",
                "string",
                1,
                "NodeName indicates in which node this pod is scheduled.",
            ),
            (
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
            ),
            (
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "services" => vec![
            name,
            (
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            (
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            (
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            (
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            age,
            (
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "endpoints" => vec![
            name,
            ("Endpoints", "string", 0, "Endpoints of the service"),
            age,
        ],
        "endpointslices" => vec![
            name,
            (
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            (
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            (
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            age,
        ],
        "nodes" => vec![
            name,
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            age,
            (
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            (
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            (
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            (
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            (
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            (
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "deployments" => vec![
            name,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        "replicasets" => vec![
            name,
            (
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired pods.",
            ),
            (
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            (
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        "configmaps" => vec![
            name,
            ("Data", "string", 0, "Data contains the configuration data."),
            age,
        ],
        "secrets" => vec![
            name,
            (
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            ("Data", "string", 0, "Data contains the secret data."),
            age,
        ],
        "serviceaccounts" => vec![
            name,
            (
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age,
        ],
        "events" => vec![
            (
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            (
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            (
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            (
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            (
                "Subobject",
                "string",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
            ),
            (
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            (
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            (
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            (
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            ("Name", "string", 1, NAME_DOC),
        ],
        "namespaces" => vec![
            name,
            ("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "ingresses" => vec![
            name,
            (
                "Class",
                "string",
                0,
                "The name of the IngressClass resource that should be used for ingress",
            ),
            (
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            (
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            (
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            age,
        ],
        _ => vec![name, ("Created At", "date", 0, AGE_DOC)],
    }
}

/// Renders `objects` of resource `r` as a `Table`.
pub fn render(
    r: &Resource,
    objects: &[Value],
    opts: &Options,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let now = jiff::Timestamp::now();
    let column_definitions: Vec<Value> = columns(r)
        .into_iter()
        .map(|(name, ty, priority, description)| {
            json!({
                "name": name,
                "type": ty,
                "format": if name == "Name" { "name" } else { "" },
                "description": description,
                "priority": priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(r, o, now)});
            match opts.include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

fn cells(r: &Resource, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(text(o, "/metadata/name"));
    let age = json!(age(o, now));
    match r.plural {
        "pods" => pod_cells(o, name, age, now),
        "services" => vec![
            name,
            json!(service_type(o)),
            json!(non_empty(text(o, "/spec/clusterIP"), "<none>")),
            json!(service_external_ip(o)),
            json!(service_ports(o)),
            age,
            json!(format_labels(o.pointer("/spec/selector"))),
        ],
        "endpoints" => vec![name, json!(endpoints_string(o)), age],
        "endpointslices" => vec![
            name,
            json!(text(o, "/addressType")),
            json!(slice_ports(o)),
            json!(slice_endpoints(o)),
            age,
        ],
        "nodes" => node_cells(o, name, age),
        "deployments" => {
            let (containers, images) = template_containers(o);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(int(o, "/status/updatedReplicas")),
                json!(int(o, "/status/availableReplicas")),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        "replicasets" => {
            let (containers, images) = template_containers(o);
            vec![
                name,
                json!(
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(int(o, "/status/replicas")),
                json!(int(o, "/status/readyReplicas")),
                age,
                json!(containers),
                json!(images),
                json!(selector_text(o.pointer("/spec/selector"))),
            ]
        }
        "namespaces" => vec![name, json!(text(o, "/status/phase")), age],
        "events" => event_cells(o, now),
        "configmaps" => vec![
            name,
            json!(map_len(o, "/data") + map_len(o, "/binaryData")),
            age,
        ],
        "secrets" => vec![
            name,
            json!(text(o, "/type")),
            json!(map_len(o, "/data")),
            age,
        ],
        "serviceaccounts" => vec![name, json!(array(o, "/secrets").len()), age],
        "ingresses" => vec![
            name,
            json!(ingress_class(o)),
            json!(ingress_hosts(o)),
            json!(load_balancer_addresses(o)),
            json!(if array(o, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            }),
            age,
        ],
        _ => vec![name, json!(text(o, "/metadata/creationTimestamp"))],
    }
}

fn text<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn int(o: &Value, pointer: &str) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array<'a>(o: &'a Value, pointer: &str) -> &'a [Value] {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn map_len(o: &Value, pointer: &str) -> usize {
    o.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn non_empty<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() { fallback } else { s }
}

fn age(o: &Value, now: jiff::Timestamp) -> String {
    match text(o, "/metadata/creationTimestamp").parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(now.duration_since(t).as_secs()),
        Err(_) => "<unknown>".into(),
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`, the AGE column's format.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The READY, STATUS and RESTARTS logic of `printPod`.
fn pod_cells(o: &Value, name: Value, age: Value, now: jiff::Timestamp) -> Vec<Value> {
    let total = array(o, "/spec/containers").len();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<jiff::Timestamp> = None;
    let mut reason = non_empty(text(o, "/status/reason"), text(o, "/status/phase")).to_string();
    let mut initializing = false;
    let inits = array(o, "/status/initContainerStatuses");
    let init_total = array(o, "/spec/initContainers").len();
    for (i, c) in inits.iter().enumerate() {
        restarts += int(c, "/restartCount");
        if c.pointer("/state/terminated").is_some() && int(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if let Some(t) = c.pointer("/state/terminated") {
            let r = text(t, "/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if int(t, "/signal") != 0 {
                format!("Init:Signal:{}", int(t, "/signal"))
            } else {
                format!("Init:ExitCode:{}", int(t, "/exitCode"))
            };
        } else if !text(c, "/state/waiting/reason").is_empty()
            && text(c, "/state/waiting/reason") != "PodInitializing"
        {
            reason = format!("Init:{}", text(c, "/state/waiting/reason"));
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for c in array(o, "/status/containerStatuses").iter().rev() {
            restarts += int(c, "/restartCount");
            if let Ok(t) = text(c, "/lastState/terminated/finishedAt").parse::<jiff::Timestamp>()
                && last_restart.is_none_or(|l| t > l)
            {
                last_restart = Some(t);
            }
            let waiting = text(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated.filter(|t| !text(t, "/reason").is_empty()) {
                reason = text(t, "/reason").to_string();
            } else if let Some(t) = terminated {
                reason = if int(t, "/signal") != 0 {
                    format!("Signal:{}", int(t, "/signal"))
                } else {
                    format!("ExitCode:{}", int(t, "/exitCode"))
                };
            } else if c.get("ready") == Some(&Value::Bool(true))
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = array(o, "/status/conditions")
                .iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    let phase = text(o, "/status/phase");
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        if text(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_text = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    let gates = array(o, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_conditions: Vec<&str> = array(o, "/status/conditions")
            .iter()
            .filter(|c| text(c, "/status") == "True")
            .map(|c| text(c, "/type"))
            .collect();
        let ok = gates
            .iter()
            .filter(|g| true_conditions.contains(&text(g, "/conditionType")))
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        age,
        json!(non_empty(text(o, "/status/podIP"), "<none>")),
        json!(non_empty(text(o, "/spec/nodeName"), "<none>")),
        json!(non_empty(text(o, "/status/nominatedNodeName"), "<none>")),
        json!(gates_text),
    ]
}

fn service_type(o: &Value) -> &str {
    non_empty(text(o, "/spec/type"), "ClusterIP")
}

fn service_external_ip(o: &Value) -> String {
    let external: Vec<&str> = array(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type(o) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_addresses(o);
            let mut all: Vec<&str> = if lb.is_empty() {
                vec![]
            } else {
                lb.split(',').collect()
            };
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(o, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn load_balancer_addresses(o: &Value) -> String {
    array(o, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            let ip = text(i, "/ip");
            let host = text(i, "/hostname");
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn service_ports(o: &Value) -> String {
    let ports = array(o, "/spec/ports");
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let protocol = non_empty(text(p, "/protocol"), "TCP");
            let node_port = int(p, "/nodePort");
            if node_port > 0 {
                format!("{}:{node_port}/{protocol}", int(p, "/port"))
            } else {
                format!("{}/{protocol}", int(p, "/port"))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A `LabelSelector` as `metav1.LabelSelectorAsSelector(...).String()` prints it.
fn selector_text(selector: Option<&Value>) -> String {
    let s = selector
        .map(super::scale::selector_string)
        .unwrap_or_default();
    if s.is_empty() { "<none>".into() } else { s }
}

fn template_containers(o: &Value) -> (String, String) {
    let containers = array(o, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn endpoints_string(o: &Value) -> String {
    let subsets = array(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    let mut more = false;
    for ss in subsets {
        let addresses = array(ss, "/addresses");
        let ports = array(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(text(a, "/ip").to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(text(a, "/ip"), int(p, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<none>".into()
    } else {
        joined
    }
}

fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// `listWithMoreString`.
fn list_with_more(list: Vec<String>, more: bool, count: usize) -> String {
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - 3)
    } else if joined.is_empty() {
        "<unset>".into()
    } else {
        joined
    }
}

fn slice_ports(o: &Value) -> String {
    let ports = array(o, "/ports");
    let list: Vec<String> = ports
        .iter()
        .take(3)
        .map(|p| {
            match (
                p.get("port").and_then(Value::as_i64),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                _ => "*".into(),
            }
        })
        .collect();
    list_with_more(list, ports.len() > 3, ports.len())
}

fn slice_endpoints(o: &Value) -> String {
    let addresses: Vec<String> = array(o, "/endpoints")
        .iter()
        .flat_map(|e| {
            array(e, "/addresses")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let count = addresses.len();
    list_with_more(addresses.into_iter().take(3).collect(), count > 3, count)
}

fn node_cells(o: &Value, name: Value, age: Value) -> Vec<Value> {
    let conditions = array(o, "/status/conditions");
    let mut status: Vec<&str> = Vec::new();
    match conditions.iter().find(|c| text(c, "/type") == "Ready") {
        Some(c) if text(c, "/status") == "True" => status.push("Ready"),
        Some(_) => status.push("NotReady"),
        None => status.push("Unknown"),
    }
    if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        Some(role.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let address = |ty: &str| {
        array(o, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == ty)
            .map(|a| text(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info =
        |f: &str| non_empty(text(o, &format!("/status/nodeInfo/{f}")), "<unknown>").to_string();
    vec![
        name,
        json!(status.join(",")),
        json!(roles),
        age,
        json!(text(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn since(o: &Value, pointer: &str, now: jiff::Timestamp) -> Option<String> {
    text(o, pointer)
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| human_duration(now.duration_since(t).as_secs()))
}

/// `printEvent` (wide, as the server renders it).
fn event_cells(o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let first = since(o, "/firstTimestamp", now)
        .or_else(|| since(o, "/eventTime", now))
        .unwrap_or_else(|| "<unknown>".into());
    let mut last = since(o, "/lastTimestamp", now).unwrap_or_else(|| first.clone());
    let mut count = int(o, "/count");
    if o.get("series").is_some_and(Value::is_object) {
        last = since(o, "/series/lastObservedTime", now).unwrap_or(last);
        count = int(o, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = text(o, "/involvedObject/kind").to_lowercase();
    let target_name = text(o, "/involvedObject/name");
    let target = if target_name.is_empty() {
        kind
    } else {
        format!("{kind}/{target_name}")
    };
    let component = non_empty(
        text(o, "/source/component"),
        text(o, "/reportingController"),
    );
    let host = non_empty(text(o, "/source/host"), text(o, "/reportingInstance"));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(target),
        json!(text(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(o, "/message").trim()),
        json!(first),
        json!(count),
        json!(text(o, "/metadata/name")),
    ]
}

fn ingress_class(o: &Value) -> String {
    let class = text(o, "/spec/ingressClassName");
    if !class.is_empty() {
        return class.to_string();
    }
    let annotated = text(o, "/metadata/annotations/kubernetes.io~1ingress.class");
    non_empty(annotated, "<none>").to_string()
}

fn ingress_hosts(o: &Value) -> String {
    let rules = array(o, "/spec/rules");
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == 3 {
            more = true;
        }
        let host = text(rule, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - 3)
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    fn opts() -> Options {
        Options {
            include_object: IncludeObject::Metadata,
        }
    }

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn running_ready_pod_row() {
        let pod = json!({
            "metadata": {"name": "kubia-abc", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let t = render(by_plural("pods").unwrap(), &[pod], &opts(), "5", None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "kubia-abc");
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.244.0.5");
        assert_eq!(cells[6], "node-1");
        assert_eq!(
            t["columnDefinitions"].as_array().unwrap().len(),
            cells.as_array().unwrap().len()
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn terminating_pod_says_so() {
        let pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        let t = render(by_plural("pods").unwrap(), &[pod], &opts(), "1", None);
        assert_eq!(t["rows"][0]["cells"][2], "Terminating");
    }

    #[test]
    fn service_rows() {
        let svc = json!({"metadata": {"name": "kubia-lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10",
            "selector": {"app": "kubia"}, "ports": [{"port": 80, "nodePort": 30123, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}});
        let t = render(by_plural("services").unwrap(), &[svc], &opts(), "1", None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "LoadBalancer");
        assert_eq!(cells[3], "203.0.113.7");
        assert_eq!(cells[4], "80:30123/TCP");
        assert_eq!(cells[6], "app=kubia");
        let pending =
            json!({"metadata": {"name": "x"}, "spec": {"type": "LoadBalancer", "ports": []}});
        let t = render(
            by_plural("services").unwrap(),
            &[pending],
            &opts(),
            "1",
            None,
        );
        assert_eq!(t["rows"][0]["cells"][3], "<pending>");
        assert_eq!(t["rows"][0]["cells"][4], "<none>");
    }

    #[test]
    fn endpoints_show_three_then_more() {
        let ep = json!({"metadata": {"name": "kubia"}, "subsets": [{"addresses": [
            {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 8080}]}]});
        let t = render(by_plural("endpoints").unwrap(), &[ep], &opts(), "1", None);
        assert_eq!(
            t["rows"][0]["cells"][1],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        let empty = json!({"metadata": {"name": "x"}});
        let t = render(
            by_plural("endpoints").unwrap(),
            &[empty],
            &opts(),
            "1",
            None,
        );
        assert_eq!(t["rows"][0]["cells"][1], "<none>");
    }

    #[test]
    fn deployment_and_node_rows() {
        let d = json!({"metadata": {"name": "kubia"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "kubia"}},
            "template": {"spec": {"containers": [{"name": "kubia", "image": "luksa/kubia"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = render(by_plural("deployments").unwrap(), &[d], &opts(), "1", None);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "kubia",
                "2/3",
                3,
                2,
                "<unknown>",
                "kubia",
                "luksa/kubia",
                "app=kubia"
            ])
        );
        let n = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"},
            "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}]}});
        let t = render(by_plural("nodes").unwrap(), &[n], &opts(), "1", None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "Ready");
        assert_eq!(cells[2], "control-plane");
        assert_eq!(cells[4], "v1.32.0");
        assert_eq!(cells[5], "192.168.0.2");
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn every_resource_has_as_many_cells_as_columns() {
        for r in crate::resources::RESOURCES {
            let t = render(r, &[json!({"metadata": {"name": "x"}})], &opts(), "1", None);
            let cols = t["columnDefinitions"].as_array().map(Vec::len);
            let cells = t["rows"][0]["cells"].as_array().map(Vec::len);
            assert_eq!(cols, cells, "{}", r.plural);
            if !crate::resources::is_review(r.plural) {
                assert_ne!(
                    t["columnDefinitions"][1]["name"], "Created At",
                    "{} has its own printer",
                    r.plural
                );
            }
        }
    }

    #[test]
    fn ingress_rows() {
        let i = json!({"metadata": {"name": "kubia"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "kubia.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
        let t = render(by_plural("ingresses").unwrap(), &[i], &opts(), "1", None);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "nginx");
        assert_eq!(cells[2], "kubia.example.com");
        assert_eq!(cells[3], "203.0.113.9");
        assert_eq!(cells[4], "80");
    }
}
