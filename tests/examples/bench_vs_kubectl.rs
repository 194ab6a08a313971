//! Ferry and `kubectl port-forward` side by side, in one run, on one kubesim, to the same
//! simulated container:
//!
//! - **direct**: the container's own loopback listener (no API server, no forwarder);
//! - **Ferry**: the real `ferry forward` binary of this build profile, over its preferred
//!   transport (SPDY inside a WebSocket, one connection per pod);
//! - **Ferry (v4)**: the same binary with kubesim's `PortForwardWebsockets` gate off, as on an
//!   API server before 1.30, so Ferry falls back to one v4 WebSocket per local connection;
//! - **kubectl (WebSocket)**: `kubectl port-forward`, SPDY inside a WebSocket (its default);
//! - **kubectl (SPDY)**: the legacy `Upgrade: SPDY/3.1` (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
//!
//! Measured for each: one-stream download and upload, 16 parallel downloads, new-connection
//! latency (an HTTP request on a fresh connection each time) with the API server 0 ms and
//! `--rtt` ms away (a delay proxy between the forwarder and kubesim, the same for everyone),
//! `--concurrent` connections open at once (each downloads `--concurrent-bytes`; the
//! forwarder's resident memory is read while all are open and their readers paused, the worst
//! case for buffering), the forwarder's CPU seconds per GiB, and kubesim's own CPU per GiB on
//! that path (kubesim
//! runs on a tokio runtime of its own with named threads, so its share is read from
//! `/proc/self/task`). Every byte is checked: downloads against kubesim's byte pattern, uploads
//! by the count the container reports back.
//!
//! Prints a Markdown table and writes it with an SVG plot to `--out` (default `docs/`).
//!
//! ```text
//! cargo build --release -p ferry
//! cargo run --release -p ferry-e2e --example bench_vs_kubectl [-- --short] [--bytes N]
//!     [--parallel N] [--requests N] [--rtt-requests N] [--rtt MS] [--concurrent N]
//!     [--concurrent-bytes N] [--routes LIST] [--out DIR]
//! ```
//! `--short` (what CI runs, in a debug build) uses small sizes and writes to a temporary
//! directory: it checks that every path works, never how fast. `--routes` (a comma-separated
//! subset of `direct,ferry,ferry-v4,kubectl-ws,kubectl-spdy`) measures only those, for profiling
//! one path, and prints the table without writing it unless `--out` is given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_e2e::delay_proxy::DelayProxy;
use ferry_e2e::kubectl_forward::{self, Transport};
use ferry_e2e::{Kubectl, ferry_bin, kubectl_binary, read_until};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kubesim::{Kubesim, KubesimConfig, Timing, World};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USAGE: &str = "usage: bench_vs_kubectl [--short] [--bytes N] [--parallel N] [--requests N]
    [--rtt-requests N] [--rtt MS] [--concurrent N] [--concurrent-bytes N]
    [--routes direct,ferry,ferry-v4,kubectl-ws,kubectl-spdy] [--out DIR]";

/// Name of kubesim's runtime threads, by which its CPU time is told apart from the client's.
const KUBESIM_THREADS: &str = "kubesim";
const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
/// The kubia pods' `http-hello` container port.
const CONTAINER_PORT: u16 = 8080;

struct Options {
    short: bool,
    bytes: u64,
    parallel: usize,
    requests: usize,
    rtt_requests: usize,
    rtt_ms: u64,
    concurrent: usize,
    concurrent_bytes: u64,
    routes: Vec<Route>,
    /// Where the table and plot go; `None` for a `--routes` subset without `--out`.
    out: Option<PathBuf>,
    /// The output went to a temporary directory of the short mode's own: removed at the end.
    out_is_scratch: bool,
}

