//! Helpers shared by the end-to-end tests: start kubesim on ephemeral ports (fast timing, TLS,
//! kubeconfig in a private temporary directory), run the real `kubectl` against it with its own
//! `--kubeconfig` and `--cache-dir`, build kube-rs clients for any context, and wait for a
//! condition with a deadline instead of sleeping and hoping.
//!
//! A missing kubectl fails the test under `CI=true`; elsewhere the test says loudly that it
//! was skipped.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use kubesim::{Kubesim, KubesimConfig, Timing, World};
use tempfile::TempDir;

pub use kubesim;

pub mod delay_proxy;
pub mod kubectl_forward;
pub mod streams;
pub mod tunnels;
pub mod user_env;
pub mod xvfb;

/// How long a single kubectl invocation may take before the test fails.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A kubesim started for one test, with its scratch directory.
pub struct TestCluster {
    pub sim: Kubesim,
    dir: TempDir,
}

/// Starts kubesim with the demo world, fast timing and TLS on ephemeral ports.
pub async fn start_demo() -> anyhow::Result<TestCluster> {
    start_with(KubesimConfig {
        world: World::demo(),
        ..KubesimConfig::default()
    })
    .await
}

/// Starts kubesim with an empty world (only system objects) — for tests that create their own.
pub async fn start_empty() -> anyhow::Result<TestCluster> {
    start_with(KubesimConfig::default()).await
}

/// Starts kubesim with `config`, forcing fast timing and a kubeconfig in the test's own
/// temporary directory (unless the config names one).
pub async fn start_with(mut config: KubesimConfig) -> anyhow::Result<TestCluster> {
    let dir = tempfile::Builder::new()
        .prefix("ferry-e2e-")
        .tempdir()
        .context("could not create a temporary directory for the test")?;
    if config.kubeconfig_path.is_none() {
        config.kubeconfig_path = Some(dir.path().join("kubeconfig"));
    }
    config.timing = Timing::fast();
    if transport_pass_without_spdy() {
        config.port_forward_websockets = false;
    }
    let sim = Kubesim::start(config)
        .await
        .context("kubesim did not start")?;
    Ok(TestCluster { sim, dir })
}

/// Whether this run is the pass of the tunnel tests on the v4 WebSocket transport:
/// `FERRY_TEST_PORT_FORWARD_WEBSOCKETS=false` (set by `tests/run`) starts every test cluster
/// with the `PortForwardWebsockets` gate off, as an API server before 1.30, so Ferry's
/// tunnels fall back from SPDY to the v4 WebSocket.
pub fn transport_pass_without_spdy() -> bool {
    std::env::var("FERRY_TEST_PORT_FORWARD_WEBSOCKETS").as_deref() == Ok("false")
}

impl TestCluster {
    /// The kubeconfig kubesim wrote.
    pub fn kubeconfig(&self) -> &Path {
        self.sim.kubeconfig_path()
    }

    /// The test's scratch directory (deleted when the test ends).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kube-rs client for `context` (`demo`, `demo-restricted`, `demo-viewer`, `staging`).
    pub async fn client(&self, context: &str) -> anyhow::Result<kube::Client> {
        client_for(self.kubeconfig(), context).await
    }

    /// A kubectl runner using this cluster's kubeconfig and a private cache directory.
    /// `None` (after saying so on stderr) when kubectl is missing outside CI.
    pub fn kubectl(&self) -> Option<Kubectl> {
        let binary = kubectl_binary()?;
        Some(Kubectl {
            binary,
            kubeconfig: self.kubeconfig().to_path_buf(),
            cache_dir: self.dir.path().join("kubectl-cache"),
            env: Vec::new(),
        })
    }
}

/// A kube-rs client for one context of a kubeconfig file.
pub async fn client_for(kubeconfig: &Path, context: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("could not read {}", kubeconfig.display()))?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .with_context(|| format!("context {context} is not usable"))?;
    kube::Client::try_from(config).context("could not build a kube client")
}

