//! Bringing tunnel sets in from elsewhere: Ferry files (a teammate's export), kftray JSON
//! exports, and pasted `kubectl port-forward …` command lines. Each importer maps what Ferry
//! supports and lists what it skipped and why, so nothing disappears without a word.

mod ferry;
mod kftray;
mod kubectl;

use std::fmt;

pub use ferry::import_ferry;
pub use kftray::import_kftray;
pub use kubectl::import_kubectl;

use super::document::Problem;
use super::model::Profile;

/// The kinds of file `ferry profile import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Ferry profile file (TOML).
    Ferry,
    /// A kftray JSON export.
    Kftray,
    /// `kubectl port-forward …` command lines.
    Kubectl,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Ferry => "a Ferry profile file",
            Format::Kftray => "a kftray export",
            Format::Kubectl => "kubectl port-forward lines",
        })
    }
}

/// Which importer fits `text`, from its shape alone: JSON objects (`{…}` or `[{…}]`) are a
/// kftray export, lines that start with `kubectl` (after an optional `$ ` prompt) are
/// commands, anything else is taken as a Ferry file (whose parser then says what is wrong).
/// A TOML file never starts like JSON: its tables open with `[name]` or `[[name]]`.
pub fn detect(text: &str) -> Format {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('{') {
        return Format::Kftray;
    }
    if let Some(rest) = body.strip_prefix('[')
        && rest.trim_start().starts_with(['{', ']'])
    {
        return Format::Kftray;
    }
    let first_line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    match first_line {
        Some(line) if line.trim_start_matches("$ ").starts_with("kubectl ") => Format::Kubectl,
        _ => Format::Ferry,
    }
}

/// What an importer produced: profiles ready for
/// [`ProfileStore::import_profiles`](super::ProfileStore::import_profiles), and what it left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub profiles: Vec<Profile>,
    pub skipped: Vec<Skipped>,
}

/// One entry (or one field of an entry) that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Which entry: `entry 3 ("dns")`, `line 2`.
    pub entry: String,
    /// The field that was ignored; `None` when the whole entry was skipped.
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            None => write!(f, "{} skipped: {}", self.entry, self.reason),
            Some(field) => write!(f, "{}: `{field}` ignored: {}", self.entry, self.reason),
        }
    }
}

/// Why a file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a Ferry profile file: {0}")]
    Ferry(Problem),
    #[error("not a kftray export (a JSON list of configs): {0}")]
    KftrayJson(String),
    #[error("nothing to import: {0}")]
    Empty(String),
}

/// What an imported tunnel gets when its source does not say: the kubeconfig's current context
/// and namespace, as kubectl would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDefaults {
    pub context: String,
    pub namespace: String,
}

impl ImportDefaults {
    /// Reads the current context (and its namespace) from the kubeconfig (`$KUBECONFIG` or
    /// `~/.kube/config`); falls back to context "default", namespace "default".
    pub fn from_kubeconfig() -> Self {
        let fallback = ImportDefaults {
            context: "default".into(),
            namespace: "default".into(),
        };
        let Ok(config) = kube::config::Kubeconfig::read() else {
            return fallback;
        };
        let Some(current) = config.current_context.clone() else {
            return fallback;
        };
        let namespace = config
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .unwrap_or_else(|| "default".into());
        ImportDefaults {
            context: current,
            namespace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_told_by_the_shape_of_the_text() {
        for (text, format) in [
            ("[{\"alias\": \"a\"}]", Format::Kftray),
            ("\u{feff}  [\n  {\"alias\": \"a\"}\n]", Format::Kftray),
            ("{\"alias\": \"a\"}", Format::Kftray),
            ("[]", Format::Kftray),
            ("[{broken", Format::Kftray),
            ("version = 1\n[[profile]]\nname = \"a\"\n", Format::Ferry),
            ("[[profile]]\nname = \"a\"\n", Format::Ferry),
            ("[profile]\n", Format::Ferry),
            (
                "# mine\n\n$ kubectl port-forward svc/a 80\n",
                Format::Kubectl,
            ),
            ("kubectl -n x port-forward pod/a 80\n", Format::Kubectl),
            ("", Format::Ferry),
        ] {
            assert_eq!(detect(text), format, "{text:?}");
        }
    }

    /// Found by the `kftray_import` fuzz target: a service name with `!` was imported as
    /// `Target::Service`, written as `svc/a!b`, and read back as a label selector.
    #[test]
    fn a_kftray_name_the_api_server_would_refuse_skips_the_entry() {
        let defaults = ImportDefaults {
            context: "c".into(),
            namespace: "n".into(),
        };
        let json = r#"[
            {"alias": "ok", "service": "web", "remote_port": 80},
            {"alias": "bang", "service": "arg!!ocd-server", "remote_port": 80},
            {"alias": "ns", "service": "web", "namespace": "Shop", "remote_port": 80},
            {"alias": "pod", "workload_type": "pod", "target": "Web_1", "remote_port": 80}
        ]"#;
        let report = import_kftray(json, "p", &defaults).unwrap();
        let aliases: Vec<_> = report.profiles[0]
            .specs()
            .map(|s| s.alias.clone().unwrap_or_default())
            .collect();
        assert_eq!(aliases, ["ok"]);
        let skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
        for needle in [
            "(\"bang\") skipped: service name \"arg!!ocd-server\" is not a valid name",
            "(\"ns\") skipped: namespace \"Shop\" is not a valid name",
            "(\"pod\") skipped: pod name \"Web_1\" is not a valid name",
        ] {
            assert!(
                skipped.iter().any(|s| s.contains(needle)),
                "{needle}: {skipped:#?}"
            );
        }
    }

    #[test]
    fn a_kftray_local_port_that_is_not_a_port_skips_the_entry_by_name() {
        let defaults = ImportDefaults {
            context: "c".into(),
            namespace: "n".into(),
        };
        let json = r#"[
            {"alias": "ok", "service": "a", "remote_port": 80, "local_port": 8080},
            {"alias": "none", "service": "a", "remote_port": 80},
            {"alias": "big", "service": "a", "remote_port": 80, "local_port": 65536},
            {"alias": "neg", "service": "a", "remote_port": 80, "local_port": -1},
            {"alias": "frac", "service": "a", "remote_port": 80, "local_port": 80.5},
            {"alias": "text", "service": "a", "remote_port": 80, "local_port": "x"},
            {"alias": "remote", "service": "a", "remote_port": 0}
        ]"#;
        let report = import_kftray(json, "p", &defaults).unwrap();
        let specs: Vec<String> = report.profiles[0]
            .specs()
            .map(|s| s.ports[0].to_string())
            .collect();
        assert_eq!(specs, ["8080:80", ":80"]);
        let skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
        for (alias, field, value) in [
            ("big", "local_port", "65536"),
            ("neg", "local_port", "-1"),
            ("frac", "local_port", "80.5"),
            ("text", "local_port", "\"x\""),
            ("remote", "remote_port", "0"),
        ] {
            let expected = format!("(\"{alias}\") skipped: {field} {value} is not a port number");
            assert!(
                skipped.iter().any(|s| s.contains(&expected)),
                "{expected}: {skipped:#?}"
            );
        }
    }
}
