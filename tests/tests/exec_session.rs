//! Ferry's exec engine (`ferry_core::exec`) end to end against kubesim, which runs the commands
//! as real local processes (under a PTY for TTY sessions): output, stdin, TTY and resize, exit
//! codes, the bash → sh fallback, and the errors a person sees.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use ferry_core::engine::FixedClients;
use ferry_core::exec::{
    self, Command, ExecError, ExecRequest, Input, Outcome, Output, Session, TermSize,
};
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{TestCluster, start_empty};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;

const STEP: Duration = Duration::from_secs(20);

struct Env {
    tc: TestCluster,
    clients: FixedClients,
}

async fn env_with(pods: &[serde_json::Value]) -> anyhow::Result<Env> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    for p in pods {
        create_running_pod(&client, p.clone()).await?;
    }
    let url = tc.sim.server_url("demo").context("no demo cluster")?;
    let viewer = tc.client("demo-viewer").await?;
    let clients =
        FixedClients::new()
            .with("demo", client, url.clone())
            .with("demo-viewer", viewer, url);
    Ok(Env { tc, clients })
}

fn req(pod: &str, argv: &[&str]) -> ExecRequest {
    ExecRequest {
        context: "demo".into(),
        namespace: "default".into(),
        pod: pod.into(),
        container: None,
        command: Command::Argv(argv.iter().map(|s| s.to_string()).collect()),
        stdin: false,
        tty: false,
        size: None,
    }
}

/// Reads all output (stdout, stderr apart) and the outcome.
async fn finish(s: &mut Session) -> anyhow::Result<(String, String, Outcome)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    tokio::time::timeout(STEP, async {
        while let Some(o) = s.output.recv().await {
            match o {
                Output::Stdout(b) => out.extend_from_slice(&b),
                Output::Stderr(b) => err.extend_from_slice(&b),
            }
        }
    })
    .await
    .context("output did not end")?;
    let outcome = tokio::time::timeout(STEP, s.wait())
        .await
        .context("no outcome")?;
    Ok((
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        outcome,
    ))
}

/// Reads output until `needle` appears; returns everything read.
async fn read_until(s: &mut Session, needle: &str) -> anyhow::Result<String> {
    let mut seen = Vec::new();
    tokio::time::timeout(STEP, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            match s.output.recv().await {
                Some(Output::Stdout(b)) | Some(Output::Stderr(b)) => seen.extend_from_slice(&b),
                None => bail!(
                    "output ended before {needle:?}: {:?}",
                    String::from_utf8_lossy(&seen)
                ),
            }
        }
        Ok(())
    })
    .await
    .with_context(|| {
        format!(
            "{needle:?} did not appear; got {:?}",
            String::from_utf8_lossy(&seen)
        )
    })??;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

#[tokio::test]
async fn argv_output_is_split_and_exit_codes_come_from_the_status() -> anyhow::Result<()> {
    let env = env_with(&[test_pod("split", false)]).await?;
    let mut s = exec::open(
        &env.clients,
        req("split", &["sh", "-c", "echo out $HOSTNAME; echo err >&2"]),
    )
    .await?;
    assert_eq!(s.info.container.name, "main");
    let (out, err, outcome) = finish(&mut s).await?;
    assert_eq!(
        (out.as_str(), err.as_str(), outcome),
        ("out split\n", "err\n", Outcome::Exited(0))
    );

    for code in [3, 126, 127] {
        let script = format!("exit {code}");
        let mut s = exec::open(&env.clients, req("split", &["sh", "-c", &script])).await?;
        assert_eq!(finish(&mut s).await?.2, Outcome::Exited(code));
    }
    Ok(())
}

#[tokio::test]
async fn stdin_reaches_the_command_and_eof_ends_it() -> anyhow::Result<()> {
    let env = env_with(&[test_pod("cat", false)]).await?;
    let mut r = req("cat", &["cat"]);
    r.stdin = true;
    let mut s = exec::open(&env.clients, r).await?;
    assert!(
        s.input
            .send(Input::Data(Bytes::from_static(b"round trip\n")))
            .await
    );
    assert!(s.input.send(Input::Eof).await);
    let (out, _, outcome) = finish(&mut s).await?;
    assert_eq!(
        (out.as_str(), outcome),
        ("round trip\n", Outcome::Exited(0))
    );
    Ok(())
}

