//! Worlds: sets of ordinary Kubernetes manifests (multi-document YAML, as `kubectl apply -f`
//! takes them) that a kubesim cluster starts with. The built-in `demo` world ships in the repo
//! (`app/kubesim/worlds/`); `kubesim serve --world PATH...` loads others, where `PATH` is a
//! file or a directory of `.yaml`/`.yml`/`.json` files and `CLUSTER=PATH` puts the manifests in
//! another cluster than the primary one.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The primary cluster (kubeconfig contexts `demo`, `demo-restricted`, `demo-viewer`).
pub const PRIMARY_CLUSTER: &str = "demo";
/// The second cluster every world has, served by the same process.
pub const SECOND_CLUSTER: &str = "staging";
/// The clusters every world has, primary first.
pub const CLUSTER_NAMES: [&str; 2] = [PRIMARY_CLUSTER, SECOND_CLUSTER];

/// The demo world's files, per cluster, embedded so `ferry --demo` needs nothing on disk.
const DEMO_FILES: &[(&str, &str, &str)] = &[
    (
        PRIMARY_CLUSTER,
        "worlds/demo/kubia.yaml",
        include_str!("../../worlds/demo/kubia.yaml"),
    ),
    (
        PRIMARY_CLUSTER,
        "worlds/demo/extras.yaml",
        include_str!("../../worlds/demo/extras.yaml"),
    ),
    (
        PRIMARY_CLUSTER,
        "worlds/demo/shop.yaml",
        include_str!("../../worlds/demo/shop.yaml"),
    ),
    (
        SECOND_CLUSTER,
        "worlds/staging/backend.yaml",
        include_str!("../../worlds/staging/backend.yaml"),
    ),
];

/// Why a world could not be loaded: which file, which document, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A file or directory could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One document of a file is not a manifest kubesim can use (1-based document number).
    #[error("{path}, document {document}: {reason}")]
    Document {
        path: String,
        document: usize,
        reason: String,
    },
    /// A manifest was refused when seeding a cluster (`index` in the list given to
    /// [`crate::sim::start`]).
    #[error("manifest {index}: {reason}")]
    Rejected { index: usize, reason: String },
    /// Anything else (a bad `CLUSTER=PATH` argument, an empty directory).
    #[error("{0}")]
    Invalid(String),
}

/// The manifests of every cluster of a world.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// (cluster name, manifests) in the order the kubeconfig lists them; the first is the
    /// primary cluster.
    pub clusters: Vec<(String, Vec<Value>)>,
}

/// Where a manifest came from, for error messages.
#[derive(Debug, Clone)]
struct Origin {
    path: String,
    document: usize,
}

impl World {
    /// The built-in demo world: the kubia example and a shop in `demo`, a small backend in
    /// `staging`.
    pub fn demo() -> World {
        Self::try_demo().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the built-in demo world is broken; starting empty clusters");
            Self::with_clusters(Vec::new())
        })
    }

    /// Like [`World::demo`], but reporting a broken built-in world (tests use this).
    pub fn try_demo() -> Result<World, WorldError> {
        let mut loaded = Vec::new();
        for (cluster, path, text) in DEMO_FILES {
            for (manifest, origin) in parse_text(path, text)? {
                loaded.push((cluster.to_string(), manifest, origin));
            }
        }
        finish(loaded)
    }

    /// Loads manifests from files and directories; `CLUSTER=PATH` puts them in cluster
    /// `CLUSTER` (which is created if it is not one of [`CLUSTER_NAMES`]). Every manifest is
    /// checked the way a cluster would admit it, and errors name the file and document.
    pub fn load(paths: &[PathBuf]) -> Result<World, WorldError> {
        let mut loaded = Vec::new();
        for arg in paths {
            let (cluster, path) = split_cluster(arg)?;
            for file in files(&path)? {
                let text = std::fs::read_to_string(&file).map_err(|source| WorldError::Read {
                    path: file.clone(),
                    source,
                })?;
                for (manifest, origin) in parse_text(&file.display().to_string(), &text)? {
                    loaded.push((cluster.clone(), manifest, origin));
                }
            }
        }
        finish(loaded)
    }

    /// The manifests of one cluster (empty for a cluster the world does not have).
    pub fn manifests(&self, cluster: &str) -> &[Value] {
        self.clusters
            .iter()
            .find(|(name, _)| name == cluster)
            .map(|(_, m)| m.as_slice())
            .unwrap_or_default()
    }

    fn with_clusters(mut extra: Vec<(String, Vec<Value>)>) -> World {
        let mut clusters: Vec<(String, Vec<Value>)> = CLUSTER_NAMES
            .iter()
            .map(|c| (c.to_string(), Vec::new()))
            .collect();
        for (name, manifests) in extra.drain(..) {
            match clusters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, m)) => m.extend(manifests),
                None => clusters.push((name, manifests)),
            }
        }
        World { clusters }
    }
}

