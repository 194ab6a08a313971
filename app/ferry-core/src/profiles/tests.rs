//! Unit tests of the profile store: what a person would notice if it went wrong.

use std::path::Path;
use std::sync::Arc;

use super::atomic::write_atomic_with;
use super::*;
use crate::secrets::{MemorySecrets, SecretError, SecretStore};
use crate::spec::{Spread, Target, TunnelSpec};

const V0_FIXTURE: &str = include_str!("../../../../tests/fixtures/profiles-v0.toml");

fn store(dir: &Path) -> ProfileStore {
    ProfileStore::open(dir, Arc::new(MemorySecrets::default())).expect("open store")
}

fn spec(target: &str, ports: &[&str]) -> TunnelSpec {
    TunnelSpec {
        context: "kind-staging".into(),
        namespace: "backend".into(),
        target: target.parse().expect("target"),
        ports: ports.iter().map(|p| p.parse().expect("port")).collect(),
        bind: vec![],
        spread: Spread::default(),
        alias: None,
        note: None,
    }
}

fn full_profile() -> Profile {
    let mut api = spec("svc/api", &["8080:80", ":http", "9090"]);
    api.bind = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    api.spread = Spread::ClientAffinity;
    api.alias = Some("api".into());
    api.note = Some("the REST API \"v2\"\nsecond line".into());
    let mut profile = Profile::new(
        "staging backend",
        [api, spec("app=db,tier!=cache", &["5432"])],
    );
    profile.autostart = true;
    profile.note = Some("Morning set ✓".into());
    profile
}

#[test]
fn every_field_of_a_profile_and_cluster_survives_saving_and_loading() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(MemorySecrets::default());
    let mut s = ProfileStore::open(dir.path(), secrets.clone()).unwrap();
    s.add_profile(full_profile()).unwrap();
    let mut cluster = Cluster::new("lab", "https://10.1.2.3:6443");
    cluster.ca_data = Some("LS0tLS1CRUdJTi==".into());
    cluster.note = Some("lab cluster".into());
    s.save_cluster(cluster.clone(), TokenChange::Set("tok-123".into()))
        .unwrap();

    let again = ProfileStore::open(dir.path(), secrets).unwrap();
    assert!(again.problems().is_empty(), "{:?}", again.problems());
    assert_eq!(again.profiles(), &[full_profile()]);
    let loaded = again.cluster("lab").unwrap();
    assert!(loaded.token.is_some());
    assert_eq!(
        Cluster {
            token: None,
            ..loaded.clone()
        },
        cluster
    );
    assert_eq!(
        again.cluster_token("lab").unwrap().as_deref(),
        Some("tok-123")
    );
    let text = std::fs::read_to_string(again.path()).unwrap();
    assert!(
        text.starts_with("# Ferry's saved profiles") && text.contains("\nversion = 1\n"),
        "{text}"
    );
    assert!(
        text.contains("[[profile.tunnel]]") && text.contains("target = \"svc/api\""),
        "{text}"
    );
}

#[test]
fn a_version_0_file_is_upgraded_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, V0_FIXTURE).unwrap();
    let mut s = store(dir.path());
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    assert_eq!(s.migrated_from(), Some(0));
    let staging = s.profile("staging").expect("staging migrated");
    assert!(staging.autostart);
    assert_eq!(
        staging.note.as_deref(),
        Some("Morning set: api and postgres")
    );
    assert_eq!(staging.tunnels.len(), 2);
    assert_eq!(staging.tunnels[0].alias.as_deref(), Some("api"));
    assert_eq!(staging.tunnels[0].target, Target::Service("api".into()));
    assert_eq!(staging.tunnels[0].ports[0].to_string(), "8080:80");
    assert_eq!(staging.tunnels[1].ports[0].to_string(), "5432");
    assert_eq!(
        staging.tunnels[1].bind,
        vec!["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        staging.tunnels[1]
            .extra
            .get("colour")
            .and_then(|v| v.as_str()),
        Some("blue")
    );
    assert_eq!(
        s.profile("dev").unwrap().tunnels[0].target,
        Target::Deployment("web".into())
    );

    // The first change writes the new format; the old file is the backup, byte for byte.
    s.add_profile(Profile::new("new", [])).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.backup_path()).unwrap(),
        V0_FIXTURE
    );
    let again = store(dir.path());
    assert_eq!(again.migrated_from(), None);
    assert_eq!(again.profiles().len(), 3);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("colour = \"blue\"")
    );
}

#[test]
fn saving_into_a_config_folder_that_does_not_exist_yet_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/ferry");
    let mut s = store(&nested);
    assert!(s.profiles().is_empty() && s.problems().is_empty());
    s.add_profile(Profile::new("first", [])).unwrap();
    assert_eq!(store(&nested).profiles().len(), 1);
}

