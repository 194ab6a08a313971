//! DELETE of one object and of a collection. Deletion itself (grace periods, pods lingering
//! as `Terminating`) is the simulation's job: this module decodes `DeleteOptions`, checks
//! preconditions and answers like the apiserver (200 when gone, 202 while terminating).

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::read::Selectors;
use super::status::ApiError;
use super::{Ctx, json_response, ok_json};
use crate::sim;

/// The parts of `DeleteOptions` kubesim honours.
#[derive(Debug, Default, PartialEq)]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
    dry_run: bool,
    orphan_dependents: Option<bool>,
}

/// Registries that answer a finished DELETE with the object (`ReturnDeletedObject`); the
/// others answer with a `Status` of `Success`.
fn returns_deleted_object(plural: &str) -> bool {
    matches!(plural, "pods" | "services" | "namespaces")
}

fn delete_options(ctx: &Ctx, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        grace_period_seconds: ctx.query.int("gracePeriodSeconds")?,
        orphan_dependents: ctx.query.get("orphanDependents").map(|v| v == "true"),
        dry_run: ctx.query.get("dryRun") == Some("All"),
        ..DeleteOptions::default()
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !doc.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    if let Some(kind) = doc.get("kind").and_then(Value::as_str)
        && kind != "DeleteOptions"
    {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a DeleteOptions"
        )));
    }
    if let Some(g) = doc.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(g.as_i64().ok_or_else(|| {
            ApiError::bad_request("json: cannot unmarshal into Go struct field DeleteOptions.gracePeriodSeconds of type int64")
        })?);
    }
    let text = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_string);
    opts.orphan_dependents = doc.get("orphanDependents").and_then(Value::as_bool);
    opts.precondition_uid = text("/preconditions/uid");
    opts.precondition_rv = text("/preconditions/resourceVersion");
    if let Some(dry) = doc.get("dryRun").and_then(Value::as_array) {
        opts.dry_run |= dry.iter().any(|d| d == "All");
    }
    Ok(opts)
}

/// DELETE one object.
pub fn delete(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let opts = delete_options(ctx, body)?;
    let name = ctx.name();
    let store = &ctx.cluster().store;
    let current = store
        .get(r.plural, ctx.namespace(), name)
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let field = |p: &str| {
        current
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if opts
        .precondition_uid
        .as_ref()
        .is_some_and(|u| *u != field("/metadata/uid"))
    {
        return Err(ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {}, UID in object meta: {}",
                r.qualified(),
                opts.precondition_uid.unwrap_or_default(),
                field("/metadata/uid")
            ),
            details: Some(json!({"name": name, "kind": r.plural})),
        });
    }
    if opts
        .precondition_rv
        .as_ref()
        .is_some_and(|v| *v != field("/metadata/resourceVersion"))
    {
        return Err(ApiError::conflict(r, name));
    }
    if opts.dry_run {
        return Ok(ok_json(&current));
    }
    let result = sim::delete(
        ctx.cluster(),
        r.plural,
        ctx.namespace(),
        name,
        opts.grace_period_seconds,
    )
    .map_err(|e| ApiError::from_store(r, e))?;
    tracing::info!(cluster = %ctx.cluster().name, resource = r.plural, namespace = ctx.namespace(), name, "deleted");
    let still_there = store.get(r.plural, ctx.namespace(), name).is_some();
    // 202 only where the apiserver gives it: not gone yet and `orphanDependents: false`.
    let code = if still_there && opts.orphan_dependents == Some(false) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if still_there || returns_deleted_object(r.plural) {
        return Ok(json_response(code, &result));
    }
    let uid = result.pointer("/metadata/uid").and_then(Value::as_str);
    Ok(json_response(code, &super::status::success(r, name, uid)))
}

/// DELETE a collection (`kubectl delete pods --all` deletes one by one; other clients use this).
pub fn delete_collection(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let opts = delete_options(ctx, body)?;
    let selectors = Selectors::from_ctx(ctx)?;
    let (items, _) = ctx
        .cluster()
        .store
        .list(r.plural, ctx.path.namespace.as_deref());
    let mut deleted = Vec::new();
    for item in items.iter().filter(|o| selectors.matches(o)) {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if opts.dry_run {
            deleted.push(item.clone());
            continue;
        }
        // Something else may delete it first; that is not an error for a collection delete.
        if let Ok(obj) = sim::delete(ctx.cluster(), r.plural, ns, name, opts.grace_period_seconds) {
            deleted.push(obj);
        }
    }
    Ok(ok_json(&json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": ctx.cluster().store.resource_version().to_string()},
        "items": deleted,
    })))
}
