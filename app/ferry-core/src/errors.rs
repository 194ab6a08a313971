//! Errors from talking to clusters, worded so a person knows what went wrong, where, and what to
//! do next. Every layer that calls the API server (catalog, tunnels, exec) turns `kube::Error`
//! into a [`ClusterError`] with [`ClusterError::from_kube`], naming what it was trying to do
//! ([`Access`]) so that a 403 can say which permission is missing.
//!
//! All errors here are `Clone` and hold only text, so they can travel inside UI snapshots and
//! status events. None of them ever contains a token or other secret.

use std::fmt;
use std::path::PathBuf;

use crate::kubeconfig::KubeconfigError;

/// What Ferry was trying to do when a request failed, in RBAC terms. It turns a bare
/// "403 Forbidden" into "may not create pods/portforward in namespace shop".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// RBAC verb: `get`, `list`, `watch`, `create`…
    pub verb: String,
    /// RBAC resource, with subresource if any: `pods`, `pods/portforward`, `pods/exec`.
    pub resource: String,
    /// `None` for cluster-scoped resources (nodes, namespaces).
    pub namespace: Option<String>,
    /// The object's name, when the request was about one object (used by "not found").
    pub name: Option<String>,
}

impl Access {
    /// Any verb on any resource; `namespace: None` means cluster-wide.
    pub fn new(verb: &str, resource: &str, namespace: Option<&str>) -> Self {
        Access {
            verb: verb.to_string(),
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }

    /// The same access, about one named object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Opening a port-forward stream to a pod (what every tunnel connection needs).
    pub fn port_forward(namespace: &str, pod: &str) -> Self {
        Access::new("create", "pods/portforward", Some(namespace)).named(pod)
    }

    /// Opening an exec session in a pod.
    pub fn exec(namespace: &str, pod: &str) -> Self {
        Access::new("create", "pods/exec", Some(namespace)).named(pod)
    }

    /// Listing and watching a resource, as the catalog and tunnel supervisors do.
    pub fn watch(resource: &str, namespace: Option<&str>) -> Self {
        Access::new("watch", resource, namespace)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => f.write_str(" (cluster-wide)"),
        }
    }
}

/// Why Ferry cannot use a cluster (context) right now.
///
/// [`ClusterError::is_transient`] tells a supervisor whether retrying can help (server down)
/// or a person must act first (bad kubeconfig, missing permission, missing plugin).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig files could not be read or merged.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),

    /// A context name that is in no kubeconfig file (and no in-app cluster).
    #[error(
        "there is no context named \"{name}\"; known contexts: {}",
        list_or_none(known)
    )]
    UnknownContext { name: String, known: Vec<String> },

    /// The context exists but cannot be turned into a client (missing cluster entry, bad
    /// server URL, unreadable certificate file…).
    #[error("context \"{context}\" cannot be used: {reason}")]
    BadContext { context: String, reason: String },

    /// The context signs in with an exec credential plugin whose binary is nowhere to be found.
    #[error(
        "context \"{context}\" signs in with the credential plugin \"{command}\", but it was not found; looked in: {}{}",
        list_paths(searched),
        hint.as_deref().map(|h| format!(". Install hint from the kubeconfig: {h}")).unwrap_or_default()
    )]
    ExecPluginNotFound {
        context: String,
        command: String,
        searched: Vec<PathBuf>,
        hint: Option<String>,
    },

    /// The exec credential plugin ran but did not give credentials.
    #[error("context \"{context}\": the credential plugin \"{command}\" failed: {reason}")]
    ExecPluginFailed {
        context: String,
        command: String,
        reason: String,
    },

    /// No connection to the API server (refused, DNS, TLS, timeout).
    #[error(
        "cannot reach the API server of context \"{context}\" at {url}: {reason}. Is the cluster running and reachable (VPN, proxy)?"
    )]
    Unreachable {
        context: String,
        url: String,
        reason: String,
    },

    /// The API server did not accept the credentials (401).
    #[error(
        "the API server of context \"{context}\" at {url} rejected the credentials (401 Unauthorized): {message}. Log in again or refresh the credentials of this context"
    )]
    Unauthorized {
        context: String,
        url: String,
        message: String,
    },

    /// RBAC said no (403). `access` names the missing permission.
    #[error(
        "forbidden: the user of context \"{context}\" may not {access}. Ask a cluster admin for that permission or use another context (server said: {message})"
    )]
    Forbidden {
        context: String,
        access: Box<Access>,
        message: String,
    },

    /// The object is gone or never existed (404).
    #[error(
        "{} not found{} (context \"{context}\")",
        what_of(access),
        ns_of(access)
    )]
    NotFound {
        context: String,
        access: Box<Access>,
    },

    /// Any other answer from the API server.
    #[error("the API server of context \"{context}\" answered {code} to \"{access}\": {message}")]
    Api {
        context: String,
        access: Box<Access>,
        code: u16,
        message: String,
    },

    /// Something else went wrong on the way (protocol errors, bad responses).
    #[error("context \"{context}\": {reason}")]
    Other { context: String, reason: String },
}

