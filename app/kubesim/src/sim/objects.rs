//! Small readers and writers over objects held as JSON: names, labels, owner references,
//! label selectors, conditions. Shared by every controller so that each reads the fields the
//! same way.

use serde_json::{Map, Value, json};

/// `metadata.name` (empty if missing).
pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name").unwrap_or_default()
}

/// `metadata.uid` (empty if missing).
pub fn uid(object: &Value) -> &str {
    str_at(object, "/metadata/uid").unwrap_or_default()
}

/// The string at a JSON pointer, if there is one.
pub fn str_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// The integer at a JSON pointer, if there is one.
pub fn i64_at(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

/// The array at a JSON pointer, or an empty slice.
pub fn array_at<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `metadata.labels`, or an empty map.
pub fn labels(object: &Value) -> Map<String, Value> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether the object is being deleted (`metadata.deletionTimestamp` is set).
pub fn is_terminating(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The UID of the object's controller (the owner reference with `controller: true`).
pub fn controller_uid(object: &Value) -> Option<&str> {
    array_at(object, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// The name of the `resource` object with UID `wanted` in `namespace`, found without copying
/// objects.
pub fn name_of_uid(
    cluster: &crate::cluster::Cluster,
    resource: &str,
    namespace: &str,
    wanted: &str,
) -> Option<String> {
    let mut found = None;
    cluster.store.for_each(resource, Some(namespace), |o| {
        if found.is_none() && uid(o) == wanted {
            found = Some(name(o).to_string());
        }
    });
    found
}

/// An owner reference marking `owner` (of the given `apiVersion` and `kind`) as the controller
/// of a dependent.
pub fn controller_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether a map-style selector (a Service's `spec.selector`) matches `labels`. An empty
/// selector matches nothing here, as a Service with `selector: {}` selects no pods.
pub fn map_selector_matches(selector: &Map<String, Value>, labels: &Map<String, Value>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether a `LabelSelector` (`matchLabels` + `matchExpressions`, as Deployments and
/// ReplicaSets have) matches `labels`. An empty selector matches everything, as in Kubernetes.
pub fn label_selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels.is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    labels_ok
        && array_at(selector, "/matchExpressions")
            .iter()
            .all(|e| expression_matches(e, labels))
}

fn expression_matches(expression: &Value, labels: &Map<String, Value>) -> bool {
    let key = expression
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let values: Vec<&str> = array_at(expression, "/values")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let actual = labels.get(key).and_then(Value::as_str);
    match expression.get("operator").and_then(Value::as_str) {
        Some("In") => actual.is_some_and(|a| values.contains(&a)),
        Some("NotIn") => actual.is_none_or(|a| !values.contains(&a)),
        Some("Exists") => actual.is_some(),
        Some("DoesNotExist") => actual.is_none(),
        _ => false,
    }
}

/// Sets condition `kind` in a `conditions` array, keeping `lastTransitionTime` when the status
/// did not change (as every Kubernetes controller does). `extra` fields (e.g. `lastProbeTime`,
/// `lastUpdateTime`) are merged in.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
    extra: &Map<String, Value>,
) {
    let status = if status { "True" } else { "False" };
    let previous = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(kind));
    let transition = previous
        .map(|i| &conditions[i])
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut condition = json!({"type": kind, "status": status, "lastTransitionTime": transition});
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    if let Some(message) = message {
        condition["message"] = json!(message);
    }
    if let Some(map) = condition.as_object_mut() {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// The `status` of condition `kind` is `"True"`.
pub fn condition_true(object: &Value, pointer: &str, kind: &str) -> bool {
    array_at(object, pointer).iter().any(|c| {
        c.get("type").and_then(Value::as_str) == Some(kind)
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

/// Whether a pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Value) -> bool {
    condition_true(pod, "/status/conditions", "Ready")
}

/// A JSON serialisation with object keys sorted, so that equal objects always hash alike
/// whatever order their keys were inserted in.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        canonical_json(&map[*k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The timestamp `offset` from now, as the apiserver writes timestamps.
pub fn rfc3339_in(offset: std::time::Duration) -> String {
    let now = jiff::Timestamp::now();
    let span = jiff::SignedDuration::try_from(offset).unwrap_or_default();
    now.checked_add(span)
        .unwrap_or(now)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_supports_expressions() {
        let labels = json!({"app": "kubia", "tier": "web"});
        let labels = labels.as_object().unwrap();
        let sel = json!({"matchLabels": {"app": "kubia"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                 {"key": "legacy", "operator": "DoesNotExist"}]});
        assert!(label_selector_matches(&sel, labels));
        let sel =
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]});
        assert!(!label_selector_matches(&sel, labels));
    }

    #[test]
    fn empty_service_selector_selects_nothing() {
        let labels = json!({"app": "kubia"});
        assert!(!map_selector_matches(
            &Map::new(),
            labels.as_object().unwrap()
        ));
    }

    #[test]
    fn condition_keeps_transition_time_when_status_unchanged() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Ready",
            true,
            None,
            None,
            "t1",
            &Map::new(),
        );
        set_condition(
            &mut conditions,
            "Ready",
            true,
            Some("R"),
            None,
            "t2",
            &Map::new(),
        );
        assert_eq!(conditions[0]["lastTransitionTime"], "t1");
        set_condition(
            &mut conditions,
            "Ready",
            false,
            None,
            None,
            "t3",
            &Map::new(),
        );
        assert_eq!(conditions[0]["lastTransitionTime"], "t3");
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
