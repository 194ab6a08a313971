//! Typos in profiles are caught when they are made, not when the tunnel starts: `ferry profile
//! add` refuses a namespace that is not a DNS-1123 label, a selector that does not parse and a
//! local port two tunnels of one profile want; it warns about a context the kubeconfig does not
//! have. `ferry up` names the Ferry tunnel that holds a port instead of blaming "another
//! program". `ferry profile import` recognises a kftray export without `--kftray` and reports a
//! kftray `local_port` that is not a port, with the entry's name.
//!
//! Runs the real `ferry` binary on a private config directory (`cargo build -p ferry` first).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferry_e2e::ferry_bin;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `ferry ARGS` with `config` as its config dir and `kubeconfig` as `KUBECONFIG`.
fn ferry_with(config: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(ferry_bin())
        .args(args)
        .env("FERRY_CONFIG_DIR", config)
        .env("XDG_RUNTIME_DIR", config)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry")
}

/// Runs `ferry ARGS` with `config` as its config dir and no kubeconfig.
fn ferry(config: &Path, args: &[&str]) -> Output {
    ferry_with(config, &config.join("no-kubeconfig"), args)
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn store_text(config: &Path) -> Option<String> {
    std::fs::read_to_string(config.join("profiles.toml")).ok()
}

fn add(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["profile", "add"];
    all.extend_from_slice(args);
    ferry(config, &all)
}

#[test]
fn profile_add_refuses_a_namespace_that_is_not_a_dns_label() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["Backend", "back_end", "-x", &"n".repeat(64)] {
        let namespace = format!("--namespace={bad}");
        let out = add(
            dir.path(),
            &["p", "svc/api", "8080:80", "--context", "c", &namespace],
        );
        assert!(!out.status.success(), "{bad}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("namespace \"{bad}\"")) && err.contains("lowercase"),
            "{}",
            text(&out)
        );
        assert_eq!(store_text(dir.path()), None, "nothing saved");
    }
}

#[test]
fn profile_add_refuses_a_selector_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "app in (web",
        "=web",
        "app=web,",
        "app in (a b)",
        "tier notin ()x",
    ] {
        let out = add(dir.path(), &["p", bad, "80", "--context", "c", "-n", "n"]);
        assert!(!out.status.success(), "{bad}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("selector \"{bad}\"")),
            "{}",
            text(&out)
        );
        assert_eq!(store_text(dir.path()), None, "nothing saved");
    }
    // Valid selectors of every form are accepted.
    for good in [
        "app=web",
        "app==web,tier!=cache",
        "!legacy",
        "env in (prod, staging),app",
        "app.kubernetes.io/name=web",
    ] {
        let out = add(dir.path(), &["p", good, ":80", "--context", "c", "-n", "n"]);
        assert!(out.status.success(), "{good}: {}", text(&out));
    }
}

