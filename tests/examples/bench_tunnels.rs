//! Tunnel benchmark on kubesim, one run, numbers for `docs/performance.md`:
//!
//! - throughput of one stream through a tunnel vs. direct to the simulated container;
//! - new-connection latency p50/p99 for HTTP requests each on a new connection (and the cost of
//!   opening one port-forward WebSocket alone, which decides whether a spare pre-opened one
//!   would pay off);
//! - recovery time after the serving pod is deleted;
//! - RSS of a headless engine with 100 idle tunnels, and its CPU time with 30 idle tunnels
//!   (measured in a child process that holds only the engine, not kubesim).
//!
//! Run: `cargo run --release -p ferry-e2e --example bench_tunnels [-- --bytes N --requests N]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferry_core::clients::ClientPool;
use ferry_core::engine::{Engine, EngineOptions, TunnelState};
use ferry_e2e::tunnels::{TunnelEnv, hit_pod, http_get, local_v4, spec, tunnel_env};
use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("--engine-only") {
        return runtime.block_on(engine_only(&args[2..]));
    }
    runtime.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let env = tunnel_env().await?;
    let (id, snap) = env.start_active(spec("svc/kubia", &["0:80"])).await?;
    let addr = local_v4(&snap, 0)?;
    let pod = snap.pods[0].clone();
    let direct = env
        .cluster
        .sim
        .primary()
        .containers
        .running("default", &pod)
        .and_then(|p| p.listener(8080))
        .context("the simulated container's own listener")?;

    let bytes = arg("--bytes", 1 << 30);
    let via = download(addr, bytes).await?;
    let straight = download(direct, bytes).await?;
    println!(
        "throughput, one stream of {} MiB: tunnel {via:.0} MiB/s, direct {straight:.0} MiB/s ({:.0} % of direct)",
        bytes >> 20,
        100.0 * via / straight
    );

    let bare = download_portforward(&env, &pod, bytes).await?;
    println!(
        "  the same download over a bare kube-rs Portforwarder (no Ferry engine): {bare:.0} MiB/s ({:.0} % of direct)",
        100.0 * bare / straight
    );

    let requests = arg("--requests", 1000);
    let (p50, p99) = latencies(addr, requests).await?;
    let (d50, d99) = latencies(direct, requests).await?;
    println!(
        "new-connection HTTP latency over {requests} requests: tunnel p50 {p50:.2} ms p99 {p99:.2} ms; direct p50 {d50:.2} ms p99 {d99:.2} ms"
    );
    let (w50, w99) = websocket_open(&env, &pod, 200).await?;
    println!("opening one port-forward WebSocket alone: p50 {w50:.2} ms p99 {w99:.2} ms");
    let (s50, s99) = preopened_requests(&env, &pod, 200).await?;
    println!(
        "an HTTP request over an already-open port-forward stream (what a spare would give): p50 {s50:.2} ms p99 {s99:.2} ms"
    );

    let mut recoveries = Vec::new();
    for _ in 0..5 {
        recoveries.push(recovery(&env, id, addr).await?);
    }
    recoveries.sort_by(f64::total_cmp);
    println!(
        "recovery after deleting the serving pod (5 runs): median {:.0} ms, worst {:.0} ms",
        recoveries[2], recoveries[4]
    );

    let kubeconfig = env.cluster.kubeconfig().to_path_buf();
    let rss = child(&kubeconfig, 100, 0).await?;
    println!(
        "headless engine with 100 idle tunnels: RSS {:.1} MB",
        rss.0 as f64 / 1024.0
    );
    let cpu = child(&kubeconfig, 30, 10).await?;
    println!(
        "headless engine with 30 idle tunnels: {} ms CPU in 10 s ({:.3} % of one core)",
        cpu.1,
        cpu.1 as f64 / 100.0
    );
    Ok(())
}

/// MiB/s of one `GET /bytes/N` download.
async fn download(addr: SocketAddr, bytes: usize) -> anyhow::Result<f64> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0usize;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    if total < bytes {
        bail!("download ended after {total} of {bytes} bytes");
    }
    Ok(total as f64 / started.elapsed().as_secs_f64() / 1048576.0)
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// p50/p99 in ms of `GET /` each on a new connection.
async fn latencies(addr: SocketAddr, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let body = http_get(addr, "/").await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if hit_pod(&body).is_none() {
            bail!("unexpected answer {body:?}");
        }
    }
    Ok(percentiles(samples))
}

