//! GET of one object and LIST of a collection, with label/field selectors, `limit` and opaque
//! `continue` tokens, resourceVersion checks (410 Expired when too old), and the three
//! representations (object, `Table`, `PartialObjectMetadata`).

use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::negotiate::Representation;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::{Ctx, ok_json, table};
use crate::resources::Resource;

/// GET one object (or its `status` subresource, which reads the same).
pub fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let object = ctx
        .cluster()
        .store
        .get(r.plural, ctx.namespace(), ctx.name())
        .ok_or_else(|| ApiError::not_found(r, ctx.name()))?;
    let object = with_type_meta(r, object);
    Ok(match ctx.representation() {
        Representation::Object => ok_json(&object),
        Representation::Table => {
            let rv = resource_version_of(&object);
            ok_json(&table::render(r, &[object], &table_options(ctx), &rv, None))
        }
        Representation::Metadata => ok_json(&partial_metadata(&object)),
    })
}

/// The selectors of a list or watch request, parsed (400 when malformed).
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn from_ctx(ctx: &Ctx) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(
            ctx.query.get("fieldSelector").unwrap_or_default(),
            ctx.path.resource.plural,
        )
        .map_err(ApiError::bad_request)?;
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches_object(object) && self.fields.matches_object(object)
    }

    fn is_empty(&self) -> bool {
        self.labels == LabelSelector::default() && self.fields == FieldSelector::default()
    }
}

/// Where a chunked list stopped: the list's resourceVersion and the last key served.
#[derive(Debug, PartialEq)]
struct ContinueToken {
    rv: u64,
    namespace: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        let doc = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": format!("{}/{}", self.namespace, self.name)});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(doc.to_string())
    }

    fn decode(token: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let rv = doc["rv"].as_u64().ok_or_else(invalid)?;
        let start = doc["start"].as_str().ok_or_else(invalid)?;
        let (namespace, name) = start.split_once('/').ok_or_else(invalid)?;
        Ok(Self {
            rv,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }
}

/// LIST a collection.
pub fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let r = ctx.path.resource;
    let selectors = Selectors::from_ctx(ctx)?;
    let store = &ctx.cluster().store;
    let limit = ctx
        .query
        .int("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let token = ctx
        .query
        .non_empty("continue")
        .map(ContinueToken::decode)
        .transpose()?;
    check_list_resource_version(ctx, token.as_ref())?;
    let (items, current_rv) = store.list(r.plural, ctx.path.namespace.as_deref());
    let list_rv = token.as_ref().map_or(current_rv, |t| t.rv);
    let mut matching: Vec<Value> = items
        .into_iter()
        .filter(|o| selectors.matches(o))
        .filter(|o| match &token {
            None => true,
            Some(t) => key_of(o) > (t.namespace.clone(), t.name.clone()),
        })
        .collect();
    let mut next = None;
    let mut remaining = None;
    if let Some(limit) = limit
        && matching.len() > limit
    {
        let rest = matching.len() - limit;
        matching.truncate(limit);
        if let Some(last) = matching.last() {
            let (namespace, name) = key_of(last);
            next = Some(
                ContinueToken {
                    rv: list_rv,
                    namespace,
                    name,
                }
                .encode(),
            );
        }
        if selectors.is_empty() {
            remaining = Some(rest);
        }
    }
    let rv = list_rv.to_string();
    Ok(match ctx.representation() {
        Representation::Table => ok_json(&table::render(
            r,
            &matching
                .into_iter()
                .map(|o| with_type_meta(r, o))
                .collect::<Vec<_>>(),
            &table_options(ctx),
            &rv,
            next.as_deref(),
        )),
        repr => {
            let items: Vec<Value> = matching
                .into_iter()
                .map(|o| match repr {
                    Representation::Metadata => partial_metadata(&o),
                    _ => strip_type_meta(o),
                })
                .collect();
            let (kind, api_version) = match repr {
                Representation::Metadata => (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                ),
                _ => (format!("{}List", r.kind), r.api_version()),
            };
            let mut metadata = json!({"resourceVersion": rv});
            if let Some(next) = next {
                metadata["continue"] = json!(next);
            }
            if let Some(rest) = remaining {
                metadata["remainingItemCount"] = json!(rest);
            }
            ok_json(&json!({
                "kind": kind,
                "apiVersion": api_version,
                "metadata": metadata,
                "items": items,
            }))
        }
    })
}

/// 410 Expired for a continue token or an exact resourceVersion older than the history.
fn check_list_resource_version(ctx: &Ctx, token: Option<&ContinueToken>) -> Result<(), ApiError> {
    let store = &ctx.cluster().store;
    let oldest = store.oldest_resumable();
    if let Some(t) = token {
        if t.rv < oldest {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        return Ok(());
    }
    let Some(rv) = ctx.query.non_empty("resourceVersion") else {
        return Ok(());
    };
    let requested: u64 = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
    let exact = ctx.query.get("resourceVersionMatch") == Some("Exact");
    if exact && requested != 0 && requested < oldest {
        return Err(ApiError::expired(format!(
            "too old resource version: {requested} ({oldest})"
        )));
    }
    if requested > store.resource_version() {
        return Err(ApiError {
            code: 504,
            reason: "Timeout",
            message: format!(
                "Too large resource version: {requested}, current: {}",
                store.resource_version()
            ),
            details: Some(
                json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
            ),
        });
    }
    Ok(())
}

/// `(namespace, name)` of an object, the list order.
fn key_of(object: &Value) -> (String, String) {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// The object's `metadata.resourceVersion`.
pub fn resource_version_of(object: &Value) -> String {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The object with `apiVersion` and `kind` set (single objects and watch events carry them).
pub fn with_type_meta(r: &Resource, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(r.api_version()));
        map.insert("kind".into(), json!(r.kind));
    }
    object
}

/// List items do not repeat `apiVersion` and `kind` on the real wire.
fn strip_type_meta(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    object
}

/// The object reduced to `PartialObjectMetadata`.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// How rows carry their object (`includeObject=None|Metadata|Object`).
pub fn table_options(ctx: &Ctx) -> table::Options {
    table::Options {
        include_object: match ctx.query.get("includeObject") {
            Some("None") => table::IncludeObject::None,
            Some("Object") => table::IncludeObject::Object,
            _ => table::IncludeObject::Metadata,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = ContinueToken {
            rv: 42,
            namespace: "default".into(),
            name: "web-1".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert_eq!(ContinueToken::decode("!!!").unwrap_err().code, 400);
        assert_eq!(ContinueToken::decode("e30").unwrap_err().code, 400);
    }
}
