//! The `scale` subresource of deployments and replicasets (`autoscaling/v1` `Scale`), which
//! `kubectl scale` patches. Reading it projects the object; writing it changes only
//! `spec.replicas` of the parent.

use axum::response::Response;
use serde_json::{Value, json};

use super::patch::{PatchType, apply_patch};
use super::status::ApiError;
use super::write::commit_update;
use super::{Ctx, ok_json};
use crate::resources::Resource;

/// `matchLabels` / `matchExpressions` written as a selector string (`app=kubia,tier in (a,b)`),
/// requirements sorted by key as `labels.Selector.String()` prints them.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            parts.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let part = match e["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            parts.push((key.to_string(), part));
        }
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    parts
        .into_iter()
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join(",")
}

fn to_scale(object: &Value) -> Value {
    let meta = &object["metadata"];
    let mut metadata = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            metadata[f] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(object.pointer("/spec/selector").unwrap_or(&Value::Null)),
        },
    })
}

/// GET, PUT or PATCH `…/scale`.
pub fn scale(ctx: &Ctx, verb: &str, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let name = ctx.name();
    let store = &ctx.cluster().store;
    let current = store
        .get(r.plural, ctx.namespace(), name)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let scale = to_scale(&current);
    let (wanted, expected_rv) = match verb {
        "get" => return Ok(ok_json(&scale)),
        "update" => decode_scale(body)?,
        "patch" => {
            let content_type = ctx
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/merge-patch+json" | "application/apply-patch+yaml" => PatchType::Merge,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/json-patch+json" => PatchType::Json,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let patched = apply_patch(kind, &scale, body)?;
            (replicas_of(&patched)?, None)
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    set_replicas(ctx, r, name, wanted, expected_rv.as_deref())
}

fn replicas_of(scale: &Value) -> Result<i64, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: format!(
                "Scale.autoscaling \"\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            ),
            details: None,
        });
    }
    Ok(replicas)
}

fn decode_scale(body: &[u8]) -> Result<(i64, Option<String>), ApiError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("Scale");
    if kind != "Scale" {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a Scale"
        )));
    }
    let rv = doc
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Ok((replicas_of(&doc)?, rv))
}

fn set_replicas(
    ctx: &Ctx,
    r: &Resource,
    name: &str,
    replicas: i64,
    expected_rv: Option<&str>,
) -> Result<Response, ApiError> {
    let current = ctx
        .cluster()
        .store
        .get(r.plural, ctx.namespace(), name)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let mut next = current.clone();
    if !next["spec"].is_object() {
        next["spec"] = json!({});
    }
    next["spec"]["replicas"] = json!(replicas);
    let updated = commit_update(ctx, &current, next, expected_rv)?;
    tracing::info!(cluster = %ctx.cluster().name, resource = r.plural, name, replicas, "scaled");
    Ok(ok_json(&to_scale(&updated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_projects_a_deployment() {
        let d = json!({"metadata": {"name": "kubia", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "kubia"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=kubia,tier in (a,b)");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn negative_replicas_are_invalid() {
        assert_eq!(
            replicas_of(&json!({"spec": {"replicas": -1}}))
                .unwrap_err()
                .code,
            422
        );
    }
}
