//! The instance's figures, one run on one kubesim, with the real `ferry` binary of this build
//! profile in a private user environment (its own HOME, XDG folders and socket):
//!
//! - **window**: `ferry` (the window, on a private Xvfb) with 100 tunnels from an autostart
//!   profile: RSS with the window open, then after it was closed with `HideWindow` (the window's
//!   GL resources are freed; the instance keeps serving); the `status` round trip over the
//!   control socket (p50/p99 of a request on an open connection, and of a whole `ferry status`
//!   process);
//! - **1,000 tunnels**: `ferry daemon`, then `up` of a profile with 1,000 tunnels: the time until
//!   every one is Active, RSS, and CPU while idle for 10 s.
//!
//! Prints a Markdown table (for `docs/performance.md`).
//!
//! ```text
//! cargo build --release -p ferry
//! cargo run --release -p ferry-e2e --example bench_instance [-- --short]
//! ```
//! `--short` (what CI runs, in a debug build) uses 10 and 50 tunnels and a 1 s idle window: it
//! checks that every step works, never how fast.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_core::instance::api::{Request, Response, Status};
use ferry_core::instance::client::Client;
use ferry_core::tunnel::TunnelState;
use ferry_e2e::xvfb::Xvfb;
use ferry_e2e::{ferry_bin, start_demo, wait_for};
use tokio::process::{Child, Command};

struct Sizes {
    window_tunnels: usize,
    many_tunnels: usize,
    idle: Duration,
    status_requests: usize,
    status_processes: usize,
}

