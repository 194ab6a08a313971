//! `ferry exec` through the running instance (`ferry daemon`), compared with the real
//! `kubectl exec` v1.32 on the same kubesim.
//!
//! To prove the session ran on the instance, the CLI is given a kubeconfig whose contexts have
//! the same names but point at a port where nothing listens: run in process, every command
//! would fail to connect. And when the instance does not know the CLI's context, the CLI runs
//! the command itself.
//!
//! The `ferry` binary must be built (`cargo build -p ferry`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use ferry_core::instance::client::Client;
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{Kubectl, Output, TestCluster, ferry_bin, start_empty, user_env, wait_for};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

const RUN: Duration = Duration::from_secs(60);

/// A private user whose `ferry daemon` uses `daemon_kubeconfig`, and whose CLI uses
/// `cli_kubeconfig`.
struct Setup {
    /// Kept alive for the test.
    _tc: TestCluster,
    kubectl: Kubectl,
    user: tempfile::TempDir,
    cli_kubeconfig: PathBuf,
    _daemon: Child,
}

impl Setup {
    /// `daemon_knows_the_context`: false gives the daemon a kubeconfig whose contexts are named
    /// otherwise (and the CLI the real one).
    async fn start(daemon_knows_the_context: bool) -> anyhow::Result<Self> {
        let tc = start_empty().await?;
        let client = tc.client("demo").await?;
        create_running_pod(&client, test_pod("box", true)).await?;
        let kubectl = tc
            .kubectl()
            .context("kubectl is required for the comparison")?;
        let user = tempfile::Builder::new().prefix("ferry-exec-").tempdir()?;
        user_env::create(user.path())?;
        let real = std::fs::read_to_string(tc.kubeconfig())?;
        let (daemon_kubeconfig, cli_kubeconfig) = if daemon_knows_the_context {
            let dead = user.path().join("dead-kubeconfig");
            std::fs::write(&dead, unreachable(&real)?)?;
            (tc.kubeconfig().to_path_buf(), dead)
        } else {
            let renamed = user.path().join("renamed-kubeconfig");
            std::fs::write(&renamed, renamed_contexts(&real))?;
            (renamed, tc.kubeconfig().to_path_buf())
        };
        let mut daemon = user_env::command(
            user.path(),
            &daemon_kubeconfig,
            None,
            &ferry_bin(),
            &["daemon"],
        );
        daemon.stdout(Stdio::null()).stderr(Stdio::null());
        let daemon = daemon.spawn().context("could not start ferry daemon")?;
        let socket = user.path().join("run").join("ferry").join("instance.sock");
        wait_for("the daemon to listen", Duration::from_secs(20), || {
            let socket = socket.clone();
            async move { Client::connect_at(&socket).await.ok() }
        })
        .await?;
        Ok(Setup {
            _tc: tc,
            kubectl,
            user,
            cli_kubeconfig,
            _daemon: daemon,
        })
    }

    fn command(&self, bin: &Path, args: &[&str]) -> tokio::process::Command {
        user_env::command(self.user.path(), &self.cli_kubeconfig, None, bin, args)
    }

    /// `ferry exec ARGS` as this user, feeding `stdin`.
    async fn ferry(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        let mut cmd = self.command(&ferry_bin(), &full);
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
        finish(child).await
    }

