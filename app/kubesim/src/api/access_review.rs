//! `SelfSubjectAccessReview` (`kubectl auth can-i`, and clients that check a permission before
//! trying, such as "may I port-forward in this namespace?"): answered from the same RBAC rules
//! that guard every request, never stored.

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::status::ApiError;
use super::{Ctx, json_response, protobuf};
use crate::auth::{self, Attributes, User};
use crate::resources::RESOURCES;

/// POST `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
pub fn create(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let content_type = ctx
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut review: Value = if protobuf::is_protobuf(content_type) {
        from_protobuf(body).ok_or_else(|| {
            ApiError::bad_request("could not decode the protobuf SelfSubjectAccessReview")
        })?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "a SelfSubjectAccessReview must be a JSON object",
        ));
    }
    let allowed = decide(ctx.user, &review["spec"]);
    let mut status = json!({"allowed": allowed});
    if allowed && ctx.user == User::Admin {
        status["reason"] = json!(
            "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to User \"admin\""
        );
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["status"] = status;
    Ok(json_response(StatusCode::CREATED, &review))
}

/// The review's `spec` from its protobuf encoding (field numbers of `authorization/v1`).
fn from_protobuf(body: &[u8]) -> Option<Value> {
    let object = protobuf::unwrap_envelope(body)?;
    let spec = protobuf::field(object, 2).unwrap_or_default();
    let mut out = json!({"spec": {}});
    if let Some(ra) = protobuf::field(spec, 1) {
        let names = [
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
        ];
        let mut attrs = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            attrs.insert((*name).into(), json!(protobuf::string(ra, i as u64 + 1)));
        }
        out["spec"]["resourceAttributes"] = Value::Object(attrs);
    }
    if let Some(nra) = protobuf::field(spec, 2) {
        out["spec"]["nonResourceAttributes"] =
            json!({"path": protobuf::string(nra, 1), "verb": protobuf::string(nra, 2)});
    }
    Some(out)
}

/// Whether `user` may do what the review's `spec` asks about.
fn decide(user: User, spec: &Value) -> bool {
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(non_resource) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        // Discovery, health and version are readable by every authenticated user.
        return user == User::Admin || text(non_resource, "verb") == "get";
    }
    let Some(attrs) = spec.get("resourceAttributes").filter(|v| v.is_object()) else {
        return false;
    };
    let (group, plural) = (text(attrs, "group"), text(attrs, "resource"));
    let Some(resource) = RESOURCES
        .iter()
        .find(|r| r.group == group && (r.plural == plural || plural == "*"))
    else {
        // Resources kubesim does not serve: only the cluster admin may touch them.
        return user == User::Admin;
    };
    let namespace = text(attrs, "namespace");
    let subresource = text(attrs, "subresource");
    let verb = text(attrs, "verb");
    let name = text(attrs, "name");
    auth::allowed(
        user,
        &Attributes {
            verb: &verb,
            resource,
            subresource: (!subresource.is_empty()).then_some(subresource.as_str()),
            namespace: (!namespace.is_empty()).then_some(namespace.as_str()),
            name: &name,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_follow_the_rbac_rules() {
        let spec = |verb: &str, sub: &str, ns: &str| json!({"resourceAttributes": {"verb": verb, "resource": "pods", "subresource": sub, "namespace": ns}});
        assert!(decide(
            User::Admin,
            &spec("create", "portforward", "default")
        ));
        assert!(!decide(
            User::Viewer,
            &spec("create", "portforward", "default")
        ));
        assert!(decide(User::Viewer, &spec("list", "", "default")));
        assert!(decide(
            User::Restricted,
            &spec("create", "portforward", "default")
        ));
        assert!(!decide(User::Restricted, &spec("list", "", "kube-system")));
        assert!(!decide(User::Viewer, &json!({})));
    }
}
