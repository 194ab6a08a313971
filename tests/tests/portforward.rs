//! pods/portforward over WebSocket, driven by kube-rs' `Api::<Pod>::portforward` against
//! kubesim over real sockets (TLS, bearer tokens), as Ferry will use it.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_e2e::streams::{create_running_pod, source_sha256, test_pod};
use ferry_e2e::{start_empty, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const STEP: Duration = Duration::from_secs(20);

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
) -> anyhow::Result<String> {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: pod\r\nX-Test: yes\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut body = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut body))
        .await
        .context("HTTP response did not end")??;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Reads until `needle` has arrived. (With several ports on one WebSocket a port's stream does
/// not end when its connection closes: the kubelet closes the WebSocket only when every port
/// is done, and v4 has no per-channel close.)
async fn read_until<S: AsyncRead + Unpin>(stream: &mut S, needle: &str) -> anyhow::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = tokio::time::timeout(STEP, stream.read(&mut buf))
            .await
            .with_context(|| format!("waiting for {needle:?}"))??;
        anyhow::ensure!(
            n > 0,
            "stream ended before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn http_request_through_port_forward_reaches_the_pod() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("hello-1", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("hello-1", &[80]).await?;
    let mut stream = pf.take_stream(80).context("no stream for port 80")?;
    let response = http_get(&mut stream, "/").await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("You've hit hello-1\n"), "{response}");
    Ok(())
}

#[tokio::test]
async fn http_hello_echoes_headers_and_streams_bytes() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("hello-2", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("hello-2", &[80]).await?;
    let mut stream = pf.take_stream(80).context("no stream")?;
    stream
        .write_all(b"GET /headers HTTP/1.1\r\nHost: pod\r\nX-Test: yes\r\n\r\n")
        .await?;
    let text = read_until(&mut stream, "x-test: yes\n").await?;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Same connection (keep-alive): a byte stream.
    let got = http_get(&mut stream, "/bytes/100000").await?;
    assert!(
        got.contains("content-length: 100000"),
        "{}",
        &got[..got.len().min(300)]
    );
    Ok(())
}

/// An upload (`POST`, as `curl -T` or the benchmark sends) is read to its end and counted, so
/// its answer proves the container got every byte; a short body is reported as broken.
#[tokio::test]
async fn http_hello_counts_an_uploaded_body() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("hello-up", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("hello-up", &[80]).await?;
    let mut stream = pf.take_stream(80).context("no stream")?;
    let size = 3_000_001usize;
    let head = format!("POST /upload HTTP/1.1\r\nHost: pod\r\nContent-Length: {size}\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&vec![7u8; size]).await?;
    let text = read_until(&mut stream, "bytes\n").await?;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with(&format!("received {size} bytes\n")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn two_ports_share_one_websocket() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("two-ports", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("two-ports", &[7, 80]).await?;
    let mut echo = pf.take_stream(7).context("no stream for 7")?;
    let mut http = pf.take_stream(80).context("no stream for 80")?;
    echo.write_all(b"ping over port 7").await?;
    let mut buf = [0u8; 16];
    tokio::time::timeout(STEP, echo.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"ping over port 7");
    http.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\n\r\n")
        .await?;
    let response = read_until(&mut http, "You've hit two-ports\n").await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    Ok(())
}

/// How many bytes the big-transfer test moves each way: `KUBESIM_PF_BYTES`, else 1 GiB (about
/// 30 s in a debug build on two cores, most of it the echo upload: kube-rs sends 4 KiB frames).
fn transfer_size() -> u64 {
    std::env::var("KUBESIM_PF_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

/// Writes `len` pseudo-random bytes and reads `len` back concurrently; returns both hashes.
async fn echo_round_trip<S>(stream: S, len: u64) -> anyhow::Result<([u8; 32], [u8; 32])>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        let mut h = Sha256::new();
        let mut block = vec![0u8; 256 * 1024];
        let mut seed = 0x9e37_79b9_u32;
        let mut left = len;
        while left > 0 {
            for b in block.iter_mut().step_by(64) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (seed >> 24) as u8;
            }
            let n = left.min(block.len() as u64) as usize;
            h.update(&block[..n]);
            w.write_all(&block[..n]).await?;
            left -= n as u64;
        }
        anyhow::Ok((h.finalize(), w))
    });
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < len {
        let n = r.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "stream ended after {got} of {len} bytes");
        h.update(&buf[..n]);
        got += n as u64;
    }
    let (sent, _w) = writer.await??;
    Ok((sent.into(), h.finalize().into()))
}

async fn read_exactly_hashed<S: AsyncRead + Unpin>(
    stream: &mut S,
    len: u64,
) -> anyhow::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < len {
        let want = (len - got).min(buf.len() as u64) as usize;
        let n = stream.read(&mut buf[..want]).await?;
        anyhow::ensure!(n > 0, "stream ended after {got} of {len} bytes");
        h.update(&buf[..n]);
        got += n as u64;
    }
    Ok(h.finalize().into())
}

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}