#[tokio::test]
async fn tty_sessions_get_their_size_and_resizes() -> anyhow::Result<()> {
    let env = env_with(&[test_pod("tty", false)]).await?;
    let mut r = req("tty", &["sh", "-c", "while read line; do stty size; done"]);
    r.stdin = true;
    r.tty = true;
    r.size = Some(TermSize {
        cols: 100,
        rows: 30,
    });
    let mut s = exec::open(&env.clients, r).await?;
    // The size is asked for after the first line: the kubelet starts the process without
    // waiting for a size, so only a process that has heard from the client is sure to see it
    // (Ferry sends the size before any stdin).
    s.input.send(Input::Data(Bytes::from_static(b"\r"))).await;
    read_until(&mut s, "30 100").await?;
    s.input
        .send(Input::Resize(TermSize {
            cols: 123,
            rows: 45,
        }))
        .await;
    // The resize and stdin travel on different channels, so ask again until the new size
    // shows (bounded by the deadline).
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        s.input.send(Input::Data(Bytes::from_static(b"\r"))).await;
        let seen =
            tokio::time::timeout(Duration::from_millis(500), read_until(&mut s, "45 123")).await;
        if matches!(seen, Ok(Ok(_))) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the resize never reached the process");
        }
    }
    // Ctrl-D at the terminal ends `read`, and with it the loop.
    s.input.send(Input::Data(Bytes::from_static(b"\x04"))).await;
    assert_eq!(finish(&mut s).await?.2, Outcome::Exited(0));
    Ok(())
}

#[tokio::test]
async fn shell_falls_back_from_bash_to_sh_on_executable_not_found() -> anyhow::Result<()> {
    // busybox images have no bash (kubesim answers with the runtime's "executable file not
    // found" Status); nginx (Debian-based) has it.
    let mut with_bash = test_pod("debian", false);
    with_bash["spec"]["containers"][0]["image"] = "nginx:1.27".into();
    let env = env_with(&[test_pod("busy", false), with_bash]).await?;
    for (pod, shell) in [("busy", "sh"), ("debian", "bash")] {
        let mut r = req(pod, &[]);
        r.command = Command::Shell;
        r.stdin = true;
        r.tty = true;
        let mut s = exec::open(&env.clients, r).await?;
        s.input
            .send(Input::Data(Bytes::from_static(b"echo marker-$((40+2))\r")))
            .await;
        read_until(&mut s, "marker-42").await?;
        assert_eq!(s.command.borrow().clone(), vec![shell.to_string()], "{pod}");
        s.input
            .send(Input::Data(Bytes::from_static(b"exit 3\r")))
            .await;
        assert_eq!(finish(&mut s).await?.2, Outcome::Exited(3), "{pod}");
    }
    Ok(())
}

