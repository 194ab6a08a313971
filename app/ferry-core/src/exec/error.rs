//! Why an exec session could not start or did not finish, in words a person can act on.

use crate::errors::ClusterError;

/// Why an exec session failed. `Clone` and text only, so it can travel in UI snapshots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Getting a client or talking to the API server failed: unreachable, 401, 403 (naming
    /// `create pods/exec in namespace X`), unknown context…
    #[error(transparent)]
    Cluster(#[from] ClusterError),

    #[error("pod {pod} was not found in namespace {namespace}")]
    PodNotFound { namespace: String, pod: String },

    /// Pending, terminating, or finished (Succeeded/Failed).
    #[error("pod {pod} is not running ({state}), so there is nothing to exec into")]
    PodNotRunning { pod: String, state: String },

    #[error(transparent)]
    Container(#[from] super::container::ChoiceError),

    #[error(
        "container {container} of pod {pod} is not running ({state}); running containers: {running}"
    )]
    ContainerNotRunning {
        pod: String,
        container: String,
        state: String,
        running: String,
    },

    /// The program does not exist in the container (the runtime's "executable file not
    /// found" / "no such file or directory").
    #[error("{program} was not found in container {container} of pod {pod}: {message}")]
    ExecutableNotFound {
        pod: String,
        container: String,
        program: String,
        message: String,
    },

    #[error("no shell was found in container {container} of pod {pod} (tried {tried})")]
    NoShell {
        pod: String,
        container: String,
        tried: String,
    },

    /// The API server or kubelet refused to run the command (any other failure `Status`).
    #[error(
        "the cluster could not run the command in container {container} of pod {pod}: {message}"
    )]
    Refused {
        pod: String,
        container: String,
        message: String,
    },

    #[error("the session ended because pod {pod} was deleted")]
    PodDeleted { pod: String },

    #[error("the connection to pod {pod} was lost before the command finished: {reason}")]
    Lost { pod: String, reason: String },

    #[error("invalid exec request: {0}")]
    Invalid(String),
}
