//! Exporting profiles to a file a teammate can import. Only profiles are written: clusters (and
//! so tokens) never leave the machine this way.

use super::model::{CURRENT_VERSION, Document, Profile};

/// The TOML text of an export file holding `profiles`.
pub fn export_profiles<'a>(
    profiles: impl IntoIterator<Item = &'a Profile>,
) -> Result<String, toml::ser::Error> {
    let document = Document {
        version: CURRENT_VERSION,
        profiles: profiles.into_iter().cloned().collect(),
        ..Document::default()
    };
    let body = document.to_toml()?;
    Ok(format!(
        "# Ferry profiles. Import with `ferry profile import FILE` or the app's Import button.\n\
         # No secrets are stored in this file.\n\n{body}"
    ))
}