impl Options {
    /// The options of `args` (without the program name); `None` when `--help` was asked.
    fn parse(args: &[String]) -> anyhow::Result<Option<Options>> {
        const FLAGS: [&str; 3] = ["--short", "--help", "-h"];
        const VALUED: [&str; 9] = [
            "--bytes",
            "--parallel",
            "--requests",
            "--rtt-requests",
            "--rtt",
            "--concurrent",
            "--concurrent-bytes",
            "--routes",
            "--out",
        ];
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            } else if VALUED.contains(&arg.as_str()) {
                rest.next();
            } else if !FLAGS.contains(&arg.as_str()) {
                bail!("unknown argument {arg:?}\n{USAGE}");
            }
        }
        let short = args.iter().any(|a| a == "--short");
        let value = |name: &str| -> anyhow::Result<Option<u64>> {
            match args.iter().position(|a| a == name) {
                None => Ok(None),
                Some(i) => {
                    let v = args
                        .get(i + 1)
                        .with_context(|| format!("{name} needs a number"))?;
                    Ok(Some(v.parse().with_context(|| {
                        format!("{name} {v}: not a whole number")
                    })?))
                }
            }
        };
        let routes = match args.iter().position(|a| a == "--routes") {
            None => None,
            Some(i) => Some(
                args.get(i + 1)
                    .context("--routes needs a list")?
                    .split(',')
                    .map(Route::from_name)
                    .collect::<anyhow::Result<Vec<Route>>>()?,
            ),
        };
        let out = match args.iter().position(|a| a == "--out") {
            Some(i) => Some(PathBuf::from(
                args.get(i + 1).context("--out needs a directory")?,
            )),
            None if short => {
                Some(std::env::temp_dir().join(format!("ferry-bench-{}", std::process::id())))
            }
            None if routes.is_some() => None,
            None => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")),
        };
        let (bytes, requests, rtt_requests, concurrent, concurrent_bytes) = if short {
            (8 << 20, 30, 10, 50, 64 << 10)
        } else {
            (1 << 30, 1000, 1000, 1000, 1 << 20)
        };
        let at_least_one = |name: &str, n: Option<u64>| -> anyhow::Result<Option<u64>> {
            match n {
                Some(0) => bail!("{name} must be at least 1"),
                n => Ok(n),
            }
        };
        Ok(Some(Options {
            short,
            bytes: at_least_one("--bytes", value("--bytes")?)?.unwrap_or(bytes),
            parallel: at_least_one("--parallel", value("--parallel")?)?.unwrap_or(16) as usize,
            requests: at_least_one("--requests", value("--requests")?)?.unwrap_or(requests)
                as usize,
            rtt_requests: at_least_one("--rtt-requests", value("--rtt-requests")?)?
                .unwrap_or(rtt_requests) as usize,
            rtt_ms: value("--rtt")?.unwrap_or(20),
            concurrent: at_least_one("--concurrent", value("--concurrent")?)?.unwrap_or(concurrent)
                as usize,
            concurrent_bytes: at_least_one("--concurrent-bytes", value("--concurrent-bytes")?)?
                .unwrap_or(concurrent_bytes),
            out_is_scratch: short && !args.iter().any(|a| a == "--out"),
            routes: routes.unwrap_or(Route::ALL.to_vec()),
            out,
        }))
    }
}

/// The five ways to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Direct,
    Ferry,
    FerryV4,
    KubectlWebSocket,
    KubectlSpdy,
}

impl Route {
    const ALL: [Route; 5] = [
        Route::Direct,
        Route::Ferry,
        Route::FerryV4,
        Route::KubectlWebSocket,
        Route::KubectlSpdy,
    ];

    /// The route a `--routes` name stands for.
    fn from_name(name: &str) -> anyhow::Result<Route> {
        Ok(match name {
            "direct" => Route::Direct,
            "ferry" => Route::Ferry,
            "ferry-v4" => Route::FerryV4,
            "kubectl-ws" => Route::KubectlWebSocket,
            "kubectl-spdy" => Route::KubectlSpdy,
            other => bail!(
                "--routes: no route {other:?} (direct, ferry, ferry-v4, kubectl-ws, kubectl-spdy)"
            ),
        })
    }

    fn label(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Ferry => "Ferry",
            Route::FerryV4 => "Ferry (v4)",
            Route::KubectlWebSocket => "kubectl (WebSocket)",
            Route::KubectlSpdy => "kubectl (SPDY)",
        }
    }
}

/// What was measured on one path.
#[derive(Debug, Default, Clone)]
struct Figures {
    download_mib_s: f64,
    upload_mib_s: f64,
    parallel_mib_s: f64,
    latency_ms: Option<(f64, f64)>,
    rtt_latency_ms: Option<(f64, f64)>,
    forwarder_cpu_s_per_gib: Option<f64>,
    kubesim_cpu_s_per_gib: f64,
    concurrent: Concurrent,
}