impl ClusterError {
    /// Turns a kube-rs error into words, naming the context, the server URL (for connection
    /// problems) and what was attempted (for 403/404).
    pub fn from_kube(context: &str, url: &str, access: &Access, err: &kube::Error) -> Self {
        let context = context.to_string();
        match err {
            kube::Error::Api(status) => {
                from_status(context, url, access, status.code, &status.message)
            }
            kube::Error::HyperError(e) => ClusterError::Unreachable {
                context,
                url: url.to_string(),
                reason: error_chain(e),
            },
            kube::Error::Service(e) => ClusterError::Unreachable {
                context,
                url: url.to_string(),
                reason: error_chain(e.as_ref()),
            },
            kube::Error::RustlsTls(e) => ClusterError::Unreachable {
                context,
                url: url.to_string(),
                reason: format!("TLS: {}", error_chain(e)),
            },
            // Refreshing credentials failed mid-session (token file, exec plugin, OIDC); it
            // may work on the next attempt, so it is not a hard failure.
            kube::Error::Auth(e) => ClusterError::Other {
                context,
                reason: format!("signing in failed: {}", error_chain(e)),
            },
            kube::Error::UpgradeConnection(e) => upgrade_error(context, url, access, e),
            other => ClusterError::Other {
                context,
                reason: error_chain(other),
            },
        }
    }

    /// Like [`ClusterError::from_kube`] for errors from `kube::runtime::watcher` streams.
    pub fn from_watcher(
        context: &str,
        url: &str,
        access: &Access,
        err: &kube::runtime::watcher::Error,
    ) -> Self {
        use kube::runtime::watcher::Error as W;
        match err {
            W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
                ClusterError::from_kube(context, url, access, e)
            }
            W::WatchError(status) => from_status(
                context.to_string(),
                url,
                access,
                status.code,
                &status.message,
            ),
            W::NoResourceVersion => ClusterError::Other {
                context: context.to_string(),
                reason: format!(
                    "the API server cannot watch {} (no resourceVersion)",
                    access.resource
                ),
            },
        }
    }

    /// True when retrying later may succeed without anyone changing anything (server down,
    /// timeouts, 5xx, 429). False when a person must act: fix the kubeconfig, install a
    /// plugin, grant a permission, log in again.
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterError::Unreachable { .. } | ClusterError::Other { .. } => true,
            ClusterError::Api { code, .. } => *code >= 500 || *code == 429 || *code == 410,
            _ => false,
        }
    }

    /// True for a 403, so callers can fall back (the catalog then lets the user type a
    /// namespace instead of listing them).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ClusterError::Forbidden { .. })
    }
}

fn from_status(
    context: String,
    url: &str,
    access: &Access,
    code: u16,
    message: &str,
) -> ClusterError {
    match code {
        401 => ClusterError::Unauthorized {
            context,
            url: url.to_string(),
            message: message.to_string(),
        },
        403 => ClusterError::Forbidden {
            context,
            access: Box::new(access.clone()),
            message: message.to_string(),
        },
        404 => ClusterError::NotFound {
            context,
            access: Box::new(access.clone()),
        },
        _ => ClusterError::Api {
            context,
            access: Box::new(access.clone()),
            code,
            message: message.to_string(),
        },
    }
}

