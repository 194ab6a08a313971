//! PATCH in the four flavours the apiserver accepts: JSON merge patch (RFC 7386), strategic
//! merge patch (what `kubectl apply`, `edit`, `label` and `annotate` send for built-in types),
//! JSON patch (RFC 6902) and server-side apply (approximated as a merge that may create).
//!
//! Strategic merge is implemented for the lists kubectl touches on our kinds: lists of
//! containers, env, volumes, ports… merge by their key (`name`, `containerPort`, `port`,
//! `mountPath`, `type`) and honour `$patch: delete` / `$patch: replace` and
//! `$deleteFromPrimitiveList`; other lists are replaced, as their schema says.

use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::status::ApiError;
use super::write::{
    admission_error, commit_update, decode_object, merge_for_update, require_namespace,
};
use super::{Ctx, json_response, ok_json};
use crate::resources::Resource;
use crate::sim;

/// The patch flavour, from `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// PATCH an object (or its `status`).
pub fn patch(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchType::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    let store = &ctx.cluster().store;
    let name = ctx.name();
    // Like the apiserver, re-apply the patch on a fresh copy when someone else wrote in between.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(current) = store.get(r.plural, ctx.namespace(), name) else {
            if kind == PatchType::Apply {
                return apply_create(ctx, body);
            }
            return Err(ApiError::not_found(r, name));
        };
        let patched = apply_patch(kind, &current, body)?;
        check_identity(r, &current, &patched)?;
        // A resourceVersion in the patch is a precondition, as on the apiserver.
        let rv = |o: &Value| {
            o.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if rv(&patched).is_some_and(|p| Some(&p) != rv(&current).as_ref()) {
            return Err(ApiError::conflict(r, name));
        }
        let status_only = ctx.path.subresource.as_deref() == Some("status");
        let has_status_sub = r.subresource("status").is_some();
        let next = merge_for_update(&current, patched, status_only, has_status_sub);
        if ctx.query.get("dryRun") == Some("All") {
            return Ok(ok_json(&next));
        }
        match commit_update(ctx, &current, next, None) {
            Err(e) if e.reason == "Conflict" && attempts < 5 => continue,
            Err(e) => return Err(e),
            Ok(updated) => return Ok(ok_json(&updated)),
        }
    }
}

/// Server-side apply of an object that does not exist yet creates it.
fn apply_create(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let value = parse_patch_body(PatchType::Apply, body)?;
    let json = serde_json::to_vec(&value).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut object = decode_object(r, &json)?;
    require_namespace(ctx)?;
    sim::admit_create(ctx.cluster(), r.plural, ctx.namespace(), &mut object)
        .map_err(admission_error)?;
    let created = ctx
        .cluster()
        .store
        .create(r.plural, ctx.namespace(), object)
        .map_err(|e| ApiError::from_store(r, e))?;
    Ok(json_response(StatusCode::CREATED, &created))
}

fn parse_patch_body(kind: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let parsed: Result<Value, String> = match kind {
        PatchType::Apply => {
            let text = std::str::from_utf8(body).map_err(|e| e.to_string());
            text.and_then(|t| serde_saphyr::from_str::<Value>(t).map_err(|e| e.to_string()))
        }
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// The object after applying a patch body of `kind`.
pub fn apply_patch(kind: PatchType, current: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch = parse_patch_body(kind, body)?;
    let mut target = current.clone();
    match kind {
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            json_patch::merge(&mut target, &patch);
        }
        PatchType::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a strategic merge patch must be a JSON object",
                ));
            }
            strategic_merge(&mut target, &patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut target, &ops).map_err(|e| {
                ApiError::invalid_patch(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
    }
    Ok(target)
}

/// A patch may not change what the object is.
fn check_identity(r: &Resource, before: &Value, after: &Value) -> Result<(), ApiError> {
    for (field, what) in [("/apiVersion", "apiVersion"), ("/kind", "kind")] {
        let a = after
            .pointer(field)
            .and_then(Value::as_str)
            .unwrap_or_default();
        let b = before
            .pointer(field)
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !a.is_empty() && !b.is_empty() && a != b {
            return Err(ApiError::bad_request(format!(
                "the {what} of the patched object ({a}) does not match the {what} of {} ({b})",
                r.kind
            )));
        }
    }
    let name = |v: &Value| {
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if name(before) != name(after) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            name(after),
            name(before)
        )));
    }
    Ok(())
}