/// The many-connections phase.
#[derive(Debug, Default, Clone, Copy)]
struct Concurrent {
    /// Connections that failed or delivered a wrong byte.
    errors: usize,
    /// The forwarder's resident memory with every connection open, in MiB.
    rss_mib: Option<f64>,
    /// Its peak resident memory so far (VmHWM), in MiB.
    peak_rss_mib: Option<f64>,
    /// Aggregate download rate once released.
    mib_s: f64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(options) = Options::parse(&args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let kubesim_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(KUBESIM_THREADS)
        .enable_all()
        .build()?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let scratch = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
    let sim = kubesim_runtime.block_on(Kubesim::start(KubesimConfig {
        world: World::demo(),
        timing: Timing::fast(),
        kubeconfig_path: Some(scratch.path().join("kubeconfig")),
        ..KubesimConfig::default()
    }))?;
    let result = client_runtime.block_on(run(&options, &sim, scratch.path()));
    drop(sim);
    kubesim_runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run(options: &Options, sim: &Kubesim, scratch: &Path) -> anyhow::Result<()> {
    let kubectl_bin =
        kubectl_binary().context("kubectl (v1.32) is needed: it is what Ferry is compared with")?;
    let ferry = ferry_bin();
    let pod = first_kubia_pod(sim).await?;
    // A pod reports Running a moment before its container's server listens.
    let direct = ferry_e2e::wait_for(
        "the simulated container's own listener",
        Duration::from_secs(10),
        || {
            let found = sim
                .primary()
                .containers
                .running("default", &pod)
                .and_then(|p| p.listener(CONTAINER_PORT));
            async move { found }
        },
    )
    .await?;
    let server = sim.server_url("demo").context("the demo cluster's URL")?;
    let server_addr: SocketAddr = server
        .trim_start_matches("https://")
        .parse()
        .with_context(|| format!("kubesim's URL {server} is not https://IP:PORT"))?;
    let proxy = DelayProxy::start(server_addr, Duration::from_millis(options.rtt_ms) / 2).await?;
    let kubeconfig_text = std::fs::read_to_string(sim.kubeconfig_path())?;
    let delayed_kubeconfig = scratch.join("kubeconfig-delayed");
    std::fs::write(
        &delayed_kubeconfig,
        kubeconfig_text.replace(&server, &format!("https://{}", proxy.addr())),
    )?;

    println!(
        "# bench_vs_kubectl: {} MiB per stream, {} parallel, {} + {} requests, RTT {} ms{}",
        options.bytes >> 20,
        options.parallel,
        options.requests,
        options.rtt_requests,
        options.rtt_ms,
        if options.short { " (short mode)" } else { "" }
    );
    let mut figures = BTreeMap::new();
    for &path in &options.routes {
        println!("## {}", path.label());
        // Ferry (v4) sees an API server without SPDY tunnelling; everyone else the default.
        sim.primary()
            .port_forward_websockets
            .store(path != Route::FerryV4, std::sync::atomic::Ordering::Relaxed);
        let near = Forwarder::start(
            path,
            &ferry,
            &kubectl_bin,
            sim.kubeconfig_path(),
            scratch,
            &pod,
            direct,
        )
        .await?;
        let mut f = measure(options, &near).await?;
        near.stop().await;
        if path != Route::Direct {
            let far = Forwarder::start(
                path,
                &ferry,
                &kubectl_bin,
                &delayed_kubeconfig,
                scratch,
                &pod,
                direct,
            )
            .await?;
            let latency = latencies(far.addr, options.rtt_requests).await?;
            println!(
                "  new connection at {} ms RTT: p50 {:.2} ms, p99 {:.2} ms",
                options.rtt_ms, latency.0, latency.1
            );
            f.rtt_latency_ms = Some(latency);
            far.stop().await;
        }
        figures.insert(path, f);
    }
    let table = markdown(options, &figures);
    println!("\n{table}");
    let Some(out) = &options.out else {
        return Ok(());
    };
    std::fs::create_dir_all(out)?;
    let table_file = out.join("bench_vs_kubectl.md");
    std::fs::write(&table_file, &table)?;
    let plot_file = out.join("bench_vs_kubectl.svg");
    plot(&plot_file, options, &figures)?;
    println!("wrote {} and {}", table_file.display(), plot_file.display());
    if options.out_is_scratch {
        let _ = std::fs::remove_dir_all(out);
    }
    Ok(())
}

/// Waits for a Running kubia pod (the benchmark's container) and returns its name.
async fn first_kubia_pod(sim: &Kubesim) -> anyhow::Result<String> {
    let client = ferry_e2e::client_for(sim.kubeconfig_path(), "demo").await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    ferry_e2e::wait_for("a Running kubia pod", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=kubia"))
                .await
                .ok()?;
            let mut running: Vec<String> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            running.sort();
            running.into_iter().next()
        }
    })
    .await
}

