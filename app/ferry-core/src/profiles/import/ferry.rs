//! Importing a Ferry profile file (an export, or another machine's `profiles.toml`).

use std::path::Path;

use super::{ImportError, ImportReport, Skipped};
use crate::profiles::document::parse;

/// Reads the profiles of a Ferry file. Profiles that cannot be read are listed in `skipped`;
/// clusters are skipped because their tokens live in the sender's keyring. `source` names the
/// file in messages.
pub fn import_ferry(source: &Path, text: &str) -> Result<ImportReport, ImportError> {
    let parsed = parse(source, text);
    if parsed.document.profiles.is_empty()
        && let Some(first) = parsed.problems.first()
    {
        return Err(ImportError::Ferry(first.clone()));
    }
    let mut skipped: Vec<Skipped> = parsed
        .problems
        .iter()
        .map(|p| Skipped {
            entry: match (p.line, p.column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}"),
                _ => "an entry".into(),
            },
            field: None,
            reason: p.message.clone(),
        })
        .collect();
    skipped.extend(parsed.document.clusters.iter().map(|c| Skipped {
        entry: format!("cluster \"{}\"", c.name),
        field: None,
        reason: "clusters are not imported: their tokens stay in the sender's keyring; add the cluster in Ferry".into(),
    }));
    if let Some(version) = parsed.newer_version {
        skipped.push(Skipped {
            entry: "the file".into(),
            field: Some("version".into()),
            reason: format!("written by a newer Ferry (format {version}); fields this Ferry does not know are kept as they are"),
        });
    }
    if parsed.document.profiles.is_empty() {
        return Err(ImportError::Empty(format!(
            "{} has no profiles",
            source.display()
        )));
    }
    Ok(ImportReport {
        profiles: parsed.document.profiles,
        skipped,
    })
}
