//! A credential plugin's output is a secret: when a plugin prints broken JSON, or fails, Ferry
//! says in a sentence what was wrong and quotes none of its standard output, its environment
//! (`KUBERNETES_EXEC_INFO`, `PATH`) or a token from its error output, in messages and in
//! `-vv` logs alike.
//!
//! Runs the real `ferry contexts --check` against kubesim, with fake plugin scripts.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use ferry_e2e::ferry_bin;
use ferry_e2e::start_demo;
use kube::config::Kubeconfig;

const TOKEN: &str = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
const STDERR_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl";

/// A kubeconfig with kubesim's `demo` cluster and one context per plugin script.
fn kubeconfig_with_plugins(
    base: &Path,
    dir: &Path,
    plugins: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    let kc = Kubeconfig::read_from(base)?;
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == "demo")
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("kubesim writes a demo context");
    let mut kc = serde_json::to_value(&kc)?;
    for (name, script) in plugins {
        let path = dir.join(format!("{name}.sh"));
        std::fs::write(&path, script)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        let user = serde_json::json!({
            "name": name,
            "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": path.display().to_string(),
                "interactiveMode": "Never",
            }},
        });
        let context = serde_json::json!({
            "name": name,
            "context": {"cluster": cluster, "user": name},
        });
        for (list, item) in [("users", user), ("contexts", context)] {
            kc[list]
                .as_array_mut()
                .ok_or_else(|| anyhow::anyhow!("kubeconfig has no {list} list"))?
                .push(item);
        }
    }
    let path = dir.join("kubeconfig-plugins");
    std::fs::write(&path, serde_json::to_string_pretty(&kc)?)?;
    Ok(path)
}

/// `ferry contexts --check`, awaited without blocking this test's runtime (kubesim runs on it).
async fn contexts_check(kubeconfig: &Path, verbose: &str) -> Output {
    tokio::process::Command::new(ferry_bin())
        .args(["contexts", "--check", verbose])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ferry")
}

#[tokio::test]
async fn a_plugins_token_never_appears_in_messages_or_logs() -> anyhow::Result<()> {
    let cluster = start_demo().await?;
    let broken_json = format!(
        "#!/bin/sh\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{TOKEN}\"'\n"
    );
    let failing = format!(
        "#!/bin/sh\necho '{{\"status\":{{\"token\":\"{TOKEN}\"}}}}'\necho 'debug: refreshing with {STDERR_TOKEN}' >&2\necho 'error: the session expired; run \"az login\" again' >&2\nexit 3\n"
    );
    let no_status = format!(
        "#!/bin/sh\necho '{{\"kind\":\"ExecCredential\",\"spec\":{{\"x\":\"{TOKEN}\"}}}}'\n"
    );
    let kubeconfig = kubeconfig_with_plugins(
        cluster.kubeconfig(),
        cluster.dir(),
        &[
            ("broken-json", &broken_json),
            ("failing", &failing),
            ("no-status", &no_status),
        ],
    )?;

    for verbose in ["-v", "-vv"] {
        let out = contexts_check(&kubeconfig, verbose).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("--- stdout\n{stdout}--- stderr\n{stderr}");
        assert!(
            !out.status.success(),
            "a failing context fails --check\n{all}"
        );
        for secret in [
            TOKEN,
            STDERR_TOKEN,
            "KUBERNETES_EXEC_INFO",
            "Output {",
            "PATH=",
        ] {
            assert!(
                !all.contains(secret),
                "{secret:?} leaked with {verbose}:\n{all}"
            );
        }
        let line = |ctx: &str| {
            stderr
                .lines()
                .find(|l| l.starts_with(&format!("context \"{ctx}\": the credential plugin")))
                .unwrap_or_else(|| panic!("no message about {ctx}:\n{all}"))
                .to_string()
        };
        assert!(
            line("broken-json").contains("its output is not an ExecCredential"),
            "{all}"
        );
        let failing = line("failing");
        assert!(failing.contains("exited with code 3"), "{failing}");
        assert!(failing.contains("run \"az login\" again"), "{failing}");
        assert!(failing.contains("[hidden]"), "{failing}");
        assert!(line("no-status").contains("has no `status`"), "{all}");
        // The working context is still fine.
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(" demo ") && l.ends_with("ok")),
            "{all}"
        );
    }
    Ok(())
}