/// One running way to the container: where to connect, and the forwarder's process.
struct Forwarder {
    addr: SocketAddr,
    process: Option<Process>,
}

enum Process {
    Ferry(tokio::process::Child),
    Kubectl(kubectl_forward::Forward),
}

impl Forwarder {
    async fn start(
        path: Route,
        ferry: &Path,
        kubectl: &Path,
        kubeconfig: &Path,
        scratch: &Path,
        pod: &str,
        direct: SocketAddr,
    ) -> anyhow::Result<Forwarder> {
        let target = format!("pod/{pod}");
        let ports = format!("0:{CONTAINER_PORT}");
        match path {
            Route::Direct => Ok(Forwarder {
                addr: direct,
                process: None,
            }),
            Route::Ferry | Route::FerryV4 => {
                let home = tempfile::Builder::new()
                    .prefix("home-")
                    .tempdir_in(scratch)?;
                let mut child = tokio::process::Command::new(ferry)
                    .args(["forward", &target, &ports, "--context", "demo"])
                    .args(["--namespace", "default", "--address", "127.0.0.1"])
                    .env("KUBECONFIG", kubeconfig)
                    .env("HOME", home.path())
                    .env("FERRY_CONFIG_DIR", home.path().join("config"))
                    .env("XDG_RUNTIME_DIR", home.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("could not start {}", ferry.display()))?;
                let _ = home.keep();
                let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
                let seen = read_until(
                    &mut lines,
                    Duration::from_secs(30),
                    "ferry forward's Forwarding line",
                    |l| l.starts_with("Forwarding from 127.0.0.1:"),
                )
                .await?;
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                let line = seen.last().cloned().unwrap_or_default();
                let addr = line
                    .strip_prefix("Forwarding from ")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|a| a.parse().ok())
                    .with_context(|| format!("no address in {line:?}"))?;
                Ok(Forwarder {
                    addr,
                    process: Some(Process::Ferry(child)),
                })
            }
            Route::KubectlWebSocket | Route::KubectlSpdy => {
                let runner = Kubectl {
                    binary: kubectl.to_path_buf(),
                    kubeconfig: kubeconfig.to_path_buf(),
                    cache_dir: scratch.join("kubectl-cache"),
                    env: Vec::new(),
                };
                let transport = if path == Route::KubectlSpdy {
                    Transport::Upgrade
                } else {
                    Transport::Tunnel
                };
                let forward =
                    kubectl_forward::start(&runner, transport, "default", &target, &ports).await?;
                Ok(Forwarder {
                    addr: forward.addr(),
                    process: Some(Process::Kubectl(forward)),
                })
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        match &self.process {
            None => None,
            Some(Process::Ferry(child)) => child.id(),
            Some(Process::Kubectl(forward)) => forward.child.id(),
        }
    }

    async fn stop(self) {
        match self.process {
            None => {}
            Some(Process::Ferry(mut child)) => {
                let _ = child.kill().await;
            }
            Some(Process::Kubectl(mut forward)) => {
                let _ = forward.child.kill().await;
            }
        }
    }
}

/// CPU seconds so far of the forwarder process and of kubesim's threads.
#[derive(Clone, Copy)]
struct Cpu {
    forwarder: Option<f64>,
    kubesim: f64,
}

impl Cpu {
    fn now(pid: Option<u32>) -> anyhow::Result<Cpu> {
        let forwarder = match pid {
            Some(pid) => Some(stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)?.1),
            None => None,
        };
        let mut kubesim = 0.0;
        for task in std::fs::read_dir("/proc/self/task")? {
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue; // the thread ended meanwhile
            };
            let (name, cpu) = stat_cpu(&stat)?;
            if name == KUBESIM_THREADS {
                kubesim += cpu;
            }
        }
        Ok(Cpu { forwarder, kubesim })
    }
}