/// The merge key of a list field, judged by its name and (for `ports`) its items.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch_map.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) =
                (target_map.get_mut(field), value.as_array())
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            // `$setElementOrder/…`, `$retainKeys`, `$patch` on maps: ordering and pruning
            // hints we do not need for correctness here.
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(_) => {
                let slot = target_map.entry(key.clone()).or_insert_with(|| json!({}));
                strategic_merge(slot, value);
            }
            Value::Array(items) => merge_list(target_map, key, items),
            other => {
                target_map.insert(key.clone(), other.clone());
            }
        }
    }
}

fn merge_list(target_map: &mut Map<String, Value>, key: &str, items: &[Value]) {
    let existing: Vec<Value> = target_map
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let merge_by = merge_key(key, items).or_else(|| merge_key(key, &existing));
    let (Some(merge_by), true) = (merge_by, items.iter().all(Value::is_object)) else {
        if key == "finalizers" {
            let mut out = existing;
            for item in items {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            target_map.insert(key.to_string(), Value::Array(out));
        } else {
            let cleaned: Vec<Value> = items.iter().filter(|i| !is_directive(i)).cloned().collect();
            target_map.insert(key.to_string(), Value::Array(cleaned));
        }
        return;
    };
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let cleaned: Vec<Value> = items.iter().filter(|i| !is_directive(i)).cloned().collect();
        target_map.insert(key.to_string(), Value::Array(cleaned));
        return;
    }
    let mut out = existing;
    for item in items {
        let id = item.get(merge_by);
        let pos = out
            .iter()
            .position(|e| id.is_some() && e.get(merge_by) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(p), true) => {
                out.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => strategic_merge(&mut out[p], item),
            (None, false) => {
                let mut fresh = json!({});
                strategic_merge(&mut fresh, item);
                out.push(fresh);
            }
        }
    }
    target_map.insert(key.to_string(), Value::Array(out));
}

fn is_directive(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.contains_key("$patch") && m.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "b:1"}
        ]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "c:1"}],
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}]}});
        strategic_merge(&mut pod, &patch);
        let cs = pod["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["image"], "a:2");
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(cs[1]["name"], "c");
    }

    #[test]
    fn strategic_merge_removes_nulls_and_replaces_plain_lists() {
        let mut obj =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x"]}});
        strategic_merge(
            &mut obj,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"args": ["y", "z"]}}),
        );
        assert_eq!(obj["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(obj["spec"]["args"], json!(["y", "z"]));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        strategic_merge(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}),
        );
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(svc["spec"]["ports"][0]["name"], "http");
        assert_eq!(svc["spec"]["ports"][1]["port"], 443);
    }

    #[test]
    fn patch_flavours() {
        let current = json!({"spec": {"replicas": 1, "x": 1}});
        let merged = apply_patch(
            PatchType::Merge,
            &current,
            br#"{"spec":{"replicas":5,"x":null}}"#,
        )
        .unwrap();
        assert_eq!(merged, json!({"spec": {"replicas": 5}}));
        let jp = apply_patch(
            PatchType::Json,
            &current,
            br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap();
        assert_eq!(jp["spec"]["replicas"], 2);
        assert_eq!(
            apply_patch(PatchType::Merge, &current, b"{oops")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            apply_patch(
                PatchType::Json,
                &current,
                br#"[{"op":"remove","path":"/nope"}]"#
            )
            .unwrap_err()
            .code,
            422
        );
    }
}
