//! Kubeconfig loading and merging as kubectl does it, with fixture files in a temp dir.

use std::path::{Path, PathBuf};

use ferry_core::kubeconfig::{KubeconfigError, LoadedKubeconfig, paths_from};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

const WORK: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: shared
  cluster: {server: "https://work.example:6443"}
- name: work
  cluster: {server: "https://work-only.example:6443"}
users:
- name: alice
  user: {token: "secret-from-work"}
contexts:
- name: work
  context: {cluster: work, user: alice, namespace: payments}
- name: both
  context: {cluster: shared, user: alice}
"#;

const HOME: &str = r#"
apiVersion: v1
kind: Config
current-context: home
clusters:
- name: shared
  cluster: {server: "https://home.example:6443"}
- name: home
  cluster: {server: "https://home-only.example:6443"}
users:
- name: alice
  user: {token: "secret-from-home"}
- name: bob
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: fancy-login
contexts:
- name: home
  context: {cluster: home, user: bob}
- name: both
  context: {cluster: home, user: bob, namespace: ignored}
"#;

#[test]
fn kubeconfig_list_merges_with_first_file_winning_per_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = write(dir.path(), "work.yaml", WORK);
    let home = write(dir.path(), "home.yaml", HOME);
    let loaded = LoadedKubeconfig::from_paths(&[work.clone(), home.clone()]).expect("loads");

    let contexts = loaded.contexts();
    let names: Vec<&str> = contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["both", "home", "work"],
        "sorted by name like kubectl"
    );

    let both = &contexts[0];
    assert_eq!(
        both.cluster, "shared",
        "the first file's context wins whole"
    );
    assert_eq!(
        both.namespace, None,
        "no field-by-field merging of a context"
    );
    assert_eq!(
        both.server.as_deref(),
        Some("https://work.example:6443"),
        "first file's cluster wins"
    );
    assert_eq!(both.source.as_deref(), Some(work.as_path()));

    let home_ctx = &contexts[1];
    assert!(
        home_ctx.is_current,
        "current-context comes from the first file that sets it"
    );
    assert!(home_ctx.uses_exec_plugin);
    assert_eq!(home_ctx.source.as_deref(), Some(home.as_path()));
    assert_eq!(home_ctx.default_namespace(), "default");

    let work_ctx = &contexts[2];
    assert_eq!(work_ctx.namespace.as_deref(), Some("payments"));
    assert_eq!(work_ctx.default_namespace(), "payments");
    assert_eq!(work_ctx.user.as_deref(), Some("alice"));

    // Users merge by name too: alice keeps the first file's token.
    let merged = serde_json::to_value(&loaded.merged).expect("serialises");
    let users = merged["users"].as_array().expect("users");
    let alice = users.iter().find(|u| u["name"] == "alice").expect("alice");
    assert_eq!(alice["user"]["token"], "secret-from-work");
}

#[test]
fn current_context_comes_from_the_first_file_that_sets_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(
        dir.path(),
        "a.yaml",
        "apiVersion: v1\nkind: Config\ncurrent-context: first\n",
    );
    let b = write(
        dir.path(),
        "b.yaml",
        "apiVersion: v1\nkind: Config\ncurrent-context: second\n",
    );
    let none = write(dir.path(), "none.yaml", "apiVersion: v1\nkind: Config\n");
    let loaded =
        LoadedKubeconfig::from_paths(&[none.clone(), a.clone(), b.clone()]).expect("loads");
    assert_eq!(loaded.current_context(), Some("first"));
    let loaded = LoadedKubeconfig::from_paths(&[b, a]).expect("loads");
    assert_eq!(loaded.current_context(), Some("second"));
}

#[test]
fn missing_files_in_the_list_are_skipped_like_kubectl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = write(dir.path(), "work.yaml", WORK);
    let loaded = LoadedKubeconfig::from_paths(&[dir.path().join("nope.yaml"), work.clone(), work])
        .expect("loads");
    assert_eq!(
        loaded.files.len(),
        1,
        "missing skipped, duplicates read once"
    );
    assert_eq!(loaded.contexts().len(), 2);
}

#[test]
fn no_kubeconfig_at_all_means_no_contexts_not_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let loaded = LoadedKubeconfig::from_paths(&[dir.path().join("config")]).expect("empty is fine");
    assert!(loaded.contexts().is_empty());
    assert_eq!(loaded.current_context(), None);
}

#[test]
fn a_malformed_file_is_reported_with_its_path_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", WORK);
    let bad = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: v1\ncontexts: [ {name: x, context: {cluster: \n",
    );
    let err = LoadedKubeconfig::from_paths(&[good, bad.clone()]).expect_err("malformed");
    assert!(
        matches!(&err, KubeconfigError::Parse { path, .. } if path == &bad),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("kubeconfig file {} is malformed: ", bad.display())),
        "{text}"
    );
    assert!(
        text.len() > format!("kubeconfig file {} is malformed: ", bad.display()).len() + 5,
        "{text}"
    );
}

#[test]
fn a_file_with_wrong_field_types_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "types.yaml",
        "apiVersion: v1\nkind: Config\ncontexts: 42\n",
    );
    let err = LoadedKubeconfig::from_paths(std::slice::from_ref(&bad)).expect_err("wrong types");
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unreadable_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_utf8 = dir.path().join("binary.yaml");
    std::fs::write(&not_utf8, [0xC3u8, 0x28, 0xA0, 0xA1]).expect("write");
    let err = LoadedKubeconfig::from_paths(std::slice::from_ref(&not_utf8)).expect_err("not UTF-8");
    assert!(
        matches!(&err, KubeconfigError::Read { path, .. } if path == &not_utf8),
        "{err:?}"
    );
}

#[test]
fn kubeconfig_variable_is_split_and_falls_back_to_the_default_file() {
    let default = PathBuf::from("/home/u/.kube/config");
    let sep = if cfg!(windows) { ";" } else { ":" };
    let var = format!("/a/one{sep}{sep}/b/two{sep}");
    assert_eq!(
        paths_from(Some(var.into()), Some(default.clone())),
        [PathBuf::from("/a/one"), PathBuf::from("/b/two")]
    );
    assert_eq!(
        paths_from(Some("".into()), Some(default.clone())),
        vec![default.clone()]
    );
    assert_eq!(paths_from(None, Some(default.clone())), [default]);
    assert!(paths_from(None, None).is_empty());
}

#[test]
fn relative_certificate_paths_are_relative_to_their_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "certs.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://x:6443', certificate-authority: ca.crt}\n",
    );
    let loaded = LoadedKubeconfig::from_paths(&[file]).expect("loads");
    let ca = loaded.merged.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.certificate_authority.clone());
    assert_eq!(ca.map(PathBuf::from), Some(dir.path().join("ca.crt")));
}
