//! The REST API: one router per cluster that authenticates, authorizes and dispatches every
//! request the way kube-apiserver would, answering with the same JSON documents, `Status`
//! errors and watch streams.
//!
//! Modules by noun: [`path`] (what a URL addresses), [`query`] and [`negotiate`] (request
//! options), [`selector`], [`status`] (errors), [`read`] (get/list), [`watch`], [`write`]
//! (create/update), [`patch`], [`delete`], [`scale`], [`table`] (kubectl's columns) and
//! [`streaming`] (hand-off to port-forward, exec and logs).

pub mod access_review;
pub mod delete;
pub mod negotiate;
pub mod openapi;
pub mod patch;
pub mod path;
pub mod protobuf;
pub mod query;
pub mod read;
pub mod scale;
pub mod selector;
pub mod status;
pub mod streaming;
pub mod table;
pub mod watch;
pub mod write;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::Value;

use crate::auth::{self, Attributes, Tokens, User};
use crate::cluster::Cluster;
use crate::discovery;
use path::{ResourcePath, Route};
use query::Query;
use status::ApiError;

/// The largest request body accepted (the apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// What every request handler of one cluster shares.
pub struct ApiState {
    pub cluster: Arc<Cluster>,
    pub tokens: Arc<Tokens>,
}

/// The router of one cluster: every path goes through [`dispatch`].
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// A JSON response with the given status.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// 200 with a JSON document.
pub fn ok_json(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

/// Everything a resource handler needs about its request.
pub struct Ctx {
    pub state: Arc<ApiState>,
    pub user: User,
    pub path: ResourcePath,
    pub query: Query,
    pub headers: HeaderMap,
    pub method: Method,
}

impl Ctx {
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.state.cluster
    }

    /// The namespace for store access: the path's, or empty for cluster-scoped resources.
    pub fn namespace(&self) -> &str {
        self.path.namespace.as_deref().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or_default()
    }

    pub fn representation(&self) -> negotiate::Representation {
        negotiate::representation(
            self.headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        )
    }
}

async fn dispatch(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let response = route(state.clone(), req).await;
    tracing::debug!(
        cluster = %state.cluster.name,
        %method,
        %uri,
        status = response.status().as_u16(),
        elapsed = ?started.elapsed(),
        "request"
    );
    response
}

async fn route(state: Arc<ApiState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let route = path::parse(&path);
    let auth_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = state.tokens.authenticate(auth_header);
    // Like the apiserver's public-info-viewer role: health and version need no credentials,
    // but a wrong token is refused everywhere.
    let public = matches!(route, Route::Version | Route::Health(_));
    let user = match (user, auth_header.is_some(), public) {
        (Some(user), _, _) => Some(user),
        (None, false, true) => None,
        (None, _, _) => return ApiError::unauthorized().into_response(),
    };
    match route {
        Route::Version => discovery::version(),
        Route::Health(_) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
        }
        Route::NotFound => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "404 page not found\n",
        )
            .into_response(),
        Route::OpenApi if path == "/openapi/v3" || path == "/openapi/v3/" => openapi::index(),
        Route::OpenApi if path.starts_with("/openapi/v3/") => openapi::group_version(&path),
        Route::OpenApi | Route::UnknownResource => ApiError::no_such_resource().into_response(),
        Route::CoreVersions => get_only(&method, discovery::core_versions),
        Route::CoreResources => get_only(&method, || discovery::resource_list("", "v1")),
        Route::Groups => get_only(&method, discovery::group_list),
        Route::Group(g) => get_only(&method, || discovery::group(&g)),
        Route::GroupResources(g, v) => get_only(&method, || discovery::resource_list(&g, &v)),
        Route::Resource(rp) => {
            let Some(user) = user else {
                return ApiError::unauthorized().into_response();
            };
            guarded(resource_request(state, user, rp, req)).await
        }
    }
}

/// Runs a handler so that a bug in it answers 500 with a `Status` instead of dropping the
/// connection (the server itself never goes down: each connection is its own task).
async fn guarded(
    handler: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => e.into_response(),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "a request handler panicked; this is a kubesim bug");
            ApiError::internal(format!("kubesim bug: the request handler panicked: {what}"))
                .into_response()
        }
    }
}

