//! `ferry --demo`: a simulated cluster (kubesim with the built-in demo world) started inside
//! this process, with a temporary kubeconfig pointing at it, so Ferry can be tried without a
//! cluster. Exec in the demo runs commands as local processes on this computer: the UI says so
//! wherever a shell is offered.

/// The note shown wherever the demo offers a shell.
pub const EXEC_NOTE: &str = "Demo cluster: a shell or exec here runs as a local process on this computer, not in a container.";
