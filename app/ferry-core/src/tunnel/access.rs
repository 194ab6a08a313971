//! Asking the API server, before a tunnel claims to serve, whether its user may open
//! port-forward streams at all.
//!
//! Ferry opens one port-forward stream per local connection, so without this a tunnel in a
//! read-only context would bind, look Active, and only fail on its first connection. A
//! `SelfSubjectAccessReview` (what `kubectl auth can-i` sends) answers up front; when the
//! server cannot answer it (old server, review API not allowed), the tunnel carries on and a
//! refused connection still fails it.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use crate::errors::{Access, ClusterError};

/// `Err(Forbidden)` when the server says this user may not `create pods/portforward` in
/// `namespace`; `Ok(())` when it may, or when the server could not tell.
pub(crate) async fn check_port_forward(
    client: &kube::Client,
    context: &str,
    namespace: &str,
) -> Result<(), ClusterError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".into()),
                resource: Some("pods".into()),
                subresource: Some("portforward".into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = match api.create(&PostParams::default(), &review).await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::debug!(%context, %err, "access review unavailable; checking on first connection");
            return Ok(());
        }
    };
    match answer.status {
        Some(status) if !status.allowed => Err(ClusterError::Forbidden {
            context: context.to_string(),
            access: Box::new(Access::new("create", "pods/portforward", Some(namespace))),
            message: status
                .reason
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "access review denied".into()),
        }),
        _ => Ok(()),
    }
}
