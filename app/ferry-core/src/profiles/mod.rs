//! Saved tunnel sets ("profiles") and clusters added inside Ferry: the data model, the on-disk
//! store (TOML, atomic, locked, versioned), and import/export.

mod atomic;
mod comments;
mod document;
mod export;
pub mod import;
mod in_app;
mod migrate;
mod model;
mod store;

pub use atomic::{resolve_links, write_atomic, write_new_atomic};
pub use document::{Parsed, Problem, parse as parse_document, parse_bytes as parse_document_bytes};
pub use export::{ExportError, export_profiles, write_export};
pub use in_app::InAppClusters;
pub use model::{CURRENT_VERSION, Cluster, Document, Profile, SavedTunnel, SecretRef};
pub use store::{FILE_NAME, ImportOutcome, OnConflict, ProfileStore, StoreError, TokenChange};

#[cfg(test)]
mod tests;
