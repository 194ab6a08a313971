//! Deployments and ReplicaSets at admission: the `apps/v1` validation (a selector that matches
//! the template's labels, a valid pod template) and defaulting (strategy, history limit,
//! progress deadline) a real apiserver applies.

use serde_json::{Value, json};

use super::objects::{label_selector_matches, labels, str_at};
use super::{AdmissionError, FieldError, pods};

/// Validates and defaults a new Deployment; its status starts empty and `generation` at 1.
pub fn admit_deployment(deployment: &mut Value) -> Result<(), AdmissionError> {
    validate(deployment, "Deployment")?;
    let spec = &mut deployment["spec"];
    if let Some(map) = spec.as_object_mut() {
        map.entry("replicas").or_insert(json!(1));
        map.entry("revisionHistoryLimit").or_insert(json!(10));
        map.entry("progressDeadlineSeconds").or_insert(json!(600));
        let strategy = map.entry("strategy").or_insert_with(|| json!({}));
        default_strategy(strategy);
    }
    pods::default_spec(&mut spec["template"]["spec"]);
    deployment["metadata"]["generation"] = json!(1);
    deployment["status"] = json!({});
    Ok(())
}

/// Validates and defaults a new ReplicaSet.
pub fn admit_replicaset(rs: &mut Value) -> Result<(), AdmissionError> {
    validate(rs, "ReplicaSet")?;
    if let Some(map) = rs["spec"].as_object_mut() {
        map.entry("replicas").or_insert(json!(1));
    }
    pods::default_spec(&mut rs["spec"]["template"]["spec"]);
    rs["metadata"]["generation"] = json!(1);
    rs["status"] = json!({"replicas": 0});
    Ok(())
}

fn default_strategy(strategy: &mut Value) {
    let Some(map) = strategy.as_object_mut() else {
        return;
    };
    let kind = map
        .entry("type")
        .or_insert(json!("RollingUpdate"))
        .as_str()
        .unwrap_or("RollingUpdate")
        .to_string();
    if kind == "RollingUpdate" {
        let rolling = map.entry("rollingUpdate").or_insert_with(|| json!({}));
        if let Some(r) = rolling.as_object_mut() {
            r.entry("maxSurge").or_insert(json!("25%"));
            r.entry("maxUnavailable").or_insert(json!("25%"));
        }
    }
}

fn validate(object: &Value, kind: &str) -> Result<(), AdmissionError> {
    let name = str_at(object, "/metadata/name")
        .or_else(|| str_at(object, "/metadata/generateName"))
        .unwrap_or_default();
    let mut errors = Vec::new();
    let selector = object.pointer("/spec/selector");
    let template_labels = labels(&object["spec"]["template"]);
    match selector {
        None | Some(Value::Null) => errors.push(FieldError::required("spec.selector")),
        Some(sel) if sel.as_object().is_none_or(|m| m.is_empty()) => {
            errors.push(FieldError::invalid(
                "spec.selector",
                sel,
                "empty selector is invalid for deployment",
            ))
        }
        Some(sel) if !label_selector_matches(sel, &template_labels) => {
            errors.push(FieldError::invalid(
                "spec.template.metadata.labels",
                &Value::Object(template_labels.clone()),
                "`selector` does not match template `labels`",
            ))
        }
        Some(_) => {}
    }
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        errors.push(FieldError::invalid(
            "spec.replicas",
            &json!(replicas),
            "must be greater than or equal to 0",
        ));
    }
    errors.extend(pods::validate_spec(
        &object["spec"]["template"]["spec"],
        "spec.template.spec",
    ));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AdmissionError::invalid(kind, "apps", name, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(selector: Value) -> Value {
        json!({"metadata": {"name": "kubia"}, "spec": {"selector": selector,
            "template": {"metadata": {"labels": {"app": "kubia"}},
                         "spec": {"containers": [{"name": "kubia", "image": "luksa/kubia:v1"}]}}}})
    }

    #[test]
    fn deployment_gets_the_documented_defaults() {
        let mut d = deployment(json!({"matchLabels": {"app": "kubia"}}));
        admit_deployment(&mut d).unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut d = deployment(json!({"matchLabels": {"app": "other"}}));
        let err = admit_deployment(&mut d).unwrap_err();
        assert!(
            err.message.starts_with(
                "Deployment.apps \"kubia\" is invalid: spec.template.metadata.labels: Invalid value"
            ),
            "{}",
            err.message
        );
        let mut d = deployment(Value::Null);
        assert!(
            admit_deployment(&mut d)
                .unwrap_err()
                .message
                .contains("spec.selector: Required value")
        );
    }
}