/// `(comm, utime + stime in seconds)` of a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> anyhow::Result<(String, f64)> {
    let open = stat.find('(').context("no comm in stat")?;
    let close = stat.rfind(')').context("no comm in stat")?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the comm: state is field 3 of the man page, utime 14 and stime 15.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short stat line")?
            .parse::<f64>()?)
    };
    Ok((name, (ticks(14)? + ticks(15)?) / clock_ticks()))
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

async fn measure(options: &Options, forwarder: &Forwarder) -> anyhow::Result<Figures> {
    let addr = forwarder.addr;
    // Warm up: the first connection pays for name resolution and a first pod lookup.
    http_request(addr).await?;
    let before = Cpu::now(forwarder.pid())?;

    let started = Instant::now();
    download(addr, options.bytes).await?;
    let download_mib_s = options.bytes as f64 / MIB / started.elapsed().as_secs_f64();

    let started = Instant::now();
    upload(addr, options.bytes).await?;
    let upload_mib_s = options.bytes as f64 / MIB / started.elapsed().as_secs_f64();

    let each = options.bytes / options.parallel as u64;
    let started = Instant::now();
    let streams: Vec<_> = (0..options.parallel)
        .map(|_| tokio::spawn(download(addr, each)))
        .collect();
    for stream in streams {
        stream.await??;
    }
    let parallel_mib_s =
        (each * options.parallel as u64) as f64 / MIB / started.elapsed().as_secs_f64();

    let after = Cpu::now(forwarder.pid())?;
    let moved = (2 * options.bytes + each * options.parallel as u64) as f64 / GIB;
    let latency = latencies(addr, options.requests).await?;
    let concurrent = many_at_once(
        addr,
        options.concurrent,
        options.concurrent_bytes,
        forwarder.pid(),
    )
    .await?;
    let f = Figures {
        download_mib_s,
        upload_mib_s,
        parallel_mib_s,
        latency_ms: Some(latency),
        rtt_latency_ms: None,
        forwarder_cpu_s_per_gib: after
            .forwarder
            .zip(before.forwarder)
            .map(|(a, b)| (a - b) / moved),
        kubesim_cpu_s_per_gib: (after.kubesim - before.kubesim) / moved,
        concurrent,
    };
    println!(
        "  download {:.0} MiB/s, upload {:.0} MiB/s, {} parallel {:.0} MiB/s; new connection p50 {:.2} ms p99 {:.2} ms; CPU/GiB forwarder {} kubesim {:.2} s",
        f.download_mib_s,
        f.upload_mib_s,
        options.parallel,
        f.parallel_mib_s,
        latency.0,
        latency.1,
        f.forwarder_cpu_s_per_gib
            .map_or("-".to_string(), |c| format!("{c:.2} s")),
        f.kubesim_cpu_s_per_gib
    );
    let mib = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.1} MiB"));
    println!(
        "  {} connections at once: {} errors, {:.0} MiB/s; forwarder RSS {} with all open, peak {}",
        options.concurrent,
        concurrent.errors,
        concurrent.mib_s,
        mib(concurrent.rss_mib),
        mib(concurrent.peak_rss_mib),
    );
    Ok(f)
}

/// Opens `n` connections at once, each downloading `bytes` over HTTP keep-alive (every byte
/// checked) and then staying open; reads the forwarder's memory once all `n` are open and
/// idle, then has each send a second request on the same connection and read its answer to
/// the end. The aggregate rate is of the concurrent downloads; the peak memory (VmHWM) is
/// read at the end. Failed connections are counted, not fatal.
async fn many_at_once(
    addr: SocketAddr,
    n: usize,
    bytes: u64,
    pid: Option<u32>,
) -> anyhow::Result<Concurrent> {
    let opened = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
    let (release, released) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let opened = opened.clone();
            let mut released = released.clone();
            tokio::spawn(async move {
                let first = tokio::time::timeout(
                    Duration::from_secs(120),
                    keep_alive_download(addr, bytes),
                )
                .await
                .context("no whole download within 120 s")
                .and_then(|r| r);
                opened.wait().await;
                let _ = released.wait_for(|go| *go).await;
                let mut stream = first?;
                kubia_answer(&mut stream)
                    .await
                    .context("the second request on a kept-open connection")
            })
        })
        .collect();
    opened.wait().await;
    let mib_s = (n as u64 * bytes) as f64 / MIB / started.elapsed().as_secs_f64();
    let rss_mib = pid
        .map(|pid| proc_status_mib(pid, "VmRSS:"))
        .transpose()?
        .flatten();
    let _ = release.send(true);
    let mut errors = 0;
    for task in tasks {
        if let Err(err) = task.await? {
            if errors == 0 {
                println!("  first failed connection: {err:#}");
            }
            errors += 1;
        }
    }
    let peak_rss_mib = pid
        .map(|pid| proc_status_mib(pid, "VmHWM:"))
        .transpose()?
        .flatten();
    Ok(Concurrent {
        errors,
        rss_mib,
        peak_rss_mib,
        mib_s,
    })
}

