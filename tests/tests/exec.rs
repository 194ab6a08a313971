//! pods/exec (WebSocket v5/v4) and pods/log against kubesim: kube-rs as Ferry uses it, and the
//! real kubectl v1.32 as the judge of protocol fidelity.

use std::time::Duration;

use anyhow::Context;
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{TestCluster, start_empty};
use futures::{AsyncBufReadExt, SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, AttachedProcess, LogParams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STEP: Duration = Duration::from_secs(20);

async fn cluster_with_pod(
    name: &str,
    two_containers: bool,
) -> anyhow::Result<(TestCluster, Api<Pod>)> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod(name, two_containers)).await?;
    Ok((tc, Api::default_namespaced(client)))
}

/// Reads stdout and stderr to their end (concurrently, so neither pipe can stall the other).
async fn outputs(process: &mut AttachedProcess) -> anyhow::Result<(String, String)> {
    let mut out = process.stdout();
    let mut err = process.stderr();
    let read_out = async {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            o.read_to_string(&mut s).await?;
        }
        anyhow::Ok(s)
    };
    let read_err = async {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            e.read_to_string(&mut s).await?;
        }
        anyhow::Ok(s)
    };
    let (o, e) = tokio::time::timeout(STEP, async { tokio::join!(read_out, read_err) })
        .await
        .context("exec output did not end")?;
    Ok((o?, e?))
}

async fn status(
    process: &mut AttachedProcess,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status> {
    let status = process.take_status().context("status already taken")?;
    tokio::time::timeout(STEP, status)
        .await
        .context("no status")?
        .context("the stream ended without a status")
}

#[tokio::test]
async fn stdout_and_stderr_arrive_separately_with_success() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("split", false).await?;
    let ap = AttachParams::default().stdout(true).stderr(true);
    let mut p = pods
        .exec(
            "split",
            ["sh", "-c", "echo out $HOSTNAME $GREETING; echo err >&2"],
            &ap,
        )
        .await?;
    let (out, err) = outputs(&mut p).await?;
    assert_eq!(out, "out split hello from main\n");
    assert_eq!(err, "err\n");
    assert_eq!(status(&mut p).await?.status.as_deref(), Some("Success"));
    Ok(())
}

#[tokio::test]
async fn stdin_round_trips_and_closing_it_ends_cat() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("cat", false).await?;
    let ap = AttachParams::default()
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut p = pods.exec("cat", ["cat"], &ap).await?;
    let mut stdin = p.stdin().context("no stdin")?;
    stdin.write_all(b"round trip\n").await?;
    stdin.shutdown().await?;
    drop(stdin);
    let (out, _) = outputs(&mut p).await?;
    assert_eq!(out, "round trip\n");
    assert_eq!(status(&mut p).await?.status.as_deref(), Some("Success"));
    Ok(())
}

#[tokio::test]
async fn exit_code_three_is_a_non_zero_exit_code_status() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("three", false).await?;
    let mut p = pods
        .exec("three", ["sh", "-c", "exit 3"], &AttachParams::default())
        .await?;
    outputs(&mut p).await?;
    let s = status(&mut p).await?;
    assert_eq!(s.status.as_deref(), Some("Failure"));
    assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"));
    let causes = s.details.and_then(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
    assert_eq!(causes[0].message.as_deref(), Some("3"));
    Ok(())
}

#[tokio::test]
async fn tty_resize_is_visible_to_the_process() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("tty", false).await?;
    let mut p = pods
        .exec(
            "tty",
            ["sh", "-c", "read go; stty size"],
            &AttachParams::interactive_tty(),
        )
        .await?;
    let mut resize = p.terminal_size().context("no resize channel")?;
    resize
        .send(TerminalSize {
            width: 123,
            height: 45,
        })
        .await?;
    let mut stdin = p.stdin().context("no stdin")?;
    stdin.write_all(b"go\n").await?;
    let (out, _) = outputs(&mut p).await?;
    assert!(out.contains("45 123"), "stty size printed {out:?}");
    assert_eq!(status(&mut p).await?.status.as_deref(), Some("Success"));
    Ok(())
}

