//! `kubectl exec` over SPDY (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`: the `POST` upgrade
//! with remote-command v4) against kubesim: stdin, separate stdout and stderr, and exit codes
//! carried by the `Status` on the error stream.

use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{Kubectl, start_empty};

type Result = anyhow::Result<()>;

fn spdy(kubectl: &Kubectl) -> Kubectl {
    kubectl
        .clone()
        .with_env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
}

#[tokio::test]
async fn kubectl_exec_over_spdy_passes_stdin_and_exit_codes() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    create_running_pod(&cluster.client("demo").await?, test_pod("sh", false)).await?;
    let kubectl = spdy(&kubectl);

    let out = kubectl
        .run_with_stdin(&["exec", "-i", "sh", "--", "cat"], Some("over spdy\n"))
        .await?
        .ok()?;
    assert_eq!(out.stdout, "over spdy\n");

    let out = kubectl
        .run(&[
            "exec",
            "sh",
            "--",
            "sh",
            "-c",
            "echo out $HOSTNAME; echo err >&2; exit 3",
        ])
        .await?;
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(out.stdout, "out sh\n");
    assert!(out.stderr.starts_with("err\n"), "{:?}", out.stderr);
    assert!(
        out.stderr.contains("command terminated with exit code 3"),
        "{:?}",
        out.stderr
    );

    let out = kubectl.run(&["exec", "sh", "--", "true"]).await?.ok()?;
    assert_eq!(out.stdout, "");

    let out = kubectl.run(&["exec", "sh", "--", "bash"]).await?;
    assert!(!out.success);
    assert!(
        out.stderr.contains("executable file not found"),
        "{:?}",
        out.stderr
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_exec_over_spdy_uses_the_post_upgrade() -> Result {
    let cluster = start_empty().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    create_running_pod(&cluster.client("demo").await?, test_pod("verb", false)).await?;
    let out = spdy(&kubectl)
        .run(&["exec", "-v=6", "verb", "--", "true"])
        .await?
        .ok()?;
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("/pods/verb/exec"))
        .ok_or_else(|| anyhow::anyhow!("no exec request logged:\n{}", out.stderr))?;
    assert!(line.contains("POST"), "{line}");
    Ok(())
}
