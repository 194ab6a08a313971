//! `ferry exec` compared with the real `kubectl exec` v1.32 on the same kubesim: output, stdin
//! with `-i`, exit codes 0/3/126/127 with kubectl's "command terminated with exit code N",
//! errors, and `-t` under a pseudo-terminal (driven with util-linux `script`).
//!
//! The `ferry` binary must be built (`cargo build -p ferry`).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{Kubectl, Output, TestCluster, ferry_bin, start_empty};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const RUN: Duration = Duration::from_secs(60);

async fn setup(two_containers: bool) -> anyhow::Result<(TestCluster, Kubectl)> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("box", two_containers)).await?;
    let k = tc
        .kubectl()
        .context("kubectl is required for the comparison")?;
    Ok((tc, k))
}

/// `ferry ARGS` with the cluster's kubeconfig (and a private HOME), output piped.
fn ferry_command(tc: &TestCluster, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(ferry_bin());
    cmd.args(args)
        .env("KUBECONFIG", tc.kubeconfig())
        .env("HOME", tc.dir())
        .env("XDG_CONFIG_HOME", tc.dir().join("config"))
        .env("XDG_RUNTIME_DIR", tc.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `ferry ARGS` with the cluster's kubeconfig (and a private HOME), feeding `stdin`.
async fn ferry(tc: &TestCluster, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    let mut cmd = ferry_command(tc, args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().context("could not start ferry")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
        drop(pipe);
    }
    let out = tokio::time::timeout(RUN, child.wait_with_output())
        .await
        .context("ferry did not finish")??;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The same `exec` arguments through both; returns (kubectl, ferry).
async fn both(
    tc: &TestCluster,
    k: &Kubectl,
    args: &[&str],
    stdin: Option<&str>,
) -> anyhow::Result<(Output, Output)> {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    let kubectl = k.run_with_stdin(&full, stdin).await?;
    let ferry = ferry(tc, &full, stdin).await?;
    Ok((kubectl, ferry))
}

#[tokio::test]
async fn output_and_exit_codes_match_kubectl() -> anyhow::Result<()> {
    let (tc, k) = setup(false).await?;
    let cases: &[(&[&str], i32)] = &[
        (
            &["box", "--", "sh", "-c", "echo out $HOSTNAME; echo err >&2"],
            0,
        ),
        (&["box", "--", "sh", "-c", "echo partial; exit 3"], 3),
        // A file that is not executable: the shell answers 126.
        (&["box", "--", "sh", "-c", "echo x > plain; ./plain"], 126),
        // A command that does not exist inside the shell: 127.
        (&["box", "--", "sh", "-c", "no-such-command-here"], 127),
    ];
    for (args, code) in cases {
        let (kubectl, ferry) = both(&tc, &k, args, None).await?;
        assert_eq!(kubectl.code, Some(*code), "kubectl {args:?}: {kubectl:?}");
        assert_eq!(ferry.code, kubectl.code, "{args:?}: {ferry:?}");
        assert_eq!(ferry.stdout, kubectl.stdout, "{args:?}");
        if *code == 0 {
            assert_eq!(ferry.stderr, kubectl.stderr, "{args:?}");
        } else {
            let line = format!("command terminated with exit code {code}\n");
            assert!(kubectl.stderr.ends_with(&line), "{kubectl:?}");
            assert!(ferry.stderr.ends_with(&line), "{ferry:?}");
            // What the command itself wrote to stderr comes first, as with kubectl.
            assert_eq!(
                ferry.stderr.trim_end_matches(&line),
                kubectl.stderr.trim_end_matches(&line)
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn stdin_is_passed_only_with_dash_i() -> anyhow::Result<()> {
    let (tc, k) = setup(false).await?;
    let (kubectl, ferry) = both(&tc, &k, &["-i", "box", "--", "cat"], Some("piped in\n")).await?;
    assert_eq!(kubectl.stdout, "piped in\n");
    assert_eq!((ferry.stdout.as_str(), ferry.code), ("piped in\n", Some(0)));
    // Without -i the command gets no stdin: `cat` ends at once with nothing.
    let (kubectl, ferry) = both(&tc, &k, &["box", "--", "cat"], Some("ignored\n")).await?;
    assert_eq!(kubectl.stdout, "");
    assert_eq!((ferry.stdout.as_str(), ferry.code), ("", Some(0)));
    Ok(())
}

#[tokio::test]
async fn container_choice_and_errors_are_reported() -> anyhow::Result<()> {
    let (tc, k) = setup(true).await?;
    let args = ["box", "--", "sh", "-c", "echo $GREETING"];
    let (kubectl, ferry) = both(&tc, &k, &args, None).await?;
    assert_eq!(ferry.stdout, kubectl.stdout);
    assert_eq!(ferry.stdout, "hello from main\n");
    // kubectl's note when it picks the first of several containers.
    assert_eq!(ferry.stderr, kubectl.stderr);
    assert_eq!(
        ferry.stderr,
        "Defaulted container \"main\" out of: main, second\n"
    );
    let (kubectl, ferry) = both(
        &tc,
        &k,
        &["-c", "second", "box", "--", "sh", "-c", "echo $GREETING"],
        None,
    )
    .await?;
    assert_eq!(
        (ferry.stdout.as_str(), ferry.code),
        ("hello from second\n", Some(0))
    );
    assert_eq!(kubectl.stdout, ferry.stdout);

    let (kubectl, ferry) = both(&tc, &k, &["ghost", "--", "true"], None).await?;
    assert_eq!((kubectl.code, ferry.code), (Some(1), Some(1)));
    assert_eq!(
        ferry.stderr,
        "error: pod ghost was not found in namespace default\n"
    );
    let (kubectl, ferry) = both(&tc, &k, &["box", "--", "bash"], None).await?;
    assert_eq!((kubectl.code, ferry.code), (Some(1), Some(1)));
    // Like kubectl, Ferry first says which container it picked ("Defaulted container …").
    assert!(
        ferry.stderr.lines().last().is_some_and(
            |l| l.starts_with("error: bash was not found in container main of pod box: ")
        ),
        "{ferry:?}"
    );
    assert!(
        kubectl.stderr.starts_with("Defaulted container \"main\"")
            && ferry.stderr.starts_with("Defaulted container \"main\""),
        "both name the defaulted container: {kubectl:?} {ferry:?}"
    );
    let viewer = ferry_with_context(&tc, "demo-viewer").await?;
    assert_eq!(viewer.code, Some(1));
    assert!(
        viewer
            .stderr
            .contains("may not create pods/exec in namespace default"),
        "{viewer:?}"
    );
    Ok(())
}

async fn ferry_with_context(tc: &TestCluster, context: &str) -> anyhow::Result<Output> {
    ferry(
        tc,
        &["exec", "--context", context, "box", "--", "true"],
        None,
    )
    .await
}

/// Runs `PROGRAM exec -i -t …` inside `script`'s pseudo-terminal of 91×33 cells, typing
/// `typed` into it.
///
/// The remote command asks for its size only after it has read the typed line. A kubelet
/// starts the process without waiting for a size and applies resizes as they arrive (its
/// `handleResizeEvents` feeds the runtime, which resizes after starting the process); clients
/// send the size right after the upgrade, before their stdin. So a `stty size` that runs at
/// the very first instant may still see the terminal's initial size on a real cluster too
/// (kubectl 1.32 did here under load); one after the first input sees the client's.
async fn under_pty(program: &str, tc: &TestCluster, typed: &str) -> anyhow::Result<Output> {
    let inner = format!(
        "stty cols 91 rows 33; {program} exec -i -t box -- sh -c 'test -t 0 && echo is-a-tty; read line; stty size; echo got $line; exit 4'"
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("KUBECONFIG", tc.kubeconfig())
        .env("HOME", tc.dir())
        // No instance runs there: this compares the in-process session.
        .env("XDG_RUNTIME_DIR", tc.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("could not start script (util-linux)")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(typed.as_bytes()).await?;
    // Keep script's stdin open until the command ends (EOF would end the session early).
    let out = tokio::time::timeout(RUN, child.wait_with_output())
        .await
        .context("the -t session did not finish")??;
    drop(stdin);
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[tokio::test]
async fn dash_t_under_a_pty_behaves_like_kubectl() -> anyhow::Result<()> {
    let (tc, k) = setup(false).await?;
    let kubectl_cmd = format!(
        "{} --kubeconfig {} --cache-dir {}",
        k.binary.display(),
        k.kubeconfig.display(),
        k.cache_dir.display()
    );
    let ferry_cmd = ferry_bin().display().to_string();
    let kubectl = under_pty(&kubectl_cmd, &tc, "hello\r").await?;
    let ferry = under_pty(&ferry_cmd, &tc, "hello\r").await?;
    for (who, out) in [("kubectl", &kubectl), ("ferry", &ferry)] {
        assert!(out.stdout.contains("33 91"), "{who}: {out:?}");
        assert!(out.stdout.contains("is-a-tty"), "{who}: {out:?}");
        assert!(out.stdout.contains("got hello"), "{who}: {out:?}");
        assert!(
            out.stdout.contains("command terminated with exit code 4"),
            "{who}: {out:?}"
        );
        assert_eq!(out.code, Some(4), "{who}: {out:?}");
    }
    Ok(())
}

/// Deleting the pod kills the exec'd command with its container. kubectl reports the exit the
/// kubelet sends on the status channel (SIGKILL's 137); Ferry says why the session ended.
#[tokio::test]
async fn deleting_the_pod_ends_exec_like_kubectl_and_says_why() -> anyhow::Result<()> {
    let (tc, k) = setup(false).await?;
    let args = ["exec", "box", "--", "sh", "-c", "echo up; sleep 100"];
    let mut kubectl = k.spawn(&args)?;
    let mut ferry = ferry_command(&tc, &args)
        .spawn()
        .context("could not start ferry")?;
    let mut started = Vec::new();
    for (who, child) in [("kubectl", &mut kubectl), ("ferry", &mut ferry)] {
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        ferry_e2e::read_until(&mut lines, RUN, &format!("{who}'s \"up\""), |l| l == "up").await?;
        started.push(lines);
    }
    let pods: Api<Pod> = Api::default_namespaced(tc.client("demo").await?);
    pods.delete("box", &DeleteParams::default()).await?;
    let mut ended = Vec::new();
    for (who, child) in [("kubectl", kubectl), ("ferry", ferry)] {
        let out = tokio::time::timeout(RUN, child.wait_with_output())
            .await
            .with_context(|| format!("{who} did not end when the pod was deleted"))??;
        ended.push((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let (kubectl, ferry) = (&ended[0], &ended[1]);
    assert_eq!(
        kubectl,
        &(
            Some(137),
            "command terminated with exit code 137\n".to_string()
        )
    );
    assert_eq!(
        ferry,
        &(
            Some(1),
            "error: the session ended because pod box was deleted\n".to_string()
        )
    );
    Ok(())
}