fn get_only(method: &Method, answer: impl FnOnce() -> Response) -> Response {
    if method == Method::GET || method == Method::HEAD {
        answer()
    } else {
        ApiError::method_not_allowed().into_response()
    }
}

/// The RBAC verb of a request, as the apiserver's request-info resolver derives it.
fn verb(method: &Method, rp: &ResourcePath, query: &Query) -> Option<&'static str> {
    let streaming = matches!(
        rp.subresource.as_deref(),
        Some("exec" | "portforward" | "attach")
    );
    if streaming {
        // WebSocket upgrades come as GET but need `create`, like POST (SPDY).
        return matches!(*method, Method::GET | Method::POST).then_some("create");
    }
    let named = rp.name.is_some();
    Some(match *method {
        Method::GET | Method::HEAD if query.flag("watch") => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST if !named => "create",
        Method::PUT if named => "update",
        Method::PATCH if named => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return None,
    })
}

async fn resource_request(
    state: Arc<ApiState>,
    user: User,
    rp: ResourcePath,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let verb = verb(&method, &rp, &query).ok_or_else(ApiError::method_not_allowed)?;
    auth::authorize(
        user,
        &Attributes {
            verb,
            resource: rp.resource,
            subresource: rp.subresource.as_deref(),
            namespace: rp.namespace.as_deref(),
            name: rp.name.as_deref().unwrap_or_default(),
        },
    )?;
    let allowed = match &rp.subresource {
        Some(sub) => rp
            .resource
            .subresource(sub)
            .is_some_and(|s| s.verbs.contains(&verb)),
        None => rp.resource.allows(verb),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed());
    }
    if let Some(sub @ ("exec" | "portforward" | "attach" | "log")) = rp.subresource.as_deref() {
        let sub = sub.to_string();
        return Ok(streaming::serve(&state, &rp, &sub, req).await);
    }
    let ctx = Ctx {
        state,
        user,
        path: rp,
        query,
        headers: req.headers().clone(),
        method,
    };
    let body = read_body(req).await?;
    if crate::resources::is_review(ctx.path.resource.plural) {
        return access_review::create(&ctx, &body);
    }
    // Typed Go clients send DeleteOptions as protobuf; their grace period is then the default.
    let body = if ctx.method == Method::DELETE && is_protobuf_body(&ctx.headers) {
        Bytes::new()
    } else {
        normalize_body(&ctx.headers, body)?
    };
    match (verb, ctx.path.subresource.as_deref()) {
        ("watch", _) => watch::watch(&ctx),
        ("list", _) => read::list(&ctx),
        ("get", None) => read::get(&ctx),
        ("create", None) => write::create(&ctx, &body),
        ("update", None) => write::update(&ctx, &body),
        ("patch", None) => patch::patch(&ctx, &body),
        ("delete", None) => delete::delete(&ctx, &body),
        ("deletecollection", None) => delete::delete_collection(&ctx, &body),
        (_, Some("scale")) => scale::scale(&ctx, verb, &body),
        ("get", Some("status")) => read::get(&ctx),
        ("update", Some("status")) => write::update(&ctx, &body),
        ("patch", Some("status")) => patch::patch(&ctx, &body),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn is_protobuf_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(protobuf::is_protobuf)
}

/// Bodies of POST and PUT in YAML are turned into JSON, as the apiserver accepts both;
/// protobuf object bodies are refused with 415 (kubesim does not carry the protobuf schemas).
fn normalize_body(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/yaml" => {
            let text = std::str::from_utf8(&body)
                .map_err(|e| ApiError::bad_request(format!("the YAML body is not UTF-8: {e}")))?;
            let value: Value = serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?;
            serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(|e| ApiError::internal(e.to_string()))
        }
        m if protobuf::is_protobuf(m) && !body.is_empty() => {
            match protobuf::object_to_json(&body) {
                Some(value) => serde_json::to_vec(&value)
                    .map(Bytes::from)
                    .map_err(|e| ApiError::internal(e.to_string())),
                None => Err(ApiError {
                    code: 415,
                    reason: "UnsupportedMediaType",
                    message: format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (kubesim decodes protobuf only for Namespace, ConfigMap and Secret); got {m:?}"
                    ),
                    details: None,
                }),
            }
        }
        _ => Ok(body),
    }
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: "the request body is too large or could not be read".into(),
            details: None,
        })
}