/// `GET /bytes/N` on a new connection kept alive: reads exactly the `Content-Length` body,
/// every byte checked, and returns the connection, still open.
async fn keep_alive_download(addr: SocketAddr, bytes: u64) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: bench\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let (head, first) = read_head(&mut stream).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("download answered {head:?}");
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<u64>().ok())?
        })
        .with_context(|| format!("no Content-Length in {head:?}"))?;
    if length != bytes {
        bail!("asked for {bytes} bytes, Content-Length says {length}");
    }
    let mut body = Body::new();
    body.check(&first)?;
    let mut buf = vec![0u8; 64 * 1024];
    while body.got < bytes {
        let want = (bytes - body.got).min(buf.len() as u64) as usize;
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            bail!("the connection closed after {} of {bytes} bytes", body.got);
        }
        body.check(&buf[..n])?;
    }
    Ok(stream)
}

/// A `/proc/PID/status` figure given in kB, in MiB.
fn proc_status_mib(pid: u32, field: &str) -> anyhow::Result<Option<f64>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0))
}

/// Reads the HTTP response head (up to and including the blank line); returns the head and
/// whatever body bytes came with it.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the connection closed before an HTTP response head");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), body));
        }
        if buf.len() > 64 * 1024 {
            bail!("no end of the HTTP response head in 64 KiB");
        }
    }
}

/// `GET /bytes/N` on a new connection; every byte is checked against kubesim's pattern, which
/// is stricter than comparing digests.
async fn download(addr: SocketAddr, bytes: u64) -> anyhow::Result<()> {
    let (stream, first) = open_download(addr, bytes).await?;
    finish_download(stream, first, bytes).await
}

/// Sends `GET /bytes/N` and reads the response head; returns the body bytes that came with it.
async fn open_download(addr: SocketAddr, bytes: u64) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request =
        format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let (head, first) = read_head(&mut stream).await?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("download answered {head:?}");
    }
    Ok((stream, first))
}

/// Reads the rest of a download to the end of the connection, checking every byte and the
/// length.
async fn finish_download(mut stream: TcpStream, first: Vec<u8>, bytes: u64) -> anyhow::Result<()> {
    let mut body = Body::new();
    body.check(&first)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.check(&buf[..n])?;
    }
    if body.got != bytes {
        bail!("downloaded {} bytes of {bytes}", body.got);
    }
    Ok(())
}

/// A `/bytes/N` body being checked against kubesim's pattern (byte `i` is `i % 256`).
struct Body {
    got: u64,
}

impl Body {
    fn new() -> Self {
        Self { got: 0 }
    }

    fn check(&mut self, data: &[u8]) -> anyhow::Result<()> {
        // Compared with a copy of the pattern (memcmp), so checking takes as little as
        // possible of the two cores the forwarder needs.
        const LONGEST: usize = 256 * 1024;
        static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let pattern = PATTERN.get_or_init(|| (0..LONGEST + 256).map(|i| i as u8).collect());
        let start = (self.got % 256) as usize;
        let differs = data.chunks(LONGEST).enumerate().any(|(i, chunk)| {
            let at = (start + i * LONGEST) % 256;
            chunk != &pattern[at..at + chunk.len()]
        });
        if differs {
            bail!(
                "a downloaded byte differs from the pattern near offset {}",
                self.got
            );
        }
        self.got += data.len() as u64;
        Ok(())
    }
}