    /// The same `exec` arguments through kubectl and ferry.
    async fn both(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(Output, Output)> {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        let kubectl = self.kubectl.run_with_stdin(&full, stdin).await?;
        Ok((kubectl, self.ferry(args, stdin).await?))
    }
}

async fn finish(child: Child) -> anyhow::Result<Output> {
    let out = tokio::time::timeout(RUN, child.wait_with_output())
        .await
        .context("the command did not finish")??;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The kubeconfig with every `server:` moved to a port where nothing listens.
fn unreachable(kubeconfig: &str) -> anyhow::Result<String> {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut out = String::new();
    let mut moved = 0;
    for line in kubeconfig.lines() {
        match line.split_once("server: ") {
            Some((indent, url)) if url.starts_with("https://127.0.0.1:") => {
                out.push_str(&format!("{indent}server: https://127.0.0.1:{dead}\n"));
                moved += 1;
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    anyhow::ensure!(moved > 0, "no server line in the kubeconfig:\n{kubeconfig}");
    Ok(out)
}

/// The kubeconfig with `demo…` renamed `elsewhere…` where it names a cluster or context (and
/// nowhere else: the CA and tokens stay as they are).
fn renamed_contexts(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .map(|line| {
            let keyed = ["name: demo", "cluster: demo", "current-context: demo"]
                .iter()
                .any(|k| line.trim_start().trim_start_matches("- ").starts_with(k));
            let line = if keyed {
                line.replacen("demo", "elsewhere", 1)
            } else {
                line.to_string()
            };
            line + "\n"
        })
        .collect()
}

#[tokio::test]
async fn through_the_instance_output_stdin_exit_codes_and_errors_match_kubectl()
-> anyhow::Result<()> {
    let s = Setup::start(true).await?;
    let cases: &[(&[&str], i32)] = &[
        (
            &["box", "--", "sh", "-c", "echo out $GREETING; echo err >&2"],
            0,
        ),
        (&["box", "--", "sh", "-c", "echo partial; exit 3"], 3),
        (&["box", "--", "sh", "-c", "echo x > plain; ./plain"], 126),
        (&["box", "--", "sh", "-c", "no-such-command-here"], 127),
        (
            &["-c", "second", "box", "--", "sh", "-c", "echo $GREETING"],
            0,
        ),
    ];
    for (args, code) in cases {
        let (kubectl, ferry) = s.both(args, None).await?;
        assert_eq!(kubectl.code, Some(*code), "kubectl {args:?}: {kubectl:?}");
        assert_eq!(ferry.code, kubectl.code, "{args:?}: {ferry:?}");
        assert_eq!(ferry.stdout, kubectl.stdout, "{args:?}");
        // Stderr as kubectl's: the "Defaulted container" note, the command's own stderr and
        // "command terminated with exit code N".
        assert_eq!(ferry.stderr, kubectl.stderr, "{args:?}");
    }

    // Stdin with -i, none without.
    let (kubectl, ferry) = s
        .both(&["-i", "box", "--", "cat"], Some("piped in\n"))
        .await?;
    assert_eq!(kubectl.stdout, "piped in\n");
    assert_eq!((ferry.stdout.as_str(), ferry.code), ("piped in\n", Some(0)));
    let (kubectl, ferry) = s.both(&["box", "--", "cat"], Some("ignored\n")).await?;
    assert_eq!((kubectl.stdout.as_str(), ferry.stdout.as_str()), ("", ""));

    // More than one chunk of stdin and of output, in order and complete.
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let ferry = s
        .ferry(&["-i", "-c", "main", "box", "--", "cat"], Some(&big))
        .await?;
    assert_eq!(ferry.code, Some(0), "{}", ferry.stderr);
    assert!(
        ferry.stdout == big,
        "{} bytes back of {}",
        ferry.stdout.len(),
        big.len()
    );

    // Errors are the same sentences as in process.
    let (kubectl, ferry) = s.both(&["ghost", "--", "true"], None).await?;
    assert_eq!((kubectl.code, ferry.code), (Some(1), Some(1)));
    assert_eq!(
        ferry.stderr,
        "error: pod ghost was not found in namespace default\n"
    );
    Ok(())
}

#[tokio::test]
async fn through_the_instance_dash_t_under_a_pty_sends_the_size_and_input() -> anyhow::Result<()> {
    let s = Setup::start(true).await?;
    let inner = format!(
        "stty cols 91 rows 33; {} exec -i -t -c main box -- sh -c 'test -t 0 && echo is-a-tty; read line; stty size; echo got $line; exit 4'",
        ferry_bin().display()
    );
    let mut cmd = s.command(Path::new("script"), &["-qec", &inner, "/dev/null"]);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().context("could not start script (util-linux)")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(b"hello\r").await?;
    let out = finish(child).await?;
    drop(stdin);
    assert!(out.stdout.contains("is-a-tty"), "{out:?}");
    assert!(out.stdout.contains("33 91"), "{out:?}");
    assert!(out.stdout.contains("got hello"), "{out:?}");
    assert!(
        out.stdout.contains("command terminated with exit code 4"),
        "{out:?}"
    );
    assert_eq!(out.code, Some(4), "{out:?}");
    Ok(())
}

/// A client that stops reading for a while (a pager waiting for a key) makes the command
/// wait; nothing is lost and the session is not cut off.
#[tokio::test]
async fn a_client_that_pauses_reading_loses_nothing() -> anyhow::Result<()> {
    use ferry_core::exec::{Command, ExecRequest};
    use ferry_core::instance::api::ExecEnd;
    use ferry_core::instance::client::RemoteOutput;
    let s = Setup::start(true).await?;
    let socket = s
        .user
        .path()
        .join("run")
        .join("ferry")
        .join("instance.sock");
    let client = Client::connect_at(&socket).await?;
    let request = ExecRequest {
        context: "demo".into(),
        namespace: "default".into(),
        pod: "box".into(),
        container: Some("main".into()),
        command: Command::Argv(vec!["seq".into(), "1".into(), "1000000".into()]),
        stdin: false,
        tty: false,
        size: None,
    };
    let mut remote = client
        .exec(request)
        .await?
        .map_err(|e| anyhow::anyhow!("exec refused: {}", e.message))?;
    // Longer than the instance's 10 s write timeout for other clients: this pause is the
    // scenario under test, not a wait for something to happen.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut stdout = Vec::new();
    let end = tokio::time::timeout(RUN, async {
        loop {
            match remote.next().await? {
                RemoteOutput::Stdout(b) => stdout.extend_from_slice(&b),
                RemoteOutput::Stderr(b) => anyhow::bail!("stderr: {}", String::from_utf8_lossy(&b)),
                RemoteOutput::Ended(end) => return anyhow::Ok(end),
            }
        }
    })
    .await??;
    let expected: String = (1..=1_000_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(end, ExecEnd::Exited { code: 0 });
    assert!(
        stdout == expected.as_bytes(),
        "{} bytes of {}",
        stdout.len(),
        expected.len()
    );
    Ok(())
}

#[tokio::test]
async fn a_context_the_instance_does_not_know_runs_in_process() -> anyhow::Result<()> {
    let s = Setup::start(false).await?;
    let ferry = s
        .ferry(
            &["-c", "main", "box", "--", "sh", "-c", "echo $GREETING"],
            None,
        )
        .await?;
    assert_eq!(
        (ferry.stdout.as_str(), ferry.code),
        ("hello from main\n", Some(0)),
        "{}",
        ferry.stderr
    );
    assert_eq!(ferry.stderr, "");
    Ok(())
}