#[tokio::test]
async fn missing_executable_fails_like_a_real_cluster() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("nobash", false).await?;
    let mut p = pods
        .exec(
            "nobash",
            ["bash-is-not-installed"],
            &AttachParams::default(),
        )
        .await?;
    let (out, err) = outputs(&mut p).await?;
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    let s = status(&mut p).await?;
    assert_eq!(s.status.as_deref(), Some("Failure"));
    assert_eq!(s.reason.as_deref(), Some("InternalError"));
    assert_eq!(s.code, Some(500));
    let message = s.message.unwrap_or_default();
    assert!(
        message.starts_with("Internal error occurred: error executing command in container: ")
            && message.contains(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"bash-is-not-installed\": executable file not found in $PATH: unknown"
            ),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_container_is_refused_with_the_apiserver_error() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("one", false).await?;
    let ap = AttachParams::default().container("nope");
    let err = pods
        .exec("one", ["true"], &ap)
        .await
        .err()
        .context("unknown container accepted")?;
    assert!(format!("{err:?}").contains("400"), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn follow_logs_stream_new_lines() -> anyhow::Result<()> {
    let (_tc, pods) = cluster_with_pod("logger", false).await?;
    let all = pods.logs("logger", &LogParams::default()).await?;
    assert!(
        all.contains("Starting main (image busybox:1.36) in pod logger"),
        "{all}"
    );
    let tail = pods
        .logs(
            "logger",
            &LogParams {
                tail_lines: Some(1),
                ..LogParams::default()
            },
        )
        .await?;
    assert_eq!(tail.lines().count(), 1, "{tail}");

    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream("logger", &follow).await?.lines();
    // A request to the pod's http-hello port writes an access-log line.
    let mut pf = pods.portforward("logger", &[80]).await?;
    let mut http = pf.take_stream(80).context("no stream")?;
    http.write_all(b"GET /from-the-test HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let found = tokio::time::timeout(STEP, async {
        while let Some(line) = lines.next().await {
            if line?.contains("GET /from-the-test") {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await
    .context("no access-log line arrived while following")??;
    assert!(found, "the followed log ended without the access-log line");
    Ok(())
}

mod kubectl {
    use super::*;

    #[tokio::test]
    async fn kubectl_exec_prints_the_pod_hostname() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("host-1", false).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k
            .run(&["exec", "host-1", "--", "sh", "-c", "echo $HOSTNAME"])
            .await?
            .ok()?;
        assert_eq!(out.stdout, "host-1\n");
        Ok(())
    }

    #[tokio::test]
    async fn kubectl_exec_passes_stdin() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("stdin-1", false).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k
            .run_with_stdin(&["exec", "-i", "stdin-1", "--", "cat"], Some("hi\n"))
            .await?
            .ok()?;
        assert_eq!(out.stdout, "hi\n");
        Ok(())
    }

    #[tokio::test]
    async fn kubectl_exec_exits_with_the_command_exit_code() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("exit-1", false).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k
            .run(&["exec", "exit-1", "--", "sh", "-c", "exit 3"])
            .await?;
        assert_eq!(out.code, Some(3), "{out:?}");
        assert!(
            out.stderr.contains("command terminated with exit code 3"),
            "{out:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn kubectl_exec_selects_a_container() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("multi-1", true).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k
            .run(&[
                "exec",
                "multi-1",
                "-c",
                "second",
                "--",
                "sh",
                "-c",
                "echo $GREETING",
            ])
            .await?
            .ok()?;
        assert_eq!(out.stdout, "hello from second\n");
        // Without -c kubectl picks the first container and says so.
        let out = k
            .run(&["exec", "multi-1", "--", "sh", "-c", "echo $GREETING"])
            .await?
            .ok()?;
        assert_eq!(out.stdout, "hello from main\n");
        assert!(
            out.stderr.contains("Defaulted container \"main\""),
            "{out:?}"
        );
        let out = k
            .run(&["exec", "multi-1", "-c", "nope", "--", "true"])
            .await?;
        assert!(!out.success);
        assert!(
            out.stderr.contains(
                "Error from server (BadRequest): container nope is not valid for pod multi-1"
            ),
            "{out:?}"
        );
        Ok(())
    }

    #[tokio::test]
    /// busybox has no bash: the failure a client sees before falling back to `sh`.
    async fn kubectl_exec_reports_bash_missing_from_the_image() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("nobash-1", false).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k.run(&["exec", "nobash-1", "--", "bash"]).await?;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr
                .contains("exec: \"bash\": executable file not found in $PATH"),
            "{out:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn kubectl_logs_prints_the_container_log() -> anyhow::Result<()> {
        let (tc, _pods) = cluster_with_pod("logs-1", true).await?;
        let Some(k) = tc.kubectl() else { return Ok(()) };
        let out = k.run(&["logs", "logs-1", "-c", "second"]).await?.ok()?;
        assert!(
            out.stdout
                .contains("Starting second (image busybox:1.36) in pod logs-1"),
            "{out:?}"
        );
        let out = k
            .run(&["logs", "logs-1", "--tail", "1", "-c", "main"])
            .await?
            .ok()?;
        assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
        Ok(())
    }
}
