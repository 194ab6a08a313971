//! The instance end to end: `ferry daemon` started by the test, `ferry up`/`status`/`down`/
//! `forward --detach` from separate processes, the control socket against garbage, huge lines,
//! wrong versions, silent clients and 200 clients at once (a tunnel keeps serving throughout),
//! a stale socket after SIGKILL, two simultaneous starts, another uid, and SIGTERM.
//!
//! Each test has its own HOME / XDG_* / FERRY_CONFIG_DIR, so its instance is private.
//! The `ferry` binary must be built (`cargo build -p ferry`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use ferry_core::instance::api::{Request, Response};
use ferry_core::instance::client::Client;
use ferry_e2e::ferry_bin;
use ferry_e2e::tunnels::{hit_pod, http_get};
use ferry_e2e::{TestCluster, start_demo, wait_for};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

type Result = anyhow::Result<()>;

/// A private user environment: home, runtime, state and config folders.
struct Env {
    dir: TempDir,
    kubeconfig: PathBuf,
    /// Pids of daemons to kill if the test ends early.
    pids: std::sync::Mutex<Vec<u32>>,
    /// The X display the instance may open its window on (none: no graphical session).
    display: Option<String>,
}

impl Env {
    fn new(cluster: &TestCluster) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("ferry-inst-").tempdir()?;
        ferry_e2e::user_env::create(dir.path())?;
        Ok(Self {
            dir,
            kubeconfig: cluster.kubeconfig().to_path_buf(),
            pids: Default::default(),
            display: None,
        })
    }

    fn with_display(mut self, display: &str) -> Self {
        self.display = Some(display.to_string());
        self
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn socket(&self) -> PathBuf {
        self.path("run").join("ferry").join("instance.sock")
    }

    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        ferry_e2e::user_env::command(
            self.dir.path(),
            &self.kubeconfig,
            self.display.as_deref(),
            bin,
            args,
        )
    }

    /// Runs `ferry ARGS` to completion (60 s at most).
    async fn ferry(&self, args: &[&str]) -> anyhow::Result<Output> {
        let child = self.command(&ferry_bin(), args).spawn()?;
        Ok(tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??)
    }

    /// Starts `ferry daemon` (not waiting for it).
    fn spawn_daemon(&self) -> anyhow::Result<Child> {
        self.spawn(&["daemon"])
    }

    /// Starts `ferry ARGS` in the background, killed if the test ends early.
    fn spawn(&self, args: &[&str]) -> anyhow::Result<Child> {
        let child = self.command(&ferry_bin(), args).spawn()?;
        if let Some(pid) = child.id() {
            self.pids.lock().unwrap().push(pid);
        }
        Ok(child)
    }

    /// Starts `ferry daemon` and waits until it answers on its socket.
    async fn daemon(&self) -> anyhow::Result<Child> {
        let child = self.spawn_daemon()?;
        self.wait_listening().await?;
        Ok(child)
    }

    async fn wait_listening(&self) -> anyhow::Result<Client> {
        let socket = self.socket();
        wait_for("the instance to listen", Duration::from_secs(20), || {
            let socket = socket.clone();
            async move { Client::connect_at(&socket).await.ok() }
        })
        .await
    }

    async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect_at(&self.socket()).await?)
    }

    /// `ferry status --json`, parsed.
    async fn status(&self) -> anyhow::Result<Value> {
        let out = self.ferry(&["status", "--json"]).await?;
        anyhow::ensure!(out.status.success(), "status failed: {}", text(&out));
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn write_profiles(&self, toml: &str) -> anyhow::Result<()> {
        Ok(std::fs::write(
            self.path("config").join("profiles.toml"),
            toml,
        )?)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pid in self.pids.lock().unwrap().drain(..) {
            signal(pid, "-KILL");
        }
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tunnels(status: &Value) -> Vec<Value> {
    status["tunnels"].as_array().cloned().unwrap_or_default()
}

/// The first IPv4 local address of a tunnel in `status --json`.
fn local_v4(tunnel: &Value) -> Option<SocketAddr> {
    tunnel["ports"][0]["local"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str()?.parse::<SocketAddr>().ok())
        .find(SocketAddr::is_ipv4)
}

const WEB_PROFILES: &str = r#"version = 1

[[profile]]
name = "web"

[[profile.tunnel]]
context = "demo"
namespace = "default"
target = "svc/kubia"
ports = ["0:80"]

[[profile]]
name = "same-spec"

[[profile.tunnel]]
context = "demo"
namespace = "default"
target = "svc/kubia"
ports = ["0:80"]
"#;

async fn cluster() -> anyhow::Result<TestCluster> {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    ferry_e2e::tunnels::wait_ready_pods(&client, "app=kubia", 3).await?;
    Ok(cluster)
}

/// Waits until `status --json` shows a tunnel matching `pick`, returning it.
async fn wait_tunnel(
    env: &Env,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = env.status().await?;
        if let Some(t) = tunnels(&status).into_iter().find(&pick) {
            return Ok(t);
        }
        anyhow::ensure!(Instant::now() < deadline, "no tunnel {what} in {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn daemon_up_status_down_from_separate_processes_and_sigterm_closes_all() -> Result {
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?;
    env.write_profiles(WEB_PROFILES)?;

    let out = env.ferry(&["status"]).await?;
    assert_eq!(
        out.status.code(),
        Some(3),
        "no instance yet: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no Ferry instance is running"),
        "{}",
        text(&out)
    );
    let out = env.ferry(&["down", "web"]).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let mut daemon = env.daemon().await?;
    let out = env.ferry(&["up", "web"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("started 1 tunnel"),
        "{}",
        text(&out)
    );

    let web = wait_tunnel(&env, "of web, active", |t| {
        t["origin"]["profile"] == "web" && t["state"] == "active"
    })
    .await?;
    let addr = local_v4(&web).expect("web listens on IPv4");
    let pod = hit_pod(&http_get(addr, "/").await?).expect("kubia answers through the tunnel");
    assert!(pod.starts_with("kubia-"), "{pod}");

    // A second profile with the very same spec is its own tunnel with its own origin.
    let out = env.ferry(&["up", "same-spec"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    wait_tunnel(&env, "of same-spec, active", |t| {
        t["origin"]["profile"] == "same-spec" && t["state"] == "active"
    })
    .await?;
    // Up again: nothing new starts.
    let out = env.ferry(&["up", "web"]).await?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("started 0 tunnel(s) of web"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 already running"),
        "{}",
        text(&out)
    );

    let table = env.ferry(&["status"]).await?;
    let shown = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.status.success(), "{}", text(&table));
    for needle in [
        "ORIGIN",
        "profile web",
        "profile same-spec",
        "active",
        "demo/default svc/kubia",
    ] {
        assert!(shown.contains(needle), "{needle} missing in:\n{shown}");
    }
    let status = env.status().await?;
    let log = status["instance"]["log_file"]
        .as_str()
        .expect("a log file is named");
    assert!(
        log.starts_with(env.path("state").to_str().unwrap()),
        "{log}"
    );
    assert!(Path::new(log).is_file(), "{log} exists");

    let out = env.ferry(&["up", "nosuch"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no profile named \"nosuch\""),
        "{}",
        text(&out)
    );

    let out = env.ferry(&["down", "web"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped 1 tunnel"),
        "{}",
        text(&out)
    );
    wait_tunnel(&env, "of web, stopped", |t| {
        t["origin"]["profile"] == "web" && t["state"] == "stopped"
    })
    .await?;
    wait_for("web's port to close", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await?;
    let status = env.status().await?;
    let same = tunnels(&status)
        .into_iter()
        .find(|t| t["origin"]["profile"] == "same-spec")
        .expect("same-spec listed");
    assert_eq!(same["state"], "active", "down web left same-spec alone");
    let other = local_v4(&same).expect("same-spec listens");

    // SIGTERM: every listener (tunnel and control socket) closed within 2 s.
    let pid = daemon.id().expect("running");
    let sent = Instant::now();
    assert!(signal(pid, "-TERM"));
    let exit = tokio::time::timeout(Duration::from_secs(10), daemon.wait()).await??;
    let took = sent.elapsed();
    assert!(exit.success(), "a clean stop: {exit:?}");
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    assert!(
        tokio::net::TcpStream::connect(other).await.is_err(),
        "tunnel port closed"
    );
    assert!(
        UnixStream::connect(env.socket()).await.is_err(),
        "control socket closed"
    );
    assert!(!env.socket().exists(), "socket file removed");
    let out = env.ferry(&["status"]).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    Ok(())
}

#[tokio::test]
async fn forward_detach_starts_a_daemon_and_the_tunnel_outlives_the_cli() -> Result {
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?;
    let out = env
        .ferry(&[
            "forward",
            "svc/kubia",
            "0:80",
            "--context",
            "demo",
            "--detach",
        ])
        .await?;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Forwarding from 127.0.0.1:"))
        .unwrap_or_else(|| panic!("a Forwarding line in {stdout}"));
    let addr: SocketAddr = line["Forwarding from ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()?;
    let status = env.status().await?;
    let pid = status["instance"]["pid"].as_u64().expect("pid") as u32;
    env.pids.lock().unwrap().push(pid);
    // The CLI has exited; the daemon it started serves the tunnel.
    assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    let tunnel = &tunnels(&status)[0];
    assert_eq!(tunnel["origin"], "ad-hoc");
    assert_eq!(tunnel["state"], "active");
    assert_eq!(status["instance"]["has_window"], false);

    // A second --detach uses the same daemon; a port in use fails with exit 1 and a reason.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let out = env
        .ferry(&[
            "forward",
            "svc/kubia",
            &format!("{port}:80"),
            "--context",
            "demo",
            "--address",
            "127.0.0.1",
            "--detach",
        ])
        .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&port.to_string()),
        "{}",
        text(&out)
    );
    let status = env.status().await?;
    assert_eq!(
        status["instance"]["pid"].as_u64(),
        Some(pid as u64),
        "same daemon"
    );
    // Removal is applied by the engine a moment later.
    wait_for(
        "the failed tunnel to be taken away",
        Duration::from_secs(5),
        || async {
            let status = env.status().await.ok()?;
            (tunnels(&status).len() == 1).then_some(())
        },
    )
    .await?;

    // A typo fails at once with kubectl's reason, instead of waiting out the 60 s.
    let started = Instant::now();
    let out = env
        .ferry(&["forward", "svc/nope", "0:80", "--detach"])
        .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not found") && stderr.contains("nope"),
        "{}",
        text(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    wait_for(
        "the typo's tunnel to be taken away",
        Duration::from_secs(5),
        || async {
            let status = env.status().await.ok()?;
            (tunnels(&status).len() == 1).then_some(())
        },
    )
    .await?;

    let mut client = env.client().await?;
    assert_eq!(client.request(Request::Quit).await?, Response::Ok);
    wait_for("the daemon to exit", Duration::from_secs(5), || async {
        (!signal(pid, "-0")).then_some(())
    })
    .await?;
    Ok(())
}

/// A line of JSON from a raw connection (5 s at most).
async fn read_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> anyhow::Result<Option<Value>> {
    match tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await?? {
        Some(line) => Ok(Some(serde_json::from_str(&line)?)),
        None => Ok(None),
    }
}

async fn raw(
    env: &Env,
) -> anyhow::Result<(
    tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    tokio::net::unix::OwnedWriteHalf,
)> {
    let (read, write) = UnixStream::connect(env.socket()).await?.into_split();
    Ok((BufReader::new(read).lines(), write))
}

const HELLO: &[u8] = b"{\"hello\":{\"version\":1,\"client\":\"test\"}}\n";

#[tokio::test]
async fn bad_clients_never_disturb_the_instance_or_its_tunnel() -> Result {
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?;
    let _daemon = env.daemon().await?;
    let out = env
        .ferry(&[
            "forward",
            "svc/kubia",
            "0:80",
            "--context",
            "demo",
            "--detach",
        ])
        .await?;
    assert!(out.status.success(), "{}", text(&out));
    let status = env.status().await?;
    let addr = local_v4(&tunnels(&status)[0]).expect("listening");

    // Traffic through the tunnel for the whole test.
    let stop = new_flag();
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(addr, "/").await {
                    Ok(body) if hit_pod(&body).is_some() => ok += 1,
                    Ok(body) => failed.push(body),
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };

    // Garbage before the hello: an error line, then the connection is closed.
    let (mut lines, mut write) = raw(&env).await?;
    write.write_all(b"\x00\xff garbage {{{\n").await?;
    let answer = read_line(&mut lines).await?.expect("an error line");
    assert_eq!(answer["error"]["error"]["kind"], "bad-request", "{answer}");
    assert_eq!(
        read_line(&mut lines).await?,
        None,
        "closed after a bad hello"
    );

    // Garbage after the hello: an error line, and the connection still serves.
    let (mut lines, mut write) = raw(&env).await?;
    write.write_all(HELLO).await?;
    let hello = read_line(&mut lines).await?.expect("hello");
    assert_eq!(hello["hello"]["version"], 1, "{hello}");
    write
        .write_all(b"not json\n{\"request\":{\"id\":5,\"request\":{\"type\":\"format-disk\"}}}\n")
        .await?;
    let first = read_line(&mut lines).await?.expect("error for not json");
    assert_eq!(first["error"]["error"]["kind"], "bad-request", "{first}");
    let second = read_line(&mut lines)
        .await?
        .expect("error for the unknown request");
    assert_eq!(second["error"]["id"], 5, "the id is echoed: {second}");
    write
        .write_all(b"{\"request\":{\"id\":6,\"request\":{\"type\":\"status\"}}}\n")
        .await?;
    let status = read_line(&mut lines).await?.expect("status answer");
    assert_eq!(status["response"]["id"], 6);
    assert_eq!(status["response"]["response"]["type"], "status", "{status}");

    // A 10 MB line: refused as too long, connection closed.
    let (mut lines, mut write) = raw(&env).await?;
    write.write_all(HELLO).await?;
    read_line(&mut lines).await?.expect("hello");
    let big = vec![b'a'; 10 * 1024 * 1024];
    let writer = tokio::spawn(async move {
        // The instance stops reading after 1 MiB; the rest may fail to send.
        let _ = write.write_all(&big).await;
        let _ = write.write_all(b"\n").await;
    });
    let answer = read_line(&mut lines).await?.expect("too-long error");
    assert_eq!(answer["error"]["error"]["kind"], "too-long", "{answer}");
    assert_eq!(
        read_line(&mut lines).await?,
        None,
        "closed after a too-long line"
    );
    let _ = writer.await;

    // A wrong protocol version: refused with both versions named.
    let (mut lines, mut write) = raw(&env).await?;
    write.write_all(b"{\"hello\":{\"version\":999}}\n").await?;
    let answer = read_line(&mut lines).await?.expect("version error");
    assert_eq!(answer["error"]["error"]["kind"], "version", "{answer}");
    let message = answer["error"]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("999") && message.contains('1'),
        "{message}"
    );
    assert_eq!(read_line(&mut lines).await?, None);

    // Silent clients (never a hello) and a client that vanishes mid-line.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(UnixStream::connect(env.socket()).await?);
    }
    {
        let mut half = UnixStream::connect(env.socket()).await?;
        half.write_all(b"{\"hello\":{\"vers").await?;
    }
    let started = Instant::now();
    let out = env.ferry(&["status", "--json"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "status answered while clients are silent"
    );

    // 200 clients at once, each asking for the status.
    let socket = env.socket();
    let mut many = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let socket = socket.clone();
        many.spawn(async move {
            let mut client = Client::connect_at(&socket).await?;
            match client.request(Request::Status).await? {
                Response::Status(s) => Ok::<usize, anyhow::Error>(s.tunnels.len()),
                other => anyhow::bail!("unexpected {other:?}"),
            }
        });
    }
    let mut answered = 0;
    while let Some(done) = many.join_next().await {
        assert_eq!(done??, 1);
        answered += 1;
    }
    assert_eq!(answered, 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.await?;
    assert!(
        failed.is_empty(),
        "the tunnel failed while clients misbehaved: {failed:?}"
    );
    assert!(ok >= 1, "no request went through during the test");
    assert!(
        hit_pod(&http_get(addr, "/").await?).is_some(),
        "the tunnel still serves after all of it"
    );
    drop(silent);
    Ok(())
}

fn new_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_two_starts_leave_one() -> Result {
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?;
    let mut first = env.daemon().await?;
    let first_pid = first.id().expect("running");
    assert!(signal(first_pid, "-KILL"));
    first.wait().await?;
    assert!(
        env.socket().exists(),
        "SIGKILL leaves the socket file behind"
    );
    assert!(
        UnixStream::connect(env.socket()).await.is_err(),
        "nobody listens on it"
    );

    let mut second = env.daemon().await?;
    let status = env.status().await?;
    assert_eq!(
        status["instance"]["pid"].as_u64(),
        second.id().map(u64::from)
    );
    assert!(signal(second.id().expect("running"), "-TERM"));
    assert!(second.wait().await?.success());

    // Two at the same moment: exactly one keeps running, the other says why and exits 1.
    let a = env.spawn_daemon()?;
    let b = env.spawn_daemon()?;
    let (a_pid, b_pid) = (a.id().unwrap(), b.id().unwrap());
    let mut children = [a, b];
    let exited = wait_for("one of the two to give up", Duration::from_secs(20), || {
        let found = children
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.try_wait().ok().flatten().map(|s| (i, s)));
        async move { found }
    })
    .await?;
    let (loser, status) = exited;
    assert_eq!(status.code(), Some(1), "the second start fails cleanly");
    let mut stderr = String::new();
    if let Some(mut err) = children[loser].stderr.take() {
        use tokio::io::AsyncReadExt;
        err.read_to_string(&mut stderr).await?;
    }
    assert!(stderr.contains("already running"), "{stderr}");
    let winner = if loser == 0 { b_pid } else { a_pid };
    let running = env.status().await?;
    assert_eq!(running["instance"]["pid"].as_u64(), Some(winner as u64));
    assert!(
        children[1 - loser].try_wait()?.is_none(),
        "the winner keeps running"
    );
    Ok(())
}

/// Runs the client as `nobody`; the test runs as root (in CI it must: never skipped there).
#[tokio::test]
async fn another_user_cannot_connect() -> Result {
    let uid = std::process::Command::new("id").arg("-u").output()?;
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    if !root {
        assert!(
            !ferry_e2e::is_ci(),
            "under CI this test must run as root, to run the client as another user"
        );
        eprintln!("SKIPPED another_user_cannot_connect: needs root to switch users");
        return Ok(());
    }
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?;
    let _daemon = env.daemon().await?;
    // A copy of the binary that `nobody` may run.
    let bin_dir = tempfile::Builder::new().prefix("ferry-bin-").tempdir()?;
    let bin = bin_dir.path().join("ferry");
    std::fs::copy(ferry_bin(), &bin)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(env.path("run"), std::fs::Permissions::from_mode(0o755))?;

    let as_nobody = |args: &[&str]| {
        let mut cmd = env.command(Path::new("setpriv"), &[]);
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&bin)
            .args(args);
        cmd
    };
    // The folder is 0700: the socket cannot even be reached.
    let out = as_nobody(&["status", "--json"]).output().await?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "nothing shown: {}", text(&out));

    // Even with the folder and socket opened up, the peer uid check closes the connection.
    let ferry_dir = env.path("run").join("ferry");
    std::fs::set_permissions(&ferry_dir, std::fs::Permissions::from_mode(0o777))?;
    std::fs::set_permissions(env.socket(), std::fs::Permissions::from_mode(0o666))?;
    let out = as_nobody(&["status", "--json"]).output().await?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(out.stdout.is_empty(), "nothing shown: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("closed the connection"),
        "{}",
        text(&out)
    );
    // The owner still gets in.
    let out = env.ferry(&["status", "--json"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    Ok(())
}

/// `ferry` is an instance with its window: the CLI sees the window's tunnels, the window shows
/// and hides (closed for real) five times while the tunnels keep serving, a second `ferry`
/// launch shows the window and exits 0, `ferry --demo` is an instance of its own, and
/// `ferry quit` ends it all.
#[tokio::test]
async fn the_window_is_a_view_that_comes_and_goes_while_the_tunnels_stay() -> Result {
    let Some(x) = ferry_e2e::xvfb::Xvfb::start()? else {
        return Ok(());
    };
    let cluster = cluster().await?;
    let env = Env::new(&cluster)?.with_display(x.display());
    env.write_profiles(&WEB_PROFILES.replacen(
        "name = \"web\"\n",
        "name = \"web\"\nautostart = true\n",
        1,
    ))?;
    let mut gui = env.spawn(&[])?;
    let mut client = env.wait_listening().await?;
    let window_visible = |want: bool| {
        let x = &x;
        async move {
            wait_for(
                if want {
                    "the window to show"
                } else {
                    "the window to close"
                },
                Duration::from_secs(20),
                || {
                    let seen = x.visible_windows("^Ferry").map(|w| !w.is_empty());
                    async move { seen.ok().filter(|seen| *seen == want) }
                },
            )
            .await
        }
    };
    window_visible(true).await?;

    // The window's instance started the autostart profile; another process sees it.
    let web = wait_tunnel(&env, "of profile web, active", |t| {
        t["origin"]["profile"] == "web" && t["state"] == "active"
    })
    .await?;
    let web_addr = local_v4(&web).expect("an IPv4 listener");
    let status = env.status().await?;
    assert_eq!(status["instance"]["pid"].as_u64(), gui.id().map(u64::from));
    assert_eq!(status["instance"]["has_window"], true);
    assert_eq!(status["instance"]["window_open"], true);
    // `forward --detach` adds to the same instance (no daemon of its own).
    let out = env
        .ferry(&["forward", "--detach", "svc/kubia", "0:80"])
        .await?;
    assert!(out.status.success(), "{}", text(&out));
    let ad_hoc = wait_tunnel(&env, "ad hoc, active", |t| {
        t["origin"] == "ad-hoc" && t["state"] == "active"
    })
    .await?;
    let ad_hoc_addr = local_v4(&ad_hoc).expect("an IPv4 listener");
    assert_eq!(
        env.status().await?["instance"]["pid"].as_u64(),
        gui.id().map(u64::from)
    );

    for round in 0..5 {
        match client.request(Request::HideWindow).await? {
            Response::Ok => {}
            other => anyhow::bail!("hide-window answered {other:?}"),
        }
        window_visible(false).await?;
        assert_eq!(env.status().await?["instance"]["window_open"], false);
        if round == 0 {
            // Ten seconds with the window closed: every request is served.
            let until = Instant::now() + Duration::from_secs(10);
            let mut served = 0;
            while Instant::now() < until {
                for addr in [web_addr, ad_hoc_addr] {
                    assert!(
                        hit_pod(&http_get(addr, "/").await?).is_some(),
                        "{addr} serves with the window closed"
                    );
                    served += 1;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(served >= 20, "only {served} requests in 10 s");
        }
        for addr in [web_addr, ad_hoc_addr] {
            assert!(
                hit_pod(&http_get(addr, "/").await?).is_some(),
                "round {round}: {addr} serves with the window closed"
            );
        }
        // A second launch asks the running instance for its window and exits 0.
        let started = Instant::now();
        let out = env.ferry(&[]).await?;
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("already running"),
            "{}",
            text(&out)
        );
        eprintln!("round {round}: second launch took {:?}", started.elapsed());
        window_visible(true).await?;
        assert!(
            gui.try_wait()?.is_none(),
            "the first instance keeps running"
        );
    }
    for addr in [web_addr, ad_hoc_addr] {
        assert!(hit_pod(&http_get(addr, "/").await?).is_some());
    }

    // The demo is an instance of its own: the real one is not disturbed.
    let mut demo = env.spawn(&["--demo"])?;
    let demo_status = wait_for("the demo instance", Duration::from_secs(30), || {
        let out = env.ferry(&["status", "--demo", "--json"]);
        async move {
            let out = out.await.ok()?;
            serde_json::from_slice::<Value>(&out.stdout).ok()
        }
    })
    .await?;
    assert_eq!(demo_status["instance"]["demo"], true);
    assert_eq!(
        demo_status["instance"]["pid"].as_u64(),
        demo.id().map(u64::from)
    );
    assert_eq!(tunnels(&env.status().await?).len(), 2);
    let out = env.ferry(&["quit", "--demo"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(demo.wait().await?.success());

    // `ferry quit` ends the instance: the window, every listener, the process.
    let out = env.ferry(&["quit"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        out.stderr.is_empty(),
        "quit says nothing wrong: {}",
        text(&out)
    );
    let exit = tokio::time::timeout(Duration::from_secs(5), gui.wait()).await??;
    assert!(exit.success(), "exit status {exit}");
    for addr in [web_addr, ad_hoc_addr] {
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "{addr} is closed"
        );
    }
    let out = env.ferry(&["status"]).await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    Ok(())
}

/// The desktop's tray host, played by the test: a StatusNotifierWatcher that records the
/// items that register.
struct TestWatcher {
    items: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl TestWatcher {
    async fn register_status_notifier_item(&self, service: &str) {
        self.items.lock().unwrap().push(service.to_string());
    }

    async fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items.lock().unwrap().clone()
    }

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }
}

/// The desktop's notification server, played by the test: records (summary, body).
struct TestNotifications {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl TestNotifications {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        _app_name: &str,
        _replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        body: &str,
        _actions: Vec<String>,
        _hints: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut seen = self.seen.lock().unwrap();
        seen.push((summary.to_string(), body.to_string()));
        seen.len() as u32
    }

    async fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    async fn get_server_information(&self) -> (String, String, String, String) {
        (
            "ferry-test".into(),
            "ferry".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    async fn close_notification(&self, _id: u32) {}
}

/// The session bus of this test run; missing under CI=true is a failure.
fn session_bus() -> anyhow::Result<bool> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return Ok(true);
    }
    anyhow::ensure!(
        !ferry_e2e::is_ci(),
        "no D-Bus session bus (tests/run starts one with dbus-run-session); CI=true requires it"
    );
    eprintln!("skipped: no D-Bus session bus");
    Ok(false)
}

/// dbusmenu's `(ia{sv}av)`: an entry's id, its properties and its children.
type MenuLayout = (
    i32,
    std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
    Vec<zbus::zvariant::OwnedValue>,
);

/// One menu entry of the item's dbusmenu layout: (id, label).
fn menu_entries(layout: &zbus::zvariant::Value<'_>, out: &mut Vec<(i32, String)>) {
    use zbus::zvariant::Value;
    let Value::Structure(s) = layout else { return };
    let fields = s.fields();
    if let [Value::I32(id), Value::Dict(props), Value::Array(children)] = fields {
        if let Ok(Some(label)) = props.get::<_, String>(&"label") {
            out.push((*id, label));
        }
        for child in children.iter() {
            let child = match child {
                Value::Value(inner) => inner.as_ref(),
                other => other,
            };
            menu_entries(child, out);
        }
    }
}

/// The tray item registers with the desktop's watcher, its icon and status change when a
/// tunnel fails, its profile entry starts that profile (curl through it), and Quit from the
/// menu ends the daemon and takes the item off the bus.
#[tokio::test]
async fn the_tray_item_shows_the_worst_state_and_its_menu_drives_the_instance() -> Result {
    use zbus::zvariant::{OwnedValue, Value};
    if !session_bus()? {
        return Ok(());
    }
    let items = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _watcher = zbus::connection::Builder::session()?
        .name("org.kde.StatusNotifierWatcher")?
        .serve_at(
            "/StatusNotifierWatcher",
            TestWatcher {
                items: items.clone(),
            },
        )?
        .build()
        .await?;
    let notified = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let _notifications = zbus::connection::Builder::session()?
        .name("org.freedesktop.Notifications")?
        .serve_at(
            "/org/freedesktop/Notifications",
            TestNotifications {
                seen: notified.clone(),
            },
        )?
        .build()
        .await?;
    let Some(x) = ferry_e2e::xvfb::Xvfb::start()? else {
        return Ok(());
    };
    let cluster = cluster().await?;
    // A daemon in a graphical session: no window until the tray's Show asks for one.
    let env = Env::new(&cluster)?.with_display(x.display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    env.write_profiles(&format!(
        "{WEB_PROFILES}
[[profile]]
name = \"broken\"

[[profile.tunnel]]
context = \"demo\"
namespace = \"default\"
target = \"svc/kubia\"
ports = [\"{port}:80\"]
bind = [\"127.0.0.1\"]
"
    ))?;
    let mut daemon = env.daemon().await?;
    let pid = daemon.id().expect("running");
    let service = wait_for("the tray item to register", Duration::from_secs(20), || {
        let found = items
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.contains(&format!("-{pid}-")))
            .cloned();
        async move { found }
    })
    .await?;
    let bus = zbus::Connection::session().await?;
    let item = zbus::fdo::PropertiesProxy::builder(&bus)
        .destination(service.as_str())?
        .path("/StatusNotifierItem")?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let menu =
        zbus::Proxy::new(&bus, service.as_str(), "/MenuBar", "com.canonical.dbusmenu").await?;
    // Properties are read fresh each time (no cache): what a tray host sees now.
    let read = |name: &'static str| {
        let item = item.clone();
        async move {
            let interface =
                zbus::names::InterfaceName::from_static_str_unchecked("org.kde.StatusNotifierItem");
            anyhow::Ok(item.get(interface, name).await?)
        }
    };
    let idle_icon = format!("{:?}", read("IconPixmap").await?);
    assert_eq!(String::try_from(read("Status").await?)?, "Active");
    let entries = || {
        let menu = menu.clone();
        async move {
            let (_, layout): (u32, OwnedValue) = menu
                .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
                .await
                .map(|(rev, (id, props, children)): (u32, MenuLayout)| {
                    let structure = zbus::zvariant::StructureBuilder::new()
                        .add_field(id)
                        .add_field(props)
                        .add_field(children)
                        .build()
                        .expect("a layout structure");
                    (
                        rev,
                        OwnedValue::try_from(Value::Structure(structure)).expect("owned"),
                    )
                })?;
            let mut out = Vec::new();
            menu_entries(&layout, &mut out);
            anyhow::Ok(out)
        }
    };
    let click = |id: i32| {
        let menu = menu.clone();
        async move {
            let _: () = menu
                .call("Event", &(id, "clicked", Value::I32(0), 0u32))
                .await?;
            anyhow::Ok(())
        }
    };
    let menu_now = entries().await?;
    let id_of = |entries: &[(i32, String)], prefix: &str| {
        entries
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(id, _)| *id)
            .ok_or_else(|| anyhow::anyhow!("no menu entry {prefix:?} in {entries:?}"))
    };

    // The profile's entry starts it; the tunnel serves.
    click(id_of(&menu_now, "web (")?).await?;
    let web = wait_tunnel(&env, "of profile web, active", |t| {
        t["origin"]["profile"] == "web" && t["state"] == "active"
    })
    .await?;
    assert!(hit_pod(&http_get(local_v4(&web).expect("IPv4"), "/").await?).is_some());
    let active_icon = wait_for("the icon to show Active", Duration::from_secs(10), || {
        let read = read("IconPixmap");
        let idle = idle_icon.clone();
        async move {
            let now = format!("{:?}", read.await.ok()?);
            (now != idle).then_some(now)
        }
    })
    .await?;
    let checked = wait_for("web's entry to be checked", Duration::from_secs(10), || {
        let entries = entries();
        async move {
            entries
                .await
                .ok()?
                .into_iter()
                .find(|(_, l)| l.starts_with("web (1/1)"))
        }
    })
    .await?;
    assert!(checked.1.starts_with("web (1/1)"));

    // The tray's Show opens the window (the daemon had none); Hide closes it; the tunnel
    // serves throughout.
    let web_addr = local_v4(&web).expect("IPv4");
    let window = |want: bool| {
        let x = &x;
        wait_for(
            if want {
                "the window to show"
            } else {
                "the window to close"
            },
            Duration::from_secs(20),
            move || {
                let seen = x.visible_windows("^Ferry").map(|w| !w.is_empty());
                async move { seen.ok().filter(|seen| *seen == want) }
            },
        )
    };
    assert!(x.visible_windows("^Ferry")?.is_empty(), "no window yet");
    for _ in 0..2 {
        click(id_of(&entries().await?, "Show window")?).await?;
        window(true).await?;
        assert!(hit_pod(&http_get(web_addr, "/").await?).is_some());
        let hide = wait_for("the menu to offer Hide", Duration::from_secs(10), || {
            let entries = entries();
            async move { id_of(&entries.await.ok()?, "Hide window").ok() }
        })
        .await?;
        click(hide).await?;
        window(false).await?;
        assert!(hit_pod(&http_get(web_addr, "/").await?).is_some());
        wait_for("the menu to offer Show", Duration::from_secs(10), || {
            let entries = entries();
            async move { id_of(&entries.await.ok()?, "Show window").ok() }
        })
        .await?;
    }

    // A failing profile turns the icon into the failure shape and asks for attention.
    click(id_of(&entries().await?, "broken (")?).await?;
    wait_for(
        "the item to ask for attention",
        Duration::from_secs(15),
        || {
            let status = read("Status");
            async move {
                let status = String::try_from(status.await.ok()?).ok()?;
                (status == "NeedsAttention").then_some(())
            }
        },
    )
    .await?;
    let failed_icon = format!("{:?}", read("IconPixmap").await?);
    assert_ne!(failed_icon, active_icon);
    assert_ne!(failed_icon, idle_icon);
    let tooltip = format!("{:?}", read("ToolTip").await?);
    assert!(
        tooltip.contains("failed") && tooltip.contains("svc/kubia"),
        "{tooltip}"
    );
    // The failure is notified once, naming the tunnel and its profile.
    let (summary, body) = wait_for(
        "a notification of the failure",
        Duration::from_secs(15),
        || {
            let found = notified
                .lock()
                .unwrap()
                .iter()
                .find(|(_, body)| body.contains("of profile broken"))
                .cloned();
            async move { found }
        },
    )
    .await?;
    assert_eq!(summary, "Tunnel svc/kubia failed", "{body}");
    assert!(
        body.contains(&port.to_string()),
        "the reason names the port: {body}"
    );
    assert_eq!(
        notified
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains("of profile broken"))
            .count(),
        1,
        "told once"
    );

    // Quit from the menu: the daemon ends cleanly and the item leaves the bus.
    click(id_of(&entries().await?, "Quit Ferry")?).await?;
    let exit = tokio::time::timeout(Duration::from_secs(5), daemon.wait()).await??;
    assert!(exit.success(), "{exit}");
    let dbus = zbus::fdo::DBusProxy::new(&bus).await?;
    assert!(!dbus.name_has_owner(service.as_str().try_into()?).await?);
    drop(taken);
    Ok(())
}