#[tokio::test]
async fn a_missing_program_is_named() -> anyhow::Result<()> {
    let env = env_with(&[test_pod("nobash", false)]).await?;
    let mut s = exec::open(&env.clients, req("nobash", &["bash"])).await?;
    match finish(&mut s).await?.2 {
        Outcome::Failed(e @ ExecError::ExecutableNotFound { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("bash was not found in container main of pod nobash"),
                "{text}"
            );
        }
        other => bail!("expected ExecutableNotFound, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn refusals_are_sentences() -> anyhow::Result<()> {
    let mut pending = test_pod("waiting", false);
    pending["metadata"]["annotations"]["kubesim.ferry.dev/behaviour"] = "stuck-pending".into();
    let env = env_with(&[test_pod("two", true)]).await?;
    let client = env.tc.client("demo").await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&Default::default(), &serde_json::from_value(pending)?)
        .await?;

    let err = |r: ExecRequest| {
        let clients = env.clients.clone();
        async move {
            match exec::open(&clients, r).await {
                Ok(_) => bail!("the session opened"),
                Err(e) => Ok(e.to_string()),
            }
        }
    };
    assert_eq!(
        err(req("ghost", &["true"])).await?,
        "pod ghost was not found in namespace default"
    );
    assert_eq!(
        err(req("waiting", &["true"])).await?,
        "pod waiting is not running (phase Pending: its containers have not started), so there is nothing to exec into"
    );
    let mut unknown = req("two", &["true"]);
    unknown.container = Some("nope".into());
    assert_eq!(
        err(unknown).await?,
        "pod two has no container named nope; its containers are: main, second"
    );
    let mut viewer = req("two", &["true"]);
    viewer.context = "demo-viewer".into();
    let text = err(viewer).await?;
    assert!(
        text.contains("may not create pods/exec in namespace default"),
        "{text}"
    );

    // An API server that is not there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://{}", dead.local_addr()?);
    drop(dead);
    let mut config = kube::Config::new(url.parse()?);
    config.connect_timeout = Some(Duration::from_secs(2));
    let clients = FixedClients::new().with("gone", kube::Client::try_from(config)?, url.clone());
    let mut r = req("two", &["true"]);
    r.context = "gone".into();
    let text = match exec::open(&clients, r).await {
        Ok(_) => bail!("opened a session on a dead server"),
        Err(e) => e.to_string(),
    };
    assert!(
        text.starts_with(&format!(
            "cannot reach the API server of context \"gone\" at {url}"
        )),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_the_pod_ends_the_session_with_a_reason() -> anyhow::Result<()> {
    let env = env_with(&[test_pod("doomed", false)]).await?;
    let mut s = exec::open(
        &env.clients,
        req("doomed", &["sh", "-c", "echo up; sleep 100"]),
    )
    .await?;
    read_until(&mut s, "up").await?;
    let pods: Api<Pod> = Api::default_namespaced(env.tc.client("demo").await?);
    pods.delete("doomed", &DeleteParams::default()).await?;
    let (_, _, outcome) = finish(&mut s).await?;
    assert_eq!(
        outcome,
        Outcome::Failed(ExecError::PodDeleted {
            pod: "doomed".into()
        })
    );
    assert_eq!(
        outcome_text(&outcome),
        "the session ended because pod doomed was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn a_broken_connection_ends_the_session_with_a_reason() -> anyhow::Result<()> {
    // The server cuts the stream without a status (kubesim's fault, like a proxy or node
    // going away): kube-rs then leaves its output pipes open, and the session must still end.
    let env = env_with(&[test_pod("cut", false)]).await?;
    let mut s = exec::open(
        &env.clients,
        req("cut", &["sh", "-c", "echo up; sleep 100"]),
    )
    .await?;
    read_until(&mut s, "up").await?;
    ferry_e2e::kubesim::faults::drop_streams(&env.tc.sim.primary());
    match finish(&mut s).await?.2 {
        Outcome::Failed(e @ ExecError::Lost { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("the connection to pod cut was lost before the command finished"),
                "{text}"
            );
        }
        other => bail!("expected Lost, got {other:?}"),
    }
    Ok(())
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Failed(e) => e.to_string(),
        Outcome::Exited(c) => format!("exit {c}"),
    }
}

#[tokio::test]
async fn unread_output_is_held_back_not_buffered() -> anyhow::Result<()> {
    // 64 MiB of output that nobody reads: the bounded queue must hold the command back, so
    // the session task holds a few MiB at most. We read it all afterwards and count.
    let env = env_with(&[test_pod("flood", false)]).await?;
    let mut s = exec::open(
        &env.clients,
        req("flood", &["sh", "-c", "head -c 67108864 /dev/zero"]),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        s.outcome.borrow().is_none(),
        "the command finished while nobody read its output"
    );
    let mut total = 0usize;
    while let Some(o) = tokio::time::timeout(STEP, s.output.recv()).await? {
        if let Output::Stdout(b) = o {
            total += b.len();
        }
    }
    assert_eq!(total, 64 << 20);
    assert_eq!(s.wait().await, Outcome::Exited(0));
    Ok(())
}