/// An empty-bodied response with a code (used by HEAD-ish paths and tests).
pub fn empty(code: StatusCode) -> Response {
    (code, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Timing;
    use proptest::prelude::*;
    use tower::ServiceExt;

    fn state() -> (Arc<ApiState>, String) {
        let tokens = Arc::new(Tokens::generate());
        let admin = tokens.token(User::Admin).to_string();
        let cluster = Cluster::new("t", Timing::fast());
        (Arc::new(ApiState { cluster, tokens }), admin)
    }

    async fn call(
        state: &Arc<ApiState>,
        token: &str,
        method: &str,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Option<(u16, Value)> {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .ok()?;
        let resp = router(state.clone()).oneshot(req).await.ok()?;
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .ok()?;
        Some((code, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    #[tokio::test]
    async fn crud_round_trip_through_the_router() {
        let (state, admin) = state();
        let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}}"#;
        let (code, _) = call(
            &state,
            &admin,
            "POST",
            "/api/v1/namespaces",
            "application/json",
            ns.to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(code, 201);
        let pod = br#"{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
        let (code, created) = call(
            &state,
            &admin,
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            pod.to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(code, 201, "{created}");
        let (code, list) = call(
            &state,
            &admin,
            "GET",
            "/api/v1/pods?labelSelector=a%3Db",
            "",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(code, 200);
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        let (code, patched) = call(
            &state,
            &admin,
            "PATCH",
            "/api/v1/namespaces/default/pods/p",
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"x":"y"}}}"#.to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["metadata"]["labels"]["x"], "y");
        let (code, _) = call(
            &state,
            &admin,
            "PATCH",
            "/api/v1/namespaces/default/pods/p",
            "text/plain",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(code, 415);
        let (code, status) = call(&state, "wrong", "GET", "/api/v1/pods", "", vec![])
            .await
            .unwrap();
        assert_eq!(
            (code, status["reason"].as_str()),
            (401, Some("Unauthorized"))
        );
        let (code, _) = call(&state, "", "GET", "/version", "", vec![])
            .await
            .unwrap();
        assert_eq!(
            code, 401,
            "a malformed Authorization header is refused even on /version"
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("api".to_string()),
            Just("apis".to_string()),
            Just("v1".to_string()),
            Just("apps".to_string()),
            Just("namespaces".to_string()),
            Just("default".to_string()),
            Just("pods".to_string()),
            Just("deployments".to_string()),
            Just("scale".to_string()),
            Just("status".to_string()),
            Just("log".to_string()),
            Just("openapi".to_string()),
            Just("selfsubjectaccessreviews".to_string()),
            "[a-z0-9%.-]{0,8}",
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("watch=1&timeoutSeconds=1&resourceVersion=1".to_string()),
            Just("limit=1&continue=abc".to_string()),
            "labelSelector=[a-z=!(),% ]{0,12}",
            "fieldSelector=[a-z.=!,\\\\]{0,12}",
            "resourceVersion=[0-9a-z]{0,4}&resourceVersionMatch=Exact",
            "gracePeriodSeconds=[-0-9a]{0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn no_request_makes_the_server_fail(
            method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE")],
            segments in proptest::collection::vec(segment(), 0..7),
            q in query(),
            content_type in prop_oneof![
                Just("application/json"),
                Just("application/merge-patch+json"),
                Just("application/strategic-merge-patch+json"),
                Just("application/json-patch+json"),
                Just("application/apply-patch+yaml"),
                Just("application/yaml"),
                Just("application/vnd.kubernetes.protobuf"),
            ],
            body in prop_oneof![
                Just(Vec::new()),
                Just(br#"{"metadata":{"name":"x"},"spec":{"replicas":2}}"#.to_vec()),
                Just(br#"[{"op":"replace","path":"","value":1}]"#.to_vec()),
                Just(b"null".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (state, admin) = state();
            let uri = format!("/{}?{q}", segments.join("/"));
            // The URI builder may reject a generated path; only what reaches the server counts.
            if let Some((code, doc)) = rt.block_on(call(&state, &admin, method, &uri, content_type, body)) {
                prop_assert!(code < 500 || code == 501 || code == 504, "{method} {uri} -> {code} {doc}");
            }
        }
    }
}