/// `POST` of N bytes on a new connection, timed until the container says it has them all.
async fn upload(addr: SocketAddr, bytes: u64) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n"
        );
        write.write_all(head.as_bytes()).await?;
        let block = vec![0x5au8; 256 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            write.write_all(&block[..n]).await?;
            left -= n as u64;
        }
        anyhow::Ok(write)
    });
    let mut answer = Vec::new();
    read.read_to_end(&mut answer).await?;
    let _write = writer.await??;
    let answer = String::from_utf8_lossy(&answer);
    let expected = format!("received {bytes} bytes");
    if !answer.starts_with("HTTP/1.1 200") || !answer.contains(&expected) {
        bail!("upload of {bytes} bytes answered {answer:?}");
    }
    Ok(())
}

/// `GET /` on a fresh connection, whole answer read.
async fn http_request(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    kubia_answer(&mut stream).await
}

/// Sends `GET /` (the last request on the connection) and reads kubia's whole answer.
async fn kubia_answer(stream: &mut TcpStream) -> anyhow::Result<()> {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .context("no answer within 30 s")??;
    if !answer.starts_with(b"HTTP/1.1 200")
        || !String::from_utf8_lossy(&answer).contains("You've hit")
    {
        bail!("not a kubia answer: {:?}", String::from_utf8_lossy(&answer));
    }
    Ok(())
}

/// p50 and p99 in ms of `n` requests, each on a fresh connection, one after another.
async fn latencies(addr: SocketAddr, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        http_request(addr).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.50), at(0.99)))
}

fn markdown(options: &Options, figures: &BTreeMap<Route, Figures>) -> String {
    let get = |p: Route| figures.get(&p).cloned().unwrap_or_default();
    let (direct, ferry, v4, ws, spdy) = (
        get(Route::Direct),
        get(Route::Ferry),
        get(Route::FerryV4),
        get(Route::KubectlWebSocket),
        get(Route::KubectlSpdy),
    );
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "-".into()
        }
    };
    let mut t = String::new();
    t.push_str("| What | direct | Ferry | Ferry (v4) | kubectl (WebSocket) | kubectl (SPDY) | Ferry / kubectl (WebSocket) | Ferry / direct |\n");
    t.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut row = |what: String, v: [f64; 5], fmt: &dyn Fn(f64) -> String, higher_better: bool| {
        let cell = |x: f64| if x.is_nan() { "-".to_string() } else { fmt(x) };
        let (vs_kubectl, vs_direct) = if higher_better {
            (ratio(v[1], v[3]), ratio(v[1], v[0]))
        } else {
            (ratio(v[1], v[3]), "-".to_string())
        };
        t.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} | {vs_kubectl} | {} |\n",
            cell(v[0]),
            cell(v[1]),
            cell(v[2]),
            cell(v[3]),
            cell(v[4]),
            if v[0].is_nan() {
                "-".to_string()
            } else {
                vs_direct
            }
        ));
    };
    let mibs = |x: f64| format!("{x:.0} MiB/s");
    let ms = |x: f64| format!("{x:.2} ms");
    let secs = |x: f64| format!("{x:.2} s");
    let size = options.bytes >> 20;
    row(
        format!("One stream, download {size} MiB"),
        [
            direct.download_mib_s,
            ferry.download_mib_s,
            v4.download_mib_s,
            ws.download_mib_s,
            spdy.download_mib_s,
        ],
        &mibs,
        true,
    );
    row(
        format!("One stream, upload {size} MiB"),
        [
            direct.upload_mib_s,
            ferry.upload_mib_s,
            v4.upload_mib_s,
            ws.upload_mib_s,
            spdy.upload_mib_s,
        ],
        &mibs,
        true,
    );
    row(
        format!("{} parallel downloads, aggregate", options.parallel),
        [
            direct.parallel_mib_s,
            ferry.parallel_mib_s,
            v4.parallel_mib_s,
            ws.parallel_mib_s,
            spdy.parallel_mib_s,
        ],
        &mibs,
        true,
    );
    let lat = |f: &Figures, far: bool, q: usize| {
        let l = if far { f.rtt_latency_ms } else { f.latency_ms };
        l.map_or(f64::NAN, |(p50, p99)| if q == 50 { p50 } else { p99 })
    };
    for (far, rtt) in [(false, 0), (true, options.rtt_ms)] {
        let n = if far {
            options.rtt_requests
        } else {
            options.requests
        };
        for q in [50, 99] {
            row(
                format!("New connection, p{q} of {n}, API server {rtt} ms RTT"),
                [
                    lat(&direct, far, q),
                    lat(&ferry, far, q),
                    lat(&v4, far, q),
                    lat(&ws, far, q),
                    lat(&spdy, far, q),
                ],
                &ms,
                false,
            );
        }
    }
    let cpu = |f: &Figures| f.forwarder_cpu_s_per_gib.unwrap_or(f64::NAN);
    row(
        "Forwarder CPU per GiB".into(),
        [f64::NAN, cpu(&ferry), cpu(&v4), cpu(&ws), cpu(&spdy)],
        &secs,
        false,
    );
    row(
        "kubesim CPU per GiB (server side of the path)".into(),
        [
            direct.kubesim_cpu_s_per_gib,
            ferry.kubesim_cpu_s_per_gib,
            v4.kubesim_cpu_s_per_gib,
            ws.kubesim_cpu_s_per_gib,
            spdy.kubesim_cpu_s_per_gib,
        ],
        &secs,
        false,
    );
    let all = [&direct, &ferry, &v4, &ws, &spdy];
    let n = options.concurrent;
    let count = |x: f64| format!("{x:.0}");
    row(
        format!("{n} connections at once: failed"),
        all.map(|f| f.concurrent.errors as f64),
        &count,
        false,
    );
    row(
        format!(
            "{n} connections at once, {} KiB each: aggregate",
            options.concurrent_bytes >> 10
        ),
        all.map(|f| f.concurrent.mib_s),
        &mibs,
        true,
    );
    let mib = |x: f64| format!("{x:.1} MiB");
    row(
        format!("Forwarder RSS with {n} connections open"),
        all.map(|f| f.concurrent.rss_mib.unwrap_or(f64::NAN)),
        &mib,
        false,
    );
    row(
        "Forwarder peak RSS (VmHWM)".into(),
        all.map(|f| f.concurrent.peak_rss_mib.unwrap_or(f64::NAN)),
        &mib,
        false,
    );
    t
}

