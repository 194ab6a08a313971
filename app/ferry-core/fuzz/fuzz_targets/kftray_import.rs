//! Feeds arbitrary text to the kftray importer (and the format detector that picks it): it
//! must import or explain, never panic. Whatever it imports must survive being saved in a
//! profile file and read back, as `ferry profile import` does next.
#![no_main]

use std::path::Path;

use ferry_core::profiles::Document;
use ferry_core::profiles::import::{ImportDefaults, detect, import_kftray};
use ferry_core::profiles::parse_document_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = detect(text);
    let defaults = ImportDefaults {
        context: "ctx".into(),
        namespace: "ns".into(),
    };
    let Ok(report) = import_kftray(text, "imported", &defaults) else {
        return;
    };
    let document = Document {
        profiles: report.profiles,
        ..Document::default()
    };
    let written = document
        .to_toml()
        .expect("an imported profile can be written");
    let again = parse_document_bytes(Path::new("profiles.toml"), written.as_bytes());
    assert!(
        again.problems.is_empty(),
        "an imported profile does not read back: {:?}\n{written}",
        again.problems
    );
    assert_eq!(again.document.profiles, document.profiles, "{written}");
});