/// A failed WebSocket upgrade (port-forward, exec) carries the HTTP status of the refusal.
fn upgrade_error(
    context: String,
    url: &str,
    access: &Access,
    err: &kube::client::UpgradeConnectionError,
) -> ClusterError {
    use kube::client::UpgradeConnectionError as U;
    match err {
        U::ProtocolSwitch(status) => {
            from_status(context, url, access, status.as_u16(), &error_chain(err))
        }
        other => ClusterError::Other {
            context,
            reason: error_chain(other),
        },
    }
}

/// `err: cause: cause`, so the root cause (e.g. "Connection refused") is always shown. A
/// credential-plugin error anywhere in the chain is worded by
/// [`crate::exec_auth::describe_failure`] instead, since kube-rs's own text for it quotes
/// the plugin's output (the token) and environment.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    if let Some(auth) = crate::exec_auth::auth_error_in(err) {
        return format!(
            "credential plugin: {}",
            crate::exec_auth::describe_failure(auth)
        );
    }
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere (no PATH)".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn what_of(access: &Access) -> String {
    match &access.name {
        Some(name) => format!(
            "{} \"{name}\"",
            access.resource.split('/').next().unwrap_or("object")
        ),
        None => access.resource.clone(),
    }
}

fn ns_of(access: &Access) -> String {
    access
        .namespace
        .as_ref()
        .map(|ns| format!(" in namespace {ns}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "Forbidden"
        }))
        .expect("valid status");
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn forbidden_port_forward_names_the_missing_permission() {
        let err = ClusterError::from_kube(
            "demo-viewer",
            "https://127.0.0.1:6443",
            &Access::port_forward("shop", "web-1"),
            &api_error(403, "pods \"web-1\" is forbidden"),
        );
        assert_eq!(
            err.to_string(),
            "forbidden: the user of context \"demo-viewer\" may not create pods/portforward in namespace shop. Ask a cluster admin for that permission or use another context (server said: pods \"web-1\" is forbidden)"
        );
        assert!(err.is_forbidden() && !err.is_transient());
    }

    #[test]
    fn refused_websocket_upgrade_is_classified_by_its_status() {
        let refused = kube::Error::UpgradeConnection(
            kube::client::UpgradeConnectionError::ProtocolSwitch(http::StatusCode::FORBIDDEN),
        );
        let err = ClusterError::from_kube(
            "demo-viewer",
            "https://x",
            &Access::exec("default", "fortune"),
            &refused,
        );
        assert!(
            err.to_string()
                .contains("may not create pods/exec in namespace default"),
            "{err}"
        );
    }

    #[test]
    fn cluster_scoped_access_reads_cluster_wide() {
        assert_eq!(
            Access::watch("nodes", None).to_string(),
            "watch nodes (cluster-wide)"
        );
    }

    #[test]
    fn not_found_names_the_object() {
        let err = ClusterError::from_kube(
            "demo",
            "https://x",
            &Access::new("get", "services", Some("shop")).named("kubia"),
            &api_error(404, "services \"kubia\" not found"),
        );
        assert_eq!(
            err.to_string(),
            "services \"kubia\" not found in namespace shop (context \"demo\")"
        );
    }

    #[test]
    fn expired_credentials_say_to_log_in_again() {
        let err = ClusterError::from_kube(
            "prod",
            "https://prod:6443",
            &Access::watch("pods", None),
            &api_error(401, "Unauthorized"),
        );
        let text = err.to_string();
        assert!(
            text.contains("https://prod:6443") && text.contains("Log in again"),
            "{text}"
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        let access = Access::watch("pods", Some("a"));
        for (code, transient) in [
            (500, true),
            (503, true),
            (429, true),
            (422, false),
            (400, false),
        ] {
            let err = ClusterError::from_kube("c", "u", &access, &api_error(code, "x"));
            assert_eq!(err.is_transient(), transient, "{code}");
        }
    }

    #[test]
    fn missing_plugin_lists_where_it_looked() {
        let err = ClusterError::ExecPluginNotFound {
            context: "gke".into(),
            command: "gke-gcloud-auth-plugin".into(),
            searched: vec![
                PathBuf::from("/usr/bin"),
                PathBuf::from("/opt/homebrew/bin"),
            ],
            hint: None,
        };
        assert_eq!(
            err.to_string(),
            "context \"gke\" signs in with the credential plugin \"gke-gcloud-auth-plugin\", but it was not found; looked in: /usr/bin, /opt/homebrew/bin"
        );
    }
}
