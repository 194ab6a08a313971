//! `Status` errors exactly as a real apiserver writes them: the same HTTP code, `reason`,
//! message wording and `details`, because clients (kubectl's "Error from server (NotFound)",
//! kube-rs' `ErrorResponse`, watchers reacting to 410) branch on them.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::resources::Resource;
use crate::store::StoreError;

/// An API failure, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 BadRequest (malformed body, bad selector, wrong kind…).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 with the RBAC authorizer's sentence.
    pub fn forbidden(resource: &Resource, name: &str, message: String) -> Self {
        let prefix = if name.is_empty() {
            resource.qualified()
        } else {
            format!("{} \"{name}\"", resource.qualified())
        };
        Self::new(
            403,
            "Forbidden",
            format!("{prefix} is forbidden: {message}"),
        )
        .with_details(details(resource, name))
    }

    /// 404 for a path that names no resource.
    pub fn no_such_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 404 for an object that does not exist.
    pub fn not_found(resource: &Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(details(resource, name))
    }

    /// 404 for a namespace that does not exist (creating into it).
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(json!({"name": namespace, "kind": "namespaces"}))
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    /// 406 for an Accept header we cannot satisfy.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(details(resource, name))
    }

    /// 409 Conflict (stale resourceVersion on update).
    pub fn conflict(resource: &Resource, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource.qualified()
            ),
        )
        .with_details(details(resource, name))
    }

    /// 410 Expired: the requested resourceVersion is older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for a PATCH content type we do not understand.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type:?}"
            ),
        )
    }

    /// 422 Invalid (validation failed).
    pub fn invalid(resource: &Resource, name: &str, message: impl Into<String>) -> Self {
        Self::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: {}",
                resource.kind,
                message.into()
            ),
        )
        .with_details(json!({"name": name, "group": resource.group, "kind": resource.kind}))
    }

    /// 422 for a JSON patch that cannot be applied to the object.
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 500 for a bug on our side; never for bad input.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 501 for something kubesim does not implement yet.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", message)
    }

    /// The error from the store, mapped as the apiserver maps etcd errors.
    pub fn from_store(resource: &Resource, err: StoreError) -> Self {
        match err {
            StoreError::NotFound { name, .. } => Self::not_found(resource, &name),
            StoreError::AlreadyExists { name, .. } => Self::already_exists(resource, &name),
            StoreError::Conflict { name, .. } => Self::conflict(resource, &name),
            StoreError::Gone { .. } => Self::expired(err.to_string()),
            StoreError::NoName => Self::new(
                422,
                "Invalid",
                format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    resource.kind
                ),
            ),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn details(resource: &Resource, name: &str) -> Value {
    let mut d = json!({"kind": resource.plural});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !resource.group.is_empty() {
        d["group"] = json!(resource.group);
    }
    d
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        super::json_response(code, &self.to_status())
    }
}

/// The success `Status` some deletes return.
pub fn success(resource: &Resource, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(resource, name);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn not_found_reads_like_the_apiserver() {
        let pods = by_plural("pods").unwrap();
        let s = ApiError::not_found(pods, "x").to_status();
        assert_eq!(s["message"], "pods \"x\" not found");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"], json!({"name": "x", "kind": "pods"}));
        let deploy = by_plural("deployments").unwrap();
        let s = ApiError::not_found(deploy, "web").to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
    }
}