/// Whether this run is CI (where nothing may be skipped).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The kubectl binary. Missing: panics under `CI=true`, otherwise prints why the test is
/// skipped and returns `None`.
pub fn kubectl_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = std::iter::once(PathBuf::from("/usr/bin/kubectl"))
        .chain(candidates)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !is_ci(),
            "kubectl is not installed, and CI=true forbids skipping the kubectl tests; install kubectl v1.32 at /usr/bin/kubectl"
        );
        eprintln!("SKIPPED: kubectl is not installed (this would fail under CI=true)");
    }
    found
}

/// The outcome of one kubectl run.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails with both streams in the message unless kubectl succeeded.
    pub fn ok(self) -> anyhow::Result<Self> {
        if !self.success {
            bail!(
                "kubectl failed (exit {:?})\nstdout:\n{}\nstderr:\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs kubectl with a fixed kubeconfig and cache directory.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
    /// Extra environment, e.g. `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`.
    pub env: Vec<(String, String)>,
}

impl Kubectl {
    /// The same kubectl with `name=value` in its environment.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .env_remove("KUBECONFIG")
            .env("KUBECTL_INTERACTIVE_DELETE", "false")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `kubectl ARGS` to completion (failing after [`KUBECTL_TIMEOUT`]).
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.run_with_stdin(args, None).await
    }

    /// Runs `kubectl ARGS` with `stdin` fed to it (for `apply -f -`).
    pub async fn run_with_stdin(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<Output> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().context("could not start kubectl")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .context("could not write to kubectl")?;
            drop(pipe);
        }
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} did not finish within {KUBECTL_TIMEOUT:?}"))?
            .context("kubectl could not be waited for")?;
        Ok(Output {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Starts a long-running kubectl (`get -w`, `port-forward`) with stdout and stderr piped;
    /// it is killed when the child is dropped.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<tokio::process::Child> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().context("could not start kubectl")
    }
}

/// Calls `check` until it returns `Some`, or fails after `deadline` naming `what` was awaited.
/// Polls every 20 ms; prefer waiting on an event where one exists.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= until {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads lines from a child's stdout until one satisfies `matches`, or fails after `deadline`.
/// Returns every line read so far (the last one matched).
pub async fn read_until<R>(
    lines: &mut tokio::io::Lines<R>,
    deadline: Duration,
    what: &str,
    mut matches: impl FnMut(&str) -> bool,
) -> anyhow::Result<Vec<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    let mut seen = Vec::new();
    let result = tokio::time::timeout(deadline, async {
        while let Some(line) = lines.next_line().await? {
            let hit = matches(&line);
            seen.push(line);
            if hit {
                return Ok::<bool, std::io::Error>(true);
            }
        }
        Ok(false)
    })
    .await;
    match result {
        Ok(Ok(true)) => Ok(seen),
        Ok(Ok(false)) => bail!("output ended before {what}; saw:\n{}", seen.join("\n")),
        Ok(Err(e)) => Err(e).context("could not read output"),
        Err(_) => bail!(
            "timed out after {deadline:?} waiting for {what}; saw:\n{}",
            seen.join("\n")
        ),
    }
}

/// The `ferry` binary of this build: `target/<profile>/ferry`, next to the running test's own
/// `deps/` directory. Panics with what to do when it has not been built (`cargo build -p ferry`;
/// `tests/run` builds every target first).
pub fn ferry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ferry"))
        .expect("target directory");
    let release = bin.parent().and_then(Path::file_name) == Some("release".as_ref());
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build {}-p ferry`",
        bin.display(),
        if release { "--release " } else { "" }
    );
    bin
}

/// `ferry forward ARGS` with `KUBECONFIG=kubeconfig`, stdout and stderr piped and `RUST_LOG`
/// unset (so its output is what a user sees); killed when dropped.
pub fn ferry_forward(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<tokio::process::Child> {
    tokio::process::Command::new(ferry_bin())
        .arg("forward")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("could not start ferry forward")
}

/// The local address in a "Forwarding from 127.0.0.1:PORT -> …" line.
pub fn forwarding_address(line: &str) -> Option<std::net::SocketAddr> {
    line.strip_prefix("Forwarding from ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}