/// Groups manifests by cluster and dry-runs each cluster's admission so that a manifest a
/// cluster would refuse is reported with its file and document now.
fn finish(loaded: Vec<(String, Value, Origin)>) -> Result<World, WorldError> {
    let mut per_cluster: Vec<(String, Vec<Value>, Vec<Origin>)> = Vec::new();
    for (cluster, manifest, origin) in loaded {
        match per_cluster.iter_mut().find(|(c, _, _)| *c == cluster) {
            Some((_, m, o)) => {
                m.push(manifest);
                o.push(origin);
            }
            None => per_cluster.push((cluster, vec![manifest], vec![origin])),
        }
    }
    for (cluster, manifests, origins) in &per_cluster {
        let scratch = crate::cluster::Cluster::new(cluster.clone(), crate::cluster::Timing::fast());
        if let Err(e) = crate::sim::seed_only(&scratch, manifests.clone()) {
            return Err(match e {
                WorldError::Rejected { index, reason } => match origins.get(index) {
                    Some(o) => WorldError::Document {
                        path: o.path.clone(),
                        document: o.document,
                        reason,
                    },
                    None => WorldError::Rejected { index, reason },
                },
                other => other,
            });
        }
    }
    Ok(World::with_clusters(
        per_cluster.into_iter().map(|(c, m, _)| (c, m)).collect(),
    ))
}

/// `CLUSTER=PATH` → (CLUSTER, PATH); a plain path goes to the primary cluster.
fn split_cluster(arg: &Path) -> Result<(String, PathBuf), WorldError> {
    let text = arg.to_string_lossy();
    if let Some((cluster, path)) = text.split_once('=')
        && !cluster.contains('/')
    {
        if !crate::sim::is_dns_label(cluster) {
            return Err(WorldError::Invalid(format!(
                "\"{text}\": \"{cluster}\" is not a valid cluster name (lowercase letters, digits and '-'); use CLUSTER=PATH or just PATH"
            )));
        }
        return Ok((cluster.to_string(), PathBuf::from(path)));
    }
    Ok((PRIMARY_CLUSTER.to_string(), arg.to_path_buf()))
}

/// The manifest files at `path`: the file itself, or a directory's `.yaml`, `.yml` and `.json`
/// files in name order (not recursive, like `kubectl apply -f DIR`).
fn files(path: &Path) -> Result<Vec<PathBuf>, WorldError> {
    let read_err = |source| WorldError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(WorldError::Invalid(format!(
            "{}: the directory has no .yaml, .yml or .json files",
            path.display()
        )));
    }
    Ok(found)
}

/// Splits a file into its YAML documents and parses each into manifests (a `kind: List`
/// yields its items). Documents are numbered from 1, empty ones not counted.
fn parse_text(path: &str, text: &str) -> Result<Vec<(Value, Origin)>, WorldError> {
    let mut out = Vec::new();
    let mut document = 0;
    for (first_line, body) in split_documents(text) {
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        document += 1;
        let origin = Origin {
            path: path.to_string(),
            document,
        };
        let fail = |reason: String| WorldError::Document {
            path: path.to_string(),
            document,
            reason,
        };
        let value: Value = serde_saphyr::from_str(&body).map_err(|e| {
            fail(format!(
                "not valid YAML (document starts at line {first_line}): {e}"
            ))
        })?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(Value::as_str) {
            Some("List") => value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            _ => vec![value],
        };
        for item in items {
            check_manifest(&item).map_err(fail)?;
            out.push((item, origin.clone()));
        }
    }
    Ok(out)
}

/// The documents of a multi-document YAML text, each with its first line number (1-based).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let is_separator = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_separator {
            docs.push((i + 2, String::new()));
        } else if line != "..."
            && let Some((_, body)) = docs.last_mut()
        {
            body.push_str(line);
            body.push('\n');
        }
    }
    docs
}

/// A manifest needs `apiVersion`, `kind` kubesim simulates, and a name.
fn check_manifest(item: &Value) -> Result<(), String> {
    if !item.is_object() {
        return Err("a manifest must be a mapping with apiVersion, kind and metadata".into());
    }
    let api_version = item
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("missing apiVersion")?;
    let kind = item
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("missing kind")?;
    if crate::sim::kind_resource(api_version, kind).is_none() {
        return Err(format!(
            "kind {kind} ({api_version}) is not simulated; kubesim knows Namespace, Node, Pod, Service, Endpoints, EndpointSlice (discovery.k8s.io/v1), Deployment, ReplicaSet (apps/v1) and Ingress (networking.k8s.io/v1)"
        ));
    }
    let named = ["/metadata/name", "/metadata/generateName"]
        .iter()
        .any(|p| {
            item.pointer(p)
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        });
    if !named {
        return Err(format!("{kind} has no metadata.name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