#[test]
fn a_failed_rename_leaves_the_old_file_whole_and_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.toml");
    std::fs::write(&path, "version = 1\n").unwrap();
    let err = write_atomic_with(
        &path,
        b"version = 1\n[[profile]]\nname = \"x\"\n",
        |_, _| Err(std::io::Error::other("simulated crash before rename")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("simulated"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "version = 1\n");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("profiles.toml")]);
}

#[cfg(unix)]
#[test]
fn profile_files_and_backups_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path());
    s.add_profile(full_profile()).unwrap();
    s.add_profile(Profile::new("second", [])).unwrap();
    for path in [s.path().to_path_buf(), s.backup_path()] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

#[test]
fn a_corrupt_file_is_left_byte_for_byte_and_the_error_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let corrupt = b"version = 1\n\n[[profile]]\nname = \"staging\nautostart = true\n".to_vec();
    std::fs::write(&path, &corrupt).unwrap();

    let first = store(dir.path());
    let problem = first
        .problems()
        .first()
        .expect("a problem is reported")
        .clone();
    assert_eq!(problem.line, Some(4), "{problem}");
    assert!(problem.column.is_some());
    assert!(
        problem.to_string().contains("profiles.toml:4:"),
        "{problem}"
    );

    let mut elsewhere = store(dir.path());
    let err = elsewhere.add_profile(Profile::new("new", [])).unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains(":4:"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), corrupt);
    assert!(
        !first.backup_path().exists(),
        "a damaged file must not become the backup either"
    );
}

#[test]
fn one_bad_profile_does_not_hide_the_others_and_blocks_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let text = "version = 1\n\n[[profile]]\nname = \"good\"\n\n[[profile]]\nname = \"bad\"\n\n\
                [[profile.tunnel]]\ncontext = \"c\"\nnamespace = \"n\"\ntarget = \"svc/x\"\n\
                ports = [\"80:Http\"]\n\n[[profile]]\nname = \"also-good\"\n";
    std::fs::write(&path, text).unwrap();
    let mut s = store(dir.path());
    let names: Vec<_> = s.profiles().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["good", "also-good"]);
    // The position is the bad value itself (line 13, inside the quotes of "80:Http").
    let first = &s.problems()[0];
    assert_eq!((first.line, first.column), (Some(13), Some(11)), "{first}");
    assert!(first.message.contains("80:Http"), "{first}");
    assert!(
        s.problems()
            .iter()
            .any(|p| p.message.contains("\"bad\" was skipped"))
    );
    assert!(s.remove_profile("good").is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn fields_from_a_newer_ferry_survive_a_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let text = "version = 1\ntheme = \"dark\"\n\n[window]\nwidth = 1200\n\n[[profile]]\nname = \"p\"\n\
                colour = \"red\"\ncreated = 2026-01-02T03:04:05Z\n\n[[profile.tunnel]]\ncontext = \"c\"\n\
                namespace = \"n\"\ntarget = \"svc/x\"\nports = [\"80\"]\nhealth_check = { path = \"/healthz\", every = 5 }\n\n\
                [[cluster]]\nname = \"k\"\nserver = \"https://k:6443\"\nproxy_url = \"socks5://127.0.0.1:1080\"\n";
    std::fs::write(&path, text).unwrap();
    let mut s = store(dir.path());
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    s.add_profile(Profile::new("other", [])).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "theme = \"dark\"",
        "width = 1200",
        "colour = \"red\"",
        "created = 2026-01-02T03:04:05Z",
        "path = \"/healthz\"",
        "proxy_url = \"socks5://127.0.0.1:1080\"",
    ] {
        assert!(written.contains(needle), "{needle} lost:\n{written}");
    }
    let before = super::parse_document(&path, text).document;
    let after = store(dir.path());
    assert_eq!(after.document().extra, before.extra);
    assert_eq!(after.profile("p"), before.profile("p"));
    assert_eq!(after.cluster("k"), before.cluster("k"));
}

#[test]
fn comments_a_person_wrote_stay_next_to_what_they_describe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let text = "# my profiles\nversion = 1\n\n# the morning set\n[[profile]]\nname = \"staging\"\n\
                autostart = true # start with Ferry\n\n[[profile.tunnel]]\n# the API\ncontext = \"c\"\n\
                namespace = \"n\"\ntarget = \"svc/api\"\nports = [\"80\"]\n\n# going away\n[[profile]]\n\
                name = \"old\"\n\n# lab cluster\n[[profile]]\nname = \"lab\"\n\n# end of file\n";
    std::fs::write(&path, text).unwrap();
    let mut s = store(dir.path());
    s.remove_profile("old").unwrap();
    s.add_profile(Profile::new("new", [])).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    for comment in [
        "# my profiles",
        "# the morning set\n[[profile]]\nname = \"staging\"",
        "autostart = true # start with Ferry",
        "# the API\ncontext",
        "# lab cluster\n[[profile]]\nname = \"lab\"",
        "# end of file",
    ] {
        assert!(written.contains(comment), "lost {comment:?}:\n{written}");
    }
    assert!(!written.contains("going away"), "{written}");
    assert_eq!(store(dir.path()).profiles().len(), 3);
}