#[tokio::test]
async fn large_transfers_through_echo_and_source_keep_every_byte() -> anyhow::Result<()> {
    let len = transfer_size();
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("bulk", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let cluster = tc.sim.primary();
    let running = wait_for("bulk's simulated containers", STEP, || async {
        cluster.containers.running("default", "bulk")
    })
    .await?;

    // Direct to the simulated container, for comparison.
    let direct =
        tokio::net::TcpStream::connect(running.listener(7).context("no echo listener")?).await?;
    let t = Instant::now();
    let (sent, got) = echo_round_trip(direct, len).await?;
    let direct_echo = t.elapsed();
    assert_eq!(sent, got);

    let mut pf = pods.portforward("bulk", &[7]).await?;
    let stream = pf.take_stream(7).context("no stream for 7")?;
    let t = Instant::now();
    let (sent, got) = echo_round_trip(stream, len).await?;
    let tunnel_echo = t.elapsed();
    assert_eq!(sent, got, "echo through port-forward changed the bytes");

    let mut direct =
        tokio::net::TcpStream::connect(running.listener(19).context("no source")?).await?;
    let t = Instant::now();
    assert_eq!(
        read_exactly_hashed(&mut direct, len).await?,
        source_sha256(len)
    );
    let direct_source = t.elapsed();

    let mut pf = pods.portforward("bulk", &[19]).await?;
    let mut stream = pf.take_stream(19).context("no stream for 19")?;
    let t = Instant::now();
    let hash = read_exactly_hashed(&mut stream, len).await?;
    let tunnel_source = t.elapsed();
    assert_eq!(
        hash,
        source_sha256(len),
        "source through port-forward changed the bytes"
    );

    eprintln!(
        "THROUGHPUT {} MiB: echo direct {:.0} MiB/s ({direct_echo:?}), echo via kubesim {:.0} MiB/s ({tunnel_echo:?}); \
         source direct {:.0} MiB/s ({direct_source:?}), source via kubesim {:.0} MiB/s ({tunnel_source:?})",
        len >> 20,
        mib_per_s(len, direct_echo),
        mib_per_s(len, tunnel_echo),
        mib_per_s(len, direct_source),
        mib_per_s(len, tunnel_source),
    );
    Ok(())
}

#[tokio::test]
async fn two_hundred_concurrent_websockets_are_served() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("busy", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut forwarders = Vec::new();
    for _ in 0..200 {
        forwarders.push(pods.portforward("busy", &[80]).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut pf in forwarders {
        tasks.spawn(async move {
            let mut stream = pf.take_stream(80).context("no stream")?;
            let response = http_get(&mut stream, "/").await?;
            anyhow::ensure!(response.ends_with("You've hit busy\n"), "{response}");
            drop(pf);
            anyhow::Ok(())
        });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        result??;
        ok += 1;
    }
    assert_eq!(ok, 200);
    Ok(())
}

#[tokio::test]
async fn closed_port_reports_the_kubelet_error() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("shut", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    for port in [13u16, 4444] {
        let mut pf = pods.portforward("shut", &[port]).await?;
        let error = pf.take_error(port).context("no error channel")?;
        let text = tokio::time::timeout(STEP, error)
            .await?
            .context("the error channel closed without a message")?;
        let expected = format!("error forwarding port {port} to pod ");
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains(", uid : "), "{text}");
        assert!(text.contains("connect: connection refused"), "{text}");
    }
    Ok(())
}

#[tokio::test]
async fn deleting_the_pod_ends_the_stream() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("doomed", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("doomed", &[19]).await?;
    let mut stream = pf.take_stream(19).context("no stream")?;
    read_exactly_hashed(&mut stream, 1 << 20).await?;
    pods.delete("doomed", &DeleteParams::default()).await?;
    let drained = tokio::time::timeout(STEP, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the stream kept going after the pod was deleted"
    );
    Ok(())
}

#[tokio::test]
async fn missing_or_pending_pods_are_refused_with_status() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let err = pods
        .portforward("nope", &[80])
        .await
        .err()
        .context("missing pod was forwarded")?;
    assert!(format!("{err:?}").contains("404"), "{err:?}");

    let mut stuck = test_pod("stuck", false);
    stuck["metadata"]["annotations"]["kubesim.ferry.dev/behaviour"] = "stuck-pending".into();
    let pod: Pod = serde_json::from_value(stuck)?;
    pods.create(&Default::default(), &pod).await?;
    wait_for("stuck pod to exist", STEP, || async {
        pods.get_opt("stuck").await.ok().flatten()
    })
    .await?;
    let err = pods
        .portforward("stuck", &[80])
        .await
        .err()
        .context("pending pod was forwarded")?;
    assert!(format!("{err:?}").contains("400"), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn slow_reader_stalls_the_writer_instead_of_buffering() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("slowpoke", false)).await?;
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut pf = pods.portforward("slowpoke", &[7]).await?;
    let stream = pf.take_stream(7).context("no stream")?;
    let (mut r, mut w) = tokio::io::split(stream);
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        let block = vec![7u8; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&block).await?;
            counter.fetch_add(block.len() as u64, Ordering::SeqCst);
        }
        anyhow::Ok(())
    });
    // Nobody reads the echo: the writer must stall once the bounded buffers on the way are full.
    let deadline = Instant::now() + STEP;
    let mut last = (u64::MAX, Instant::now());
    let stalled_at = loop {
        anyhow::ensure!(Instant::now() < deadline, "the writer never stalled");
        anyhow::ensure!(!writer.is_finished(), "1 GiB was accepted with no reader");
        let now = written.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        stalled_at < 64 << 20,
        "{} MiB were buffered for a reader that never read",
        stalled_at >> 20
    );
    // Reading lets the writer continue.
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    while read < stalled_at + (16 << 20) {
        let n = tokio::time::timeout(STEP, r.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "echo ended early");
        anyhow::ensure!(buf[..n].iter().all(|b| *b == 7), "echo changed the bytes");
        read += n as u64;
    }
    assert!(
        written.load(Ordering::SeqCst) > stalled_at,
        "reading did not resume the writer"
    );
    writer.abort();
    eprintln!(
        "BACKPRESSURE writer stalled after {} MiB with no reader",
        stalled_at >> 20
    );
    Ok(())
}
