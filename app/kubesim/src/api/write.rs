//! POST (create) and PUT (update) of whole objects: body decoding with the apiserver's error
//! wording, type and namespace checks, admission by the simulation, and optimistic
//! concurrency on `resourceVersion`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::status::ApiError;
use super::{Ctx, json_response, ok_json};
use crate::resources::Resource;
use crate::sim;
use crate::store::metadata_mut;

/// Decodes a JSON request body into an object of `r`'s kind, filling a missing `apiVersion` /
/// `kind` from the URL, as the apiserver's decoder does with its default GVK.
pub fn decode_object(r: &Resource, body: &[u8]) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }",
        ));
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let expected = r.api_version();
    if !api_version.is_empty() && api_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    if !kind.is_empty() && kind != r.kind {
        let version = api_version.rsplit('/').next().unwrap_or(r.version);
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: no kind \"{kind}\" is registered for the internal version of this resource",
            r.kind
        )));
    }
    if map
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal into Go struct field {}.metadata of type v1.ObjectMeta",
            r.kind, r.version, r.kind, r.kind
        )));
    }
    map.insert("apiVersion".into(), json!(expected));
    map.insert("kind".into(), json!(r.kind));
    Ok(object)
}

/// Checks that the body's namespace (if any) is the URL's.
fn check_namespace(ctx: &Ctx, object: &Value) -> Result<(), ApiError> {
    let body_ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ctx.path.resource.namespaced && !body_ns.is_empty() && body_ns != ctx.namespace() {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The namespace must exist before anything is created in it.
pub fn require_namespace(ctx: &Ctx) -> Result<(), ApiError> {
    if !ctx.path.resource.namespaced {
        return Ok(());
    }
    let ns = ctx.namespace();
    if ctx.cluster().store.get("namespaces", "", ns).is_none() {
        return Err(ApiError::namespace_not_found(ns));
    }
    Ok(())
}

/// The `Status` for a refusal by the simulation's admission.
pub fn admission_error(e: sim::AdmissionError) -> ApiError {
    let code = e.code();
    let reason: &'static str = match e.reason.as_str() {
        "Invalid" => "Invalid",
        "NotFound" => "NotFound",
        "Forbidden" => "Forbidden",
        "AlreadyExists" => "AlreadyExists",
        "Conflict" => "Conflict",
        _ => "BadRequest",
    };
    ApiError {
        code,
        reason,
        message: e.message,
        details: e.details,
    }
}

/// Admits and stores `next` as the new state of `current`, refusing with 409 Conflict if the
/// object changed in between (or if `expected_rv` is stale).
pub fn commit_update(
    ctx: &Ctx,
    current: &Value,
    mut next: Value,
    expected_rv: Option<&str>,
) -> Result<Value, ApiError> {
    let r = ctx.path.resource;
    sim::admit_update(ctx.cluster(), r.plural, ctx.namespace(), current, &mut next)
        .map_err(admission_error)?;
    let current_rv = current
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let guard = expected_rv.unwrap_or(current_rv);
    ctx.cluster()
        .store
        .update_if(r.plural, ctx.namespace(), ctx.name(), Some(guard), |o| {
            *o = next
        })
        .map_err(|e| ApiError::from_store(r, e))
}

/// Fields the server owns on create: whatever the client sent there is replaced.
fn reset_system_fields(r: &Resource, object: &mut Value) {
    let meta = metadata_mut(object);
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(field);
    }
    if matches!(
        r.plural,
        "deployments" | "replicasets" | "ingresses" | "namespaces" | "services"
    ) {
        meta.insert("generation".into(), json!(1));
    }
}

/// Defaults of kinds the simulation does not handle (`SetDefaults_Secret`).
fn default_fields(r: &Resource, object: &mut Value) {
    if r.plural == "secrets"
        && object
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        && let Some(map) = object.as_object_mut()
    {
        map.insert("type".into(), json!("Opaque"));
    }
}