#[test]
fn two_profiles_with_one_name_are_reported_at_the_second_and_block_writes() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "version = 1\n[[profile]]\nname = \"a\"\n\n[[profile]]\nname = \"a\"\nnote = \"second\"\n";
    std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
    let mut s = store(dir.path());
    assert_eq!(s.profiles().len(), 1);
    let p = &s.problems()[0];
    assert_eq!((p.line, p.column), (Some(6), Some(8)), "{p}");
    assert!(p.message.contains("two profiles are named \"a\""), "{p}");
    assert!(s.add_profile(Profile::new("b", [])).is_err());
}

#[test]
fn a_file_from_a_newer_format_is_read_but_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let text = "version = 7\n\n[[profile]]\nname = \"p\"\nhologram = true\n";
    std::fs::write(&path, text).unwrap();
    let mut s = store(dir.path());
    assert_eq!(s.profiles().len(), 1);
    let err = s.add_profile(Profile::new("q", [])).unwrap_err();
    assert!(
        err.to_string().contains("newer Ferry (format version 7"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn two_writers_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                // Each writer has its own store, loaded before the others wrote: only the
                // re-read under the lock keeps their changes.
                let mut s = store(&dir);
                for i in 0..10 {
                    s.add_profile(Profile::new(format!("w{t}-{i}"), [spec("svc/a", &["80"])]))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = store(dir.path());
    assert!(s.problems().is_empty());
    assert_eq!(s.profiles().len(), 40);
}

#[test]
fn restoring_the_backup_keeps_a_copy_of_the_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path());
    s.add_profile(Profile::new("one", [])).unwrap();
    s.add_profile(Profile::new("two", [])).unwrap();
    let broken = b"version = 1\n[[profile]\n".to_vec();
    std::fs::write(s.path(), &broken).unwrap();
    s.reload().unwrap();
    assert!(s.profiles().is_empty() && !s.problems().is_empty());
    let kept = s.restore_backup().unwrap().expect("broken copy kept");
    assert_eq!(std::fs::read(&kept).unwrap(), broken);
    let names: Vec<_> = s.profiles().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["one"]);
    s.add_profile(Profile::new("three", [])).unwrap();
}

#[test]
fn cluster_tokens_live_only_in_the_secret_store() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Arc::new(MemorySecrets::default());
    let mut s = ProfileStore::open(dir.path(), secrets.clone()).unwrap();
    s.save_cluster(
        Cluster::new("lab", "https://lab:6443"),
        TokenChange::Set("sekrit-token".into()),
    )
    .unwrap();
    let text = std::fs::read_to_string(s.path()).unwrap();
    assert!(!text.contains("sekrit-token"));
    let key = s.cluster("lab").unwrap().token.clone().unwrap().key;
    assert!(
        text.contains(&format!("token = \"keyring:{key}\"")),
        "{text}"
    );
    assert_eq!(secrets.get(&key).unwrap().as_deref(), Some("sekrit-token"));

    // Editing the server keeps the token; replacing the token deletes the old secret.
    s.save_cluster(Cluster::new("lab", "https://lab2:6443"), TokenChange::Keep)
        .unwrap();
    assert_eq!(
        s.cluster_token("lab").unwrap().as_deref(),
        Some("sekrit-token")
    );
    s.save_cluster(
        Cluster::new("lab", "https://lab2:6443"),
        TokenChange::Set("new".into()),
    )
    .unwrap();
    assert_eq!(secrets.get(&key).unwrap(), None);
    let key2 = s.cluster("lab").unwrap().token.clone().unwrap().key;

    s.remove_cluster("lab").unwrap();
    assert_eq!(secrets.get(&key2).unwrap(), None);
    assert!(s.cluster("lab").is_none());
}

#[test]
fn without_a_keyring_a_token_is_refused_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = ProfileStore::open(dir.path(), Arc::new(MemorySecrets::unavailable())).unwrap();
    let err = s
        .save_cluster(
            Cluster::new("lab", "https://lab:6443"),
            TokenChange::Set("sekrit".into()),
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Unavailable { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("no secret store is reachable"));
    assert!(!err.to_string().contains("sekrit"));
    assert!(!s.path().exists(), "nothing may be written");
}

