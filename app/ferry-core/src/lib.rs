//! ferry-core is Ferry's engine, with no UI: it reads kubeconfigs, keeps one client per context,
//! resolves targets to Ready pods, runs port-forward tunnels that survive pod restarts, runs exec
//! sessions, and stores profiles (secrets in the OS keyring). The GUI, the CLI and the control
//! socket all drive the same engine handle and read the same plain serde snapshots.

pub mod catalog;
pub mod clients;
pub mod config_dir;
pub mod engine;
pub mod errors;
pub mod exec;
pub mod exec_auth;
pub mod http_stack;
pub mod instance;
pub mod kubeconfig;
pub mod profiles;
pub mod resolve;
pub mod secrets;
pub mod settings;
pub mod spec;
pub mod tunnel;
pub mod validate;

pub use catalog::{Catalog, CatalogView, ConnectionState};
pub use clients::ClientPool;
pub use errors::{Access, ClusterError};
pub use kubeconfig::{ContextInfo, KubeconfigError, KubeconfigNote};
pub use resolve::ResolveError;
