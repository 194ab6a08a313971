//! Feeds arbitrary bytes to the profile file reader, as if they were `profiles.toml`: it must
//! report problems, never panic. When a file reads cleanly, writing the document back and
//! reading that again must give the same profiles and clusters (what the store does on every
//! change), so a save never loses or alters what was read.
#![no_main]

use std::path::Path;

use ferry_core::profiles::parse_document_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let path = Path::new("profiles.toml");
    let parsed = parse_document_bytes(path, input);
    if parsed.damaged || !parsed.problems.is_empty() || parsed.newer_version.is_some() {
        return;
    }
    let text = parsed
        .document
        .to_toml()
        .expect("a document that was read can be written");
    let again = parse_document_bytes(path, text.as_bytes());
    assert!(
        again.problems.is_empty(),
        "written text does not read back: {:?}\n{text}",
        again.problems
    );
    assert_eq!(again.document.profiles, parsed.document.profiles, "{text}");
    assert_eq!(again.document.clusters, parsed.document.clusters, "{text}");
});