fn main() -> anyhow::Result<()> {
    let short = std::env::args().any(|a| a == "--short");
    let sizes = if short {
        Sizes {
            window_tunnels: 10,
            many_tunnels: 50,
            idle: Duration::from_secs(1),
            status_requests: 50,
            status_processes: 5,
        }
    } else {
        Sizes {
            window_tunnels: 100,
            many_tunnels: 1000,
            idle: Duration::from_secs(10),
            status_requests: 1000,
            status_processes: 50,
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(sizes))
}

async fn bench(sizes: Sizes) -> anyhow::Result<()> {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    ferry_e2e::tunnels::wait_ready_pods(&client, "app=kubia", 3).await?;
    let mut rows: Vec<(String, String)> = Vec::new();

    // The window, with its tunnels, open and then closed.
    match Xvfb::start()? {
        None => rows.push(("window figures".into(), "skipped: no Xvfb".into())),
        Some(x) => {
            let env = UserEnv::new(cluster.kubeconfig(), Some(x.display()))?;
            env.write_profile("window", sizes.window_tunnels, true)?;
            let mut gui = env.spawn(&[])?;
            let pid = gui.id().context("ferry runs")?;
            let mut client = env.wait_listening().await?;
            let started = all_active(&mut client, sizes.window_tunnels).await?;
            wait_for("the window to show", Duration::from_secs(30), || {
                let open = x.visible_windows("^Ferry").map(|w| !w.is_empty());
                async move { open.ok().filter(|open| *open) }
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let open_rss = memory(pid)?;
            rows.push((
                format!(
                    "`ferry` (window) with {} tunnels: all Active after",
                    sizes.window_tunnels
                ),
                format!("{:.0} ms", started.as_secs_f64() * 1000.0),
            ));
            rows.push((
                format!("RSS, {} tunnels, window open", sizes.window_tunnels),
                open_rss,
            ));
            expect_ok(client.request(Request::HideWindow).await?)?;
            wait_for("the window to close", Duration::from_secs(30), || {
                let open = x.visible_windows("^Ferry").map(|w| !w.is_empty());
                async move { open.ok().filter(|open| !*open) }
            })
            .await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            rows.push((
                format!(
                    "RSS, {} tunnels, after the window was closed",
                    sizes.window_tunnels
                ),
                memory(pid)?,
            ));

            let mut times = Vec::with_capacity(sizes.status_requests);
            for _ in 0..sizes.status_requests {
                let t = Instant::now();
                let status = status(&mut client).await?;
                times.push(t.elapsed());
                if status.tunnels.len() != sizes.window_tunnels {
                    bail!("status listed {} tunnels", status.tunnels.len());
                }
            }
            rows.push((
                format!(
                    "status request on an open connection, {} tunnels (p50 / p99)",
                    sizes.window_tunnels
                ),
                percentiles(&mut times),
            ));
            let mut times = Vec::with_capacity(sizes.status_processes);
            for _ in 0..sizes.status_processes {
                let t = Instant::now();
                let out = env.command(&["status"]).output().await?;
                times.push(t.elapsed());
                if !out.status.success() {
                    bail!(
                        "ferry status failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            rows.push((
                "`ferry status` process, start to exit (p50 / p99)".into(),
                percentiles(&mut times),
            ));
            expect_ok(client.request(Request::Quit).await?)?;
            let exit = tokio::time::timeout(Duration::from_secs(10), gui.wait()).await??;
            if !exit.success() {
                bail!("ferry exited with {exit}");
            }
        }
    }

    // 1,000 tunnels from one profile on `ferry daemon`.
    let env = UserEnv::new(cluster.kubeconfig(), None)?;
    env.write_profile("many", sizes.many_tunnels, false)?;
    let mut daemon = env.spawn(&["daemon"])?;
    let pid = daemon.id().context("ferry daemon runs")?;
    let mut client = env.wait_listening().await?;
    let baseline = rss_mib(pid)?;
    let t = Instant::now();
    match client
        .request(Request::Up {
            profiles: vec!["many".into()],
        })
        .await?
    {
        Response::Started { started, .. } if started.len() == sizes.many_tunnels => {}
        other => bail!("up answered {other:?}"),
    }
    let requested = t.elapsed();
    let active = all_active(&mut client, sizes.many_tunnels).await? + requested;
    rows.push((
        format!(
            "`ferry daemon`: `up` of a profile with {} tunnels until all are Active",
            sizes.many_tunnels
        ),
        format!("{:.0} ms", active.as_secs_f64() * 1000.0),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    rows.push((
        format!("RSS, idle daemon / with {} tunnels", sizes.many_tunnels),
        format!("{baseline:.1} MiB / {}", memory(pid)?),
    ));
    let before = cpu_seconds(pid)?;
    tokio::time::sleep(sizes.idle).await;
    let used = cpu_seconds(pid)? - before;
    rows.push((
        format!("CPU while idle with {} tunnels", sizes.many_tunnels),
        format!(
            "{:.2} % of one core ({:.3} s in {} s)",
            used / sizes.idle.as_secs_f64() * 100.0,
            used,
            sizes.idle.as_secs()
        ),
    ));
    let mut times = Vec::with_capacity(sizes.status_requests);
    for _ in 0..sizes.status_requests.min(200) {
        let t = Instant::now();
        status(&mut client).await?;
        times.push(t.elapsed());
    }
    rows.push((
        format!("status request, {} tunnels (p50 / p99)", sizes.many_tunnels),
        percentiles(&mut times),
    ));
    expect_ok(client.request(Request::Quit).await?)?;
    tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await??;

    println!("| What | Measured |\n|---|---|");
    for (what, value) in rows {
        println!("| {what} | {value} |");
    }
    Ok(())
}

/// A private user: HOME, XDG folders, profile folder, the test cluster's kubeconfig.
struct UserEnv {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    display: Option<String>,
}

impl UserEnv {
    fn new(kubeconfig: &Path, display: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
        ferry_e2e::user_env::create(dir.path())?;
        Ok(Self {
            dir,
            kubeconfig: kubeconfig.to_path_buf(),
            display: display.map(str::to_string),
        })
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = ferry_e2e::user_env::command(
            self.dir.path(),
            &self.kubeconfig,
            self.display.as_deref(),
            &ferry_bin(),
            args,
        );
        cmd.stdout(Stdio::null());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        Ok(self.command(args).spawn()?)
    }

    /// One profile of `count` tunnels to the kubia service, each on a free loopback port.
    fn write_profile(&self, name: &str, count: usize, autostart: bool) -> anyhow::Result<()> {
        let mut toml =
            format!("version = 1\n\n[[profile]]\nname = \"{name}\"\nautostart = {autostart}\n");
        for _ in 0..count {
            toml.push_str(
                "\n[[profile.tunnel]]\ncontext = \"demo\"\nnamespace = \"default\"\ntarget = \"svc/kubia\"\nports = [\"0:80\"]\nbind = [\"127.0.0.1\"]\n",
            );
        }
        std::fs::write(self.path("config").join("profiles.toml"), toml)?;
        Ok(())
    }

    async fn wait_listening(&self) -> anyhow::Result<Client> {
        let socket = self.path("run").join("ferry").join("instance.sock");
        wait_for("the instance to listen", Duration::from_secs(30), || {
            let socket = socket.clone();
            async move { Client::connect_at(&socket).await.ok() }
        })
        .await
    }
}

async fn status(client: &mut Client) -> anyhow::Result<Status> {
    match client.request(Request::Status).await? {
        Response::Status(status) => Ok(status),
        other => bail!("status answered {other:?}"),
    }
}

/// Polls until `count` tunnels are Active (60 s at most); returns how long that took.
async fn all_active(client: &mut Client, count: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let status = status(client).await?;
        let active = status
            .tunnels
            .iter()
            .filter(|t| t.state == TunnelState::Active)
            .count();
        if active == count {
            return Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("only {active} of {count} tunnels are Active after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn expect_ok(response: Response) -> anyhow::Result<()> {
    match response {
        Response::Ok => Ok(()),
        other => bail!("expected ok, got {other:?}"),
    }
}

fn percentiles(times: &mut [Duration]) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.2} / {:.2} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    )
}

/// Resident memory of a process, from `/proc/PID/status`.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    status_mib(pid, "VmRSS")
}

/// RSS, and how much of it is private (anonymous) memory rather than pages of mapped files
/// (the binary, libGL and the Mesa driver), which the kernel can drop and shares between
/// processes.
fn memory(pid: u32) -> anyhow::Result<String> {
    Ok(format!(
        "{:.1} MiB ({:.1} MiB anonymous, {:.1} MiB mapped files)",
        status_mib(pid, "VmRSS")?,
        status_mib(pid, "RssAnon")?,
        status_mib(pid, "RssFile")?
    ))
}

fn status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/PID/status"))?;
    Ok(kib / 1024.0)
}

/// User + system CPU seconds of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .context("no utime/stime in /proc/PID/stat")?;
    Ok(ticks / 100.0)
}