#[test]
fn a_token_typed_into_the_file_by_hand_is_reported_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = "version = 1\n[[cluster]]\nname = \"k\"\nserver = \"https://k\"\ntoken = \"eyJhbGciOiJSUzI1NiJ9.secret\"\n";
    std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
    let s = store(dir.path());
    let all: String = s.problems().iter().map(|p| p.to_string()).collect();
    assert!(all.contains("not a keyring reference"), "{all}");
    assert!(!all.contains("eyJhbGci"), "{all}");
}

#[test]
fn imported_profiles_with_taken_names_fail_replace_or_get_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path());
    s.add_profile(Profile::new("staging", [])).unwrap();
    let incoming = vec![
        Profile::new("staging", [spec("svc/api", &["80"])]),
        Profile::new("dev", []),
    ];
    assert!(matches!(
        s.import_profiles(incoming.clone(), OnConflict::Fail),
        Err(StoreError::ProfileExists(n)) if n == "staging"
    ));
    assert_eq!(s.profiles().len(), 1);
    let out = s
        .import_profiles(incoming.clone(), OnConflict::Rename)
        .unwrap();
    assert_eq!(out.renamed, vec![("staging".into(), "staging (2)".into())]);
    assert_eq!(out.added, vec!["dev".to_string()]);
    let out = s.import_profiles(incoming, OnConflict::Replace).unwrap();
    assert_eq!(out.replaced, vec!["staging".to_string(), "dev".to_string()]);
    assert_eq!(s.profile("staging").unwrap().tunnels.len(), 1);
}

#[test]
fn exported_profiles_import_back_identically() {
    let text = export_profiles([&full_profile()]).unwrap();
    assert!(text.starts_with("# Ferry profiles"));
    let report = import::import_ferry(Path::new("export.toml"), &text).unwrap();
    assert_eq!(report.profiles, vec![full_profile()]);
    assert!(report.skipped.is_empty());
}

mod round_trip {
    use proptest::prelude::*;

    use super::super::{Document, Profile, parse_document};
    use crate::spec::{LocalPort, PortSpec, RemotePort, Spread, Target, TunnelSpec};

    fn target() -> impl Strategy<Value = Target> {
        let name = "[a-z0-9][a-z0-9.-]{0,30}";
        prop_oneof![
            name.prop_map(Target::Pod),
            name.prop_map(Target::Service),
            name.prop_map(Target::Deployment),
            "[a-z]{1,8}(=|!=)[a-z0-9]{1,8}(,[a-z]{1,8}=[a-z]{1,8})?".prop_map(Target::Selector),
        ]
    }

    fn port() -> impl Strategy<Value = PortSpec> {
        let local = prop_oneof![
            Just(LocalPort::SameAsRemote),
            Just(LocalPort::Any),
            (1u16..).prop_map(LocalPort::Fixed)
        ];
        let remote = prop_oneof![
            (1u16..).prop_map(RemotePort::Number),
            "[a-z]([a-z0-9]|-[a-z0-9]){0,6}".prop_map(RemotePort::Name)
        ];
        (local, remote).prop_map(|(local, remote)| PortSpec { local, remote })
    }

    fn spread() -> impl Strategy<Value = Spread> {
        prop_oneof![
            Just(Spread::Single),
            Just(Spread::RoundRobin),
            Just(Spread::ClientAffinity),
            Just(Spread::FollowService)
        ]
    }

    fn tunnel() -> impl Strategy<Value = TunnelSpec> {
        (
            any::<String>(),
            any::<String>(),
            target(),
            prop::collection::vec(port(), 1..4),
            prop::collection::vec(any::<std::net::IpAddr>(), 0..3),
            spread(),
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<String>()),
        )
            .prop_map(
                |(context, namespace, target, ports, bind, spread, alias, note)| TunnelSpec {
                    context,
                    namespace,
                    target,
                    ports,
                    bind,
                    spread,
                    alias,
                    note,
                },
            )
    }

    fn profile() -> impl Strategy<Value = Profile> {
        (
            any::<String>(),
            any::<bool>(),
            proptest::option::of(any::<String>()),
            prop::collection::vec(tunnel(), 0..4),
        )
            .prop_map(|(name, autostart, note, tunnels)| {
                let mut p = Profile::new(name, tunnels);
                p.autostart = autostart;
                p.note = note;
                p
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any profile, with any text in its names and notes, reads back exactly as written.
        #[test]
        fn any_profile_reads_back_exactly_as_written(profiles in prop::collection::vec(profile(), 0..4)) {
            let doc = Document { profiles, ..Document::default() };
            let text = doc.to_toml().expect("serialise");
            let parsed = parse_document(std::path::Path::new("p.toml"), &text);
            prop_assert!(parsed.problems.iter().all(|p| p.message.contains("two profiles")), "{:?}\n{text}", parsed.problems);
            if parsed.problems.is_empty() {
                prop_assert_eq!(parsed.document, doc);
            }
        }
    }
}