/// POST a new object.
pub fn create(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let mut object = decode_object(r, body)?;
    check_namespace(ctx, &object)?;
    require_namespace(ctx)?;
    reset_system_fields(r, &mut object);
    default_fields(r, &mut object);
    sim::admit_create(ctx.cluster(), r.plural, ctx.namespace(), &mut object)
        .map_err(admission_error)?;
    if ctx.query.get("dryRun") == Some("All") {
        return Ok(json_response(StatusCode::CREATED, &object));
    }
    let created = ctx
        .cluster()
        .store
        .create(r.plural, ctx.namespace(), object)
        .map_err(|e| ApiError::from_store(r, e))?;
    tracing::info!(cluster = %ctx.cluster().name, resource = r.plural, namespace = ctx.namespace(), name = %created["metadata"]["name"], "created");
    Ok(json_response(StatusCode::CREATED, &created))
}

/// PUT a whole object (or its `status`).
pub fn update(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let mut object = decode_object(r, body)?;
    check_namespace(ctx, &object)?;
    let name = ctx.name();
    let body_name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let expected_rv = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    metadata_mut(&mut object).remove("resourceVersion");
    let status_only = ctx.path.subresource.as_deref() == Some("status");
    let has_status_sub = r.subresource("status").is_some();
    let current = ctx
        .cluster()
        .store
        .get(r.plural, ctx.namespace(), name)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let next = merge_for_update(&current, object, status_only, has_status_sub);
    if ctx.query.get("dryRun") == Some("All") {
        return Ok(ok_json(&next));
    }
    let updated = commit_update(ctx, &current, next, expected_rv.as_deref())?;
    Ok(ok_json(&updated))
}

/// What an update stores: the new object, except that the main resource cannot change
/// `status` and the `status` subresource can change nothing else (where a status subresource
/// exists), as the registry strategies' `PrepareForUpdate` enforce.
pub fn merge_for_update(
    current: &Value,
    mut next: Value,
    status_only: bool,
    has_status_sub: bool,
) -> Value {
    if !next.is_object() {
        return current.clone();
    }
    if status_only {
        let mut out = current.clone();
        out["status"] = next.get("status").cloned().unwrap_or(Value::Null);
        return out;
    }
    if has_status_sub {
        match current.get("status") {
            Some(status) => next["status"] = status.clone(),
            None => {
                if let Some(map) = next.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    // Immutable metadata the client may not change by sending something else.
    for field in [
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        if let Some(v) = current.pointer(&format!("/metadata/{field}")) {
            metadata_mut(&mut next).insert(field.into(), v.clone());
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn decoding_fills_type_and_rejects_wrong_ones() {
        let pods = by_plural("pods").unwrap();
        let o = decode_object(pods, br#"{"metadata":{"name":"a"}}"#).unwrap();
        assert_eq!(o["kind"], "Pod");
        assert_eq!(o["apiVersion"], "v1");
        let e = decode_object(pods, br#"{"apiVersion":"apps/v1","kind":"Pod"}"#).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert!(
            e.message
                .contains("does not match the expected API version (v1)")
        );
        let e = decode_object(pods, br#"{"apiVersion":"v1","kind":"Service"}"#).unwrap_err();
        assert_eq!(e.code, 400);
        let e = decode_object(pods, b"{not json").unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert!(decode_object(pods, b"[1,2]").is_err());
        assert!(decode_object(pods, br#"{"metadata": 5}"#).is_err());
    }

    #[test]
    fn main_resource_updates_keep_status() {
        let current =
            json!({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {"ready": 1}});
        let next = json!({"metadata": {}, "spec": {"replicas": 3}, "status": {"ready": 9}});
        let out = merge_for_update(&current, next, false, true);
        assert_eq!(out["status"]["ready"], 1);
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["generation"], 1);
        let out = merge_for_update(
            &current,
            json!({"spec": {"replicas": 7}, "status": {"ready": 2}}),
            true,
            true,
        );
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["status"]["ready"], 2);
    }
}
