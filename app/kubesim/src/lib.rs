//! kubesim is a simulated Kubernetes API server. It speaks the real wire protocol (REST,
//! watch, discovery, Table output, and later pods/portforward and pods/exec) so that the real
//! `kubectl` and kube-rs cannot tell it from a cluster, while everything behind the API —
//! pods, deployments, endpoints — is simulated in memory. Ferry's tests, its benchmarks and
//! `ferry --demo` all run on it.
//!
//! Layers, from the bottom: [`store`] (objects, versions, watch history), [`cluster`] (one
//! simulated cluster's shared state), the simulation controllers, the REST API, and the server
//! that owns the sockets.

pub mod cluster;
pub mod sim;
pub mod store;
pub mod world;
