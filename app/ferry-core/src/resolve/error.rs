//! Why a target or port could not be resolved, in words that say what exists instead.

/// Why a target, selector or port spec does not lead to a pod port. Plain text, `Clone`, so it
/// can sit in a tunnel's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A named remote port that none of the pod's containers declares.
    #[error(
        "pod \"{pod}\" has no container port named \"{name}\"; {}",
        names_that_exist(available)
    )]
    PodPortNameNotFound {
        pod: String,
        name: String,
        available: Vec<String>,
    },
    /// A named remote port that the service does not declare.
    #[error(
        "service \"{service}\" has no port named \"{name}\"; {}",
        names_that_exist(available)
    )]
    ServicePortNameNotFound {
        service: String,
        name: String,
        available: Vec<String>,
    },
    /// A numeric remote port that is not one of the service's ports.
    #[error(
        "service \"{service}\" has no port {port}; its ports are: {}",
        list_or_none(available)
    )]
    ServicePortNotFound {
        service: String,
        port: u16,
        available: Vec<String>,
    },
    /// The port is UDP only; port-forwarding carries TCP only.
    #[error("{what} port {port} is UDP only, and port-forwarding supports TCP only")]
    UdpOnly { what: String, port: String },
    /// A service without a selector has no pods of its own to forward to.
    #[error(
        "service \"{service}\" has no selector, so it does not point at pods chosen by labels: its traffic goes to manually managed Endpoints, often outside the cluster. Kubernetes cannot port-forward to those; forward to a pod or deployment instead"
    )]
    ServiceWithoutSelector { service: String },
    /// A deployment whose selector is empty or invalid.
    #[error("deployment \"{deployment}\" has no usable selector: {reason}")]
    DeploymentSelector { deployment: String, reason: String },
    /// A label selector that could not be parsed.
    #[error("invalid label selector \"{selector}\": {reason}")]
    BadSelector { selector: String, reason: String },
    /// A service or deployment target was resolved without its object.
    #[error("{target} must be looked up in the cluster before its pods can be chosen")]
    ObjectNeeded { target: String },
    /// A pod that is not in the Running phase (port-forwarding needs running containers).
    #[error("pod \"{pod}\" is not running (phase {phase}); port-forwarding needs a running pod")]
    PodNotRunning { pod: String, phase: String },
}

fn names_that_exist(names: &[String]) -> String {
    if names.is_empty() {
        "it declares no named ports".to_string()
    } else {
        format!("names that exist: {}", names.join(", "))
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
