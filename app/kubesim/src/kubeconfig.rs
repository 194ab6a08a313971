//! The kubeconfig kubesim writes so that `kubectl`, kube-rs and Ferry reach its clusters like
//! any other: one cluster entry per simulated cluster (server URL, embedded CA), one user per
//! simulated user (bearer token), and the contexts `demo`, `demo-restricted`, `demo-viewer`,
//! `staging`. The file holds tokens, so it is written atomically with mode 0600.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};

use crate::auth::{Tokens, User};

/// One cluster as the kubeconfig names it.
#[derive(Debug, Clone)]
pub struct ClusterEntry {
    pub name: String,
    /// `https://127.0.0.1:PORT` (or `http://` with plain HTTP).
    pub server: String,
    /// PEM of the CA, absent with plain HTTP.
    pub ca_pem: Option<String>,
}

/// The context name of `user` on `cluster` (`demo`, `demo-restricted`, `demo-viewer`).
pub fn context_name(cluster: &str, user: User) -> String {
    match user {
        User::Admin => cluster.to_string(),
        other => format!("{cluster}-{}", other.name()),
    }
}

/// The kubeconfig as a JSON value (YAML is a superset; [`write`] emits YAML).
/// The first cluster is the primary one: it gets a context per user and is current.
pub fn render(clusters: &[ClusterEntry], tokens: &Tokens) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let cluster_entries: Vec<Value> = clusters
        .iter()
        .map(|c| {
            let mut cluster = json!({"server": c.server});
            if let Some(ca) = &c.ca_pem {
                cluster["certificate-authority-data"] = json!(b64.encode(ca));
            }
            json!({"name": c.name, "cluster": cluster})
        })
        .collect();
    let users: Vec<Value> = User::ALL
        .iter()
        .map(|u| json!({"name": u.name(), "user": {"token": tokens.token(*u)}}))
        .collect();
    let mut contexts = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        let users: &[User] = if i == 0 { &User::ALL } else { &[User::Admin] };
        for u in users {
            contexts.push(json!({
                "name": context_name(&c.name, *u),
                "context": {"cluster": c.name, "user": u.name(), "namespace": "default"},
            }));
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": cluster_entries,
        "users": users,
        "contexts": contexts,
        "current-context": clusters.first().map(|c| c.name.clone()).unwrap_or_default(),
    })
}

/// Why the kubeconfig could not be written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("could not write the kubeconfig {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("could not render the kubeconfig as YAML: {0}")]
    Yaml(String),
}

/// Writes `config` as YAML to `path`, atomically (temp file + rename) and with mode 0600.
pub fn write(path: &Path, config: &Value) -> Result<(), KubeconfigError> {
    let io_err = |source| KubeconfigError::Io {
        path: path.display().to_string(),
        source,
    };
    let yaml = serde_saphyr::to_string(config).map_err(|e| KubeconfigError::Yaml(e.to_string()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io_err)?;
    // NamedTempFile is created with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err)?;
    tmp.write_all(yaml.as_bytes()).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_cluster_gets_three_contexts_and_is_current() {
        let tokens = Tokens::generate();
        let clusters = vec![
            ClusterEntry {
                name: "demo".into(),
                server: "https://127.0.0.1:1".into(),
                ca_pem: Some("PEM".into()),
            },
            ClusterEntry {
                name: "staging".into(),
                server: "https://127.0.0.1:2".into(),
                ca_pem: None,
            },
        ];
        let cfg = render(&clusters, &tokens);
        let names: Vec<&str> = cfg["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["demo", "demo-restricted", "demo-viewer", "staging"]);
        assert_eq!(cfg["current-context"], "demo");
        assert_eq!(
            cfg["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
    }

    #[cfg(unix)]
    #[test]
    fn written_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        write(&path, &json!({"a": 1})).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&path).unwrap().contains("a: 1"));
    }
}
