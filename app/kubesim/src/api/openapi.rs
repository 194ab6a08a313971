//! The OpenAPI v3 documents, in the small subset clients depend on.
//!
//! kubectl (`apply`, `create`, `replace`, `edit`) asks `/openapi/v3` whether the server
//! validates fields itself: it looks, per group version, for the PATCH operation of the kind
//! (found by `x-kubernetes-group-version-kind`) and its `fieldValidation` parameter. When it is
//! there, kubectl leaves validation to the server instead of downloading schemas; without any
//! OpenAPI document it refuses to apply ("failed to download openapi"). kubesim therefore
//! publishes the index and, per group version, its PATCH operations — but no schemas, so
//! kubectl computes strategic merge patches from its compiled-in types, exactly as it does for
//! built-in kinds when a schema is missing.

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::ok_json;
use super::status::ApiError;
use crate::discovery::GIT_VERSION;
use crate::resources::{self, RESOURCES, Resource};

/// A version tag for `?hash=` (clients cache documents by it).
const HASH: &str = "6B1A6D1B0C0F4D0A9E5B8C7D6E5F4A3B2C1D0E9F8A7B6C5D4E3F2A1B0C9D8E7F";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index() -> Response {
    let mut paths = Map::new();
    let mut seen = Vec::new();
    for r in RESOURCES {
        let p = gv_path(r.group, r.version);
        if !seen.contains(&p) {
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={HASH}")}),
            );
            seen.push(p);
        }
    }
    ok_json(&json!({"paths": paths}))
}

fn patch_operation(r: &Resource) -> Value {
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    json!({
        "patch": {
            "tags": [format!("{}_{}", if r.group.is_empty() { "core" } else { r.group }, r.version)],
            "description": format!("partially update the specified {}", r.kind),
            "operationId": format!("patch{}", r.kind),
            "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
            "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}, "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        }
    })
}

/// `/openapi/v3/{api/v1|apis/G/V}`: the PATCH operations of one group version.
pub fn group_version(path: &str) -> Response {
    let rest = path
        .trim_start_matches("/openapi/v3/")
        .trim_end_matches('/');
    let gv = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => Some((String::new(), (*v).to_string())),
        ["apis", g, v] => Some(((*g).to_string(), (*v).to_string())),
        _ => None,
    };
    let Some((group, version)) = gv.filter(|(g, v)| resources::serves_group_version(g, v)) else {
        return axum::response::IntoResponse::into_response(ApiError::no_such_resource());
    };
    let mut paths = Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let prefix = format!("/{}", gv_path(r.group, r.version));
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        paths.insert(path, patch_operation(r));
    }
    ok_json(&json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gv_paths() {
        assert_eq!(gv_path("", "v1"), "api/v1");
        assert_eq!(gv_path("apps", "v1"), "apis/apps/v1");
    }
}