/// p50/p99 in ms of opening a port-forward WebSocket (what a spare would save).
async fn websocket_open(env: &TunnelEnv, pod: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let api: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), "default");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut pf = api.portforward(pod, &[8080]).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(pf.take_stream(8080));
        let _ = pf.join().await;
    }
    Ok(percentiles(samples))
}

/// p50/p99 in ms of `GET /` over a WebSocket opened beforehand (the best a spare could do).
async fn preopened_requests(env: &TunnelEnv, pod: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let api: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), "default");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut pf = api.portforward(pod, &[8080]).await?;
        let mut stream = pf.take_stream(8080).context("stream")?;
        let started = Instant::now();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if !answer.windows(10).any(|w| w == b"You've hit") {
            bail!("unexpected answer {:?}", String::from_utf8_lossy(&answer));
        }
        drop(stream);
        let _ = pf.join().await;
    }
    Ok(percentiles(samples))
}

/// MiB/s of one `GET /bytes/N` over a bare kube-rs port-forward stream.
async fn download_portforward(env: &TunnelEnv, pod: &str, bytes: usize) -> anyhow::Result<f64> {
    let api: kube::Api<Pod> = kube::Api::namespaced(env.client.clone(), "default");
    let mut pf = api.portforward(pod, &[8080]).await?;
    let mut stream = pf.take_stream(8080).context("stream")?;
    let request = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    let started = Instant::now();
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0usize;
    while total < bytes {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64() / 1048576.0;
    drop(stream);
    pf.abort();
    if total < bytes {
        bail!("download ended after {total} of {bytes} bytes");
    }
    Ok(rate)
}

/// ms from deleting the serving pod until a request is answered by another pod.
async fn recovery(
    env: &TunnelEnv,
    id: ferry_core::engine::TunnelId,
    addr: SocketAddr,
) -> anyhow::Result<f64> {
    env.wait_ready_pods("app=kubia", 3).await?;
    let serving = hit_pod(&http_get(addr, "/").await?).unwrap_or_default();
    let started = Instant::now();
    env.delete_pod(&serving).await?;
    loop {
        if let Ok(body) = http_get(addr, "/").await
            && hit_pod(&body).is_some_and(|p| p != serving)
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("no recovery within 10 s: {:#?}", env.engine.get(id));
        }
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs this binary as `--engine-only KUBECONFIG N SECS`; returns (RSS kB, CPU ms over SECS).
async fn child(
    kubeconfig: &std::path::Path,
    tunnels: usize,
    secs: u64,
) -> anyhow::Result<(u64, u64)> {
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--engine-only")
        .arg(kubeconfig)
        .arg(tunnels.to_string())
        .arg(secs.to_string())
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<u64> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    match (field("RSS_KB="), field("CPU_MS=")) {
        (Some(rss), Some(cpu)) => Ok((rss, cpu)),
        _ => bail!(
            "engine child failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The child: an engine with N tunnels to svc/kubia, nothing else in the process.
async fn engine_only(args: &[String]) -> anyhow::Result<()> {
    let kubeconfig = args.first().context("kubeconfig")?;
    let n: usize = args.get(1).context("count")?.parse()?;
    let secs: u64 = args.get(2).context("seconds")?.parse()?;
    let pool = ClientPool::from_paths(&[kubeconfig.into()])?;
    let engine = Engine::new(
        &tokio::runtime::Handle::current(),
        Arc::new(pool),
        EngineOptions::default(),
    );
    let ids: Vec<_> = (0..n)
        .map(|_| engine.start(spec("svc/kubia", &["0:80"])))
        .collect();
    for id in ids {
        engine
            .wait_for(id, Duration::from_secs(60), |s| {
                s.state == TunnelState::Active
            })
            .await
            .map_err(|s| anyhow::anyhow!("tunnel not active: {s:#?}"))?;
    }
    // Let start-up garbage settle, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cpu_ms()?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = cpu_ms()? - cpu_before;
    println!("RSS_KB={} CPU_MS={cpu}", rss_kb()?);
    engine.shutdown().await;
    Ok(())
}

fn rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS in /proc/self/status")
}

/// User + system CPU time of this process in ms.
fn cpu_ms() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // Linux reports in clock ticks, 100 per second on every common configuration.
    Ok(ticks * 10)
}