#[test]
fn profile_add_refuses_a_local_port_another_tunnel_of_the_profile_uses() {
    let dir = tempfile::tempdir().unwrap();
    let ok = add(
        dir.path(),
        &[
            "p",
            "svc/api",
            "8080:80",
            "--context",
            "c",
            "-n",
            "n",
            "--alias",
            "api",
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let before = store_text(dir.path());
    let out = add(
        dir.path(),
        &["p", "svc/web", "8080:8080", "--context", "c", "-n", "n"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("8080") && err.contains("api: svc/api") && err.contains("svc/web"),
        "names both tunnels: {}",
        text(&out)
    );
    assert_eq!(store_text(dir.path()), before, "the file is unchanged");

    // Within one tunnel, too; `REMOTE` alone means the same local number.
    let out = add(
        dir.path(),
        &[
            "q",
            "svc/db",
            "5432",
            "5432:5433",
            "--context",
            "c",
            "-n",
            "n",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5432"),
        "{}",
        text(&out)
    );
    // Another profile may use the same port (profiles are started one at a time).
    let out = add(
        dir.path(),
        &["other", "svc/web", "8080:80", "--context", "c", "-n", "n"],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn profile_add_warns_about_a_context_the_kubeconfig_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-dev\nclusters:\n- name: k\n  cluster: {server: 'https://k:6443'}\ncontexts:\n- name: kind-dev\n  context: {cluster: k}\n",
    )
    .unwrap();
    let out = ferry_with(
        dir.path(),
        &kubeconfig,
        &[
            "profile",
            "add",
            "p",
            "svc/api",
            "80",
            "--context",
            "kind-dve",
            "-n",
            "n",
        ],
    );
    assert!(
        out.status.success(),
        "a warning, not an error: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("\"kind-dve\"") && err.contains("kind-dev"),
        "{}",
        text(&out)
    );
    assert!(store_text(dir.path()).is_some_and(|t| t.contains("kind-dve")));
}

/// A port that was free a moment ago (the test binds port 0 and lets it go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_names_the_ferry_tunnel_that_holds_a_port() {
    let cluster = ferry_e2e::start_demo().await.expect("kubesim");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path();
    let port = free_port().to_string();
    for (profile, target, remote) in [("first", "svc/web", 80), ("second", "svc/postgres", 5432)] {
        let spec = format!("{port}:{remote}");
        let out = ferry_with(
            config,
            cluster.kubeconfig(),
            &[
                "profile",
                "add",
                profile,
                target,
                &spec,
                "--context",
                "demo",
                "-n",
                "shop",
                "--address",
                "127.0.0.1",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let mut child = tokio::process::Command::new(ferry_bin())
        .args(["up", "first", "second"])
        .env("FERRY_CONFIG_DIR", config)
        .env("XDG_RUNTIME_DIR", config)
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ferry up");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = ferry_e2e::read_until(
        &mut lines,
        Duration::from_secs(60),
        "a line about the port both profiles want",
        |line| line.contains(&port) && line.contains("in use"),
    )
    .await
    .expect("ferry up says the port is taken")
    .pop()
    .unwrap_or_default();
    assert!(
        !line.contains("another program"),
        "Ferry holds the port, not another program: {line}"
    );
    let named_first = line.contains("svc/web") && line.contains("\"first\"");
    let named_second = line.contains("svc/postgres") && line.contains("\"second\"");
    assert!(
        named_first || named_second,
        "names the Ferry tunnel holding it: {line}"
    );
    child.kill().await.ok();
}

const KFTRAY: &str = r#"[
  {"alias": "web", "context": "kind-dev", "namespace": "shop", "service": "web",
   "workload_type": "service", "protocol": "tcp", "local_port": 8080, "remote_port": 80},
  {"alias": "big", "context": "kind-dev", "namespace": "shop", "service": "api",
   "workload_type": "service", "protocol": "tcp", "local_port": 70000, "remote_port": 80},
  {"alias": "zero", "context": "kind-dev", "namespace": "shop", "service": "api",
   "workload_type": "service", "protocol": "tcp", "local_port": 0, "remote_port": 80},
  {"alias": "words", "context": "kind-dev", "namespace": "shop", "service": "api",
   "workload_type": "service", "protocol": "tcp", "local_port": "eighty", "remote_port": 80}
]"#;

#[test]
fn profile_import_recognises_a_kftray_export_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kftray-configs.json");
    std::fs::write(&file, KFTRAY).unwrap();
    let out = ferry(dir.path(), &["profile", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kftray") && stdout.contains("imported profile \"kftray-configs\""),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("web: svc/web 8080:80"), "{}", text(&out));
}

#[test]
fn kftray_local_ports_that_are_not_ports_are_reported_by_entry_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("team.json");
    std::fs::write(&file, KFTRAY).unwrap();
    let out = ferry(
        dir.path(),
        &["profile", "import", "--kftray", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    for (alias, value) in [("big", "70000"), ("zero", "0"), ("words", "\"eighty\"")] {
        let line = all
            .lines()
            .find(|l| l.contains(&format!("(\"{alias}\")")))
            .unwrap_or_else(|| panic!("{alias} is reported: {all}"));
        assert!(
            line.contains("local_port") && line.contains(value) && line.contains("1-65535"),
            "{line}"
        );
    }
    // Not silently replaced by "any free port".
    let show = ferry(dir.path(), &["profile", "show", "team"]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("web: svc/web 8080:80"), "{}", text(&show));
    assert!(
        !shown.contains("big") && !shown.contains("zero") && !shown.contains("words"),
        "{}",
        text(&show)
    );
}
