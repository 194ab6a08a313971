//! `ferry contexts` as a subprocess, judged by the real kubectl: the same contexts, the same
//! current context and namespaces, for kubesim's kubeconfig and for a merged `KUBECONFIG` list.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use ferry_e2e::ferry_bin;
use ferry_e2e::{kubectl_binary, start_demo};

type Result = anyhow::Result<()>;

fn run(binary: &Path, kubeconfig: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HOME")
        .output()
        .expect("process runs")
}

/// name → (is current, namespace), from a `get-contexts`-style table.
fn parse_table(text: &str, ns_col: &str) -> BTreeMap<String, (bool, String)> {
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let name_at = header.find("NAME").expect("NAME column");
    let ns_at = header.find(ns_col).expect("namespace column");
    lines
        .map(|line| {
            let current = line.starts_with('*');
            let name = line[name_at..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let ns = line.get(ns_at..).unwrap_or("").trim().to_string();
            (name, (current, ns))
        })
        .collect()
}

fn agree_with_kubectl(kubeconfig: &str) -> anyhow::Result<BTreeMap<String, (bool, String)>> {
    let ferry = run(&ferry_bin(), kubeconfig, &["contexts"]);
    assert!(
        ferry.status.success(),
        "{}",
        String::from_utf8_lossy(&ferry.stderr)
    );
    let ferry_rows = parse_table(&String::from_utf8(ferry.stdout)?, "NAMESPACE");
    if let Some(kubectl) = kubectl_binary() {
        let out = run(&kubectl, kubeconfig, &["config", "get-contexts"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubectl_rows = parse_table(&String::from_utf8(out.stdout)?, "NAMESPACE");
        assert_eq!(
            ferry_rows, kubectl_rows,
            "ferry contexts and kubectl config get-contexts differ"
        );
    }
    Ok(ferry_rows)
}

#[tokio::test]
async fn ferry_contexts_lists_what_kubectl_lists() -> Result {
    let cluster = start_demo().await?;
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let rows = agree_with_kubectl(&kubeconfig)?;
    assert!(
        rows.get("demo").is_some_and(|(current, _)| *current),
        "{rows:?}"
    );
    assert!(
        rows.contains_key("demo-viewer") && rows.contains_key("staging"),
        "{rows:?}"
    );

    let table = run(&ferry_bin(), &kubeconfig, &["contexts"]);
    let text = String::from_utf8(table.stdout)?;
    let url = cluster.sim.server_url("demo").expect("demo server");
    let demo_line = text
        .lines()
        .find(|l| l.starts_with("*"))
        .expect("current marked");
    assert!(demo_line.contains(&url), "server URL shown: {text}");
    Ok(())
}

#[tokio::test]
async fn merged_kubeconfig_files_agree_with_kubectl() -> Result {
    let dir = tempfile::tempdir()?;
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://a:6443'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: shared\n  context: {cluster: a, user: u, namespace: from-first}\n- name: only-first\n  context: {cluster: a, user: u}\n",
    )?;
    std::fs::write(
        &second,
        "apiVersion: v1\nkind: Config\ncurrent-context: only-second\nclusters:\n- name: a\n  cluster: {server: 'https://other:6443'}\nusers:\n- name: u\n  user: {token: t2}\ncontexts:\n- name: shared\n  context: {cluster: a, user: u, namespace: from-second}\n- name: only-second\n  context: {cluster: a, user: u, namespace: two}\n",
    )?;
    let list = std::env::join_paths([&first, &dir.path().join("missing"), &second])?;
    let rows = agree_with_kubectl(&list.to_string_lossy())?;
    assert_eq!(
        rows.get("shared"),
        Some(&(false, "from-first".to_string())),
        "{rows:?}"
    );
    assert_eq!(
        rows.get("only-second"),
        Some(&(true, "two".to_string())),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 3);
    Ok(())
}

#[test]
fn a_malformed_kubeconfig_fails_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken-config");
    std::fs::write(&bad, "contexts: [ {name: x\n").expect("write");
    let out = run(&ferry_bin(), &bad.display().to_string(), &["contexts"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("kubeconfig file {} is malformed", bad.display())),
        "{stderr}"
    );
}

#[test]
fn contexts_as_json_for_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://k:6443'}\ncontexts:\n- name: c\n  context: {cluster: k, namespace: ns1}\n",
    )
    .expect("write");
    let out = run(
        &ferry_bin(),
        &file.display().to_string(),
        &["contexts", "-o", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json[0]["name"], "c");
    assert_eq!(json[0]["server"], "https://k:6443");
    assert_eq!(json[0]["namespace"], "ns1");
    assert_eq!(json[0]["is_current"], true);
}

#[tokio::test]
async fn contexts_check_finds_the_broken_context() -> Result {
    let cluster = start_demo().await?;
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: u}\n",
    )?;
    let list = std::env::join_paths([cluster.kubeconfig(), broken.as_path()])?;
    let list = list.to_string_lossy().into_owned();
    let out =
        tokio::task::spawn_blocking(move || run(&ferry_bin(), &list, &["contexts", "--check"]))
            .await?;
    let stdout = String::from_utf8(out.stdout)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let status_of = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_string)
    };
    assert_eq!(status_of("demo").as_deref(), Some("ok"), "{stdout}");
    assert_eq!(status_of("demo-viewer").as_deref(), Some("ok"), "{stdout}");
    assert_eq!(status_of("gone").as_deref(), Some("error"), "{stdout}");
    assert!(
        stderr.contains("cannot reach the API server of context \"gone\" at https://127.0.0.1:1"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_missing_kubeconfig_file_is_named_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-config");
    let out = run(&ferry_bin(), &missing.display().to_string(), &["contexts"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("KUBECONFIG"), "{stderr}");
}

#[test]
fn an_empty_kubeconfig_file_is_named_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty-config");
    std::fs::write(&empty, "\n# nothing yet\n").expect("write");
    let out = run(&ferry_bin(), &empty.display().to_string(), &["contexts"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&empty.display().to_string()) && stderr.contains("is empty"),
        "{stderr}"
    );
}

#[test]
fn a_current_context_that_names_no_context_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: k\n  cluster: {server: 'https://k:6443'}\ncontexts:\n- name: c\n  context: {cluster: k}\n",
    )
    .expect("write");
    let out = run(&ferry_bin(), &file.display().to_string(), &["contexts"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" c "),
        "the context is still listed: {stdout}"
    );
    assert!(
        stderr.contains("current-context \"gone\"")
            && stderr.contains(&file.display().to_string())
            && stderr.contains("names no context"),
        "{stderr}"
    );
}