/// Grouped bars: throughput (MiB/s) for each measurement, one colour per path.
fn plot(file: &Path, options: &Options, figures: &BTreeMap<Route, Figures>) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let groups = ["download", "upload", "parallel"];
    let value = |f: &Figures, g: usize| match g {
        0 => f.download_mib_s,
        1 => f.upload_mib_s,
        _ => f.parallel_mib_s,
    };
    let max = figures
        .values()
        .flat_map(|f| (0..groups.len()).map(move |g| value(f, g)))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(file, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "Throughput through each path, MiB/s ({} MiB per stream, {} parallel)",
        options.bytes >> 20,
        options.parallel
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..groups.len() as f64, 0f64..max * 1.15)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < groups.len() {
                groups[i].to_string()
            } else {
                String::new()
            }
        })
        .y_desc("MiB/s")
        .draw()?;
    let colours = [
        RGBColor(120, 120, 120),
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    for (i, path) in Route::ALL.iter().enumerate() {
        let Some(f) = figures.get(path) else { continue };
        let colour = colours[i];
        let width = 0.8 / Route::ALL.len() as f64;
        chart
            .draw_series((0..groups.len()).map(|g| {
                let x0 = g as f64 + 0.1 + i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, value(f, g))],
                    colour.filled(),
                )
            }))?
            .label(path.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Options>> {
        Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn help_and_unknown_arguments_run_nothing() {
        assert!(parse(&["--help"]).expect("help is no error").is_none());
        assert!(
            parse(&["--short", "-h"])
                .expect("help is no error")
                .is_none()
        );
        let err = parse(&["--bogus"])
            .err()
            .expect("an unknown argument is an error");
        assert!(err.to_string().contains("--bogus"), "{err}");
        assert!(parse(&["--routes", "ferry,nope"]).is_err());
        assert!(parse(&["--bytes", "0"]).is_err());
    }

    #[test]
    fn a_subset_of_routes_writes_no_files_unless_asked() {
        let subset = parse(&["--routes", "ferry,kubectl-ws"]).unwrap().unwrap();
        assert_eq!(subset.routes, [Route::Ferry, Route::KubectlWebSocket]);
        assert!(subset.out.is_none());
        let asked = parse(&["--routes", "ferry", "--out", "/tmp/x"])
            .unwrap()
            .unwrap();
        assert_eq!(asked.out, Some(PathBuf::from("/tmp/x")));
        let all = parse(&[]).unwrap().unwrap();
        assert_eq!(all.routes, Route::ALL);
        assert!(all.out.is_some_and(|o| o.ends_with("docs")));
    }
}
