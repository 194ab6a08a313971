//! A client that sends everything and then half-closes (`shutdown(SHUT_WR)`: `nc -N`, HTTP/1.0
//! clients, database and backup tools) still gets the whole answer through a tunnel, and the
//! connection ends when the pod side ends or the client goes away completely.
//!
//! The big case runs the real `ferry forward` binary against kubesim's echo port
//! (`shop/postgres`); the small cases use an engine in this process, over real sockets too.
//! The `ferry` binary must be built (`cargo build -p ferry`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use ferry_e2e::ferry_bin;
use ferry_e2e::tunnels::{local_v4, spec_in, tunnel_env};
use ferry_e2e::{read_until, start_demo};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

type Result = anyhow::Result<()>;

/// Bytes for the big case: 200 MB unless `FERRY_E2E_HALF_CLOSE_BYTES` says otherwise.
fn big_size() -> usize {
    std::env::var("FERRY_E2E_HALF_CLOSE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000_000)
}

/// Deterministic pseudo-random bytes (xorshift), so sender and checker agree without storing
/// the data.
struct Noise(u32);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            *b = self.0 as u8;
        }
    }
}

/// Sends `size` bytes to an echo port, half-closes, and reads until `size` bytes came back
/// (or the stream ended early). Returns the SHA-256 of what was sent, of what came back, and
/// how many bytes came back.
async fn echo_then_half_close(
    addr: SocketAddr,
    size: usize,
) -> anyhow::Result<(Vec<u8>, Vec<u8>, usize)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut noise = Noise(0x9e37_79b9);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            let n = chunk.len().min(size - sent);
            noise.fill(&mut chunk[..n]);
            write.write_all(&chunk[..n]).await?;
            hash.update(&chunk[..n]);
            sent += n;
        }
        // shutdown(SHUT_WR): "I have sent everything", while still reading the answer.
        write.shutdown().await?;
        anyhow::Ok((hash.finalize().to_vec(), write))
    });
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    let reading = async {
        while got < size {
            let n = read.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            got += n;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(600), reading)
        .await
        .map_err(|_| anyhow::anyhow!("no complete echo within 600 s ({got} of {size} bytes)"))??;
    let (sent_hash, _write) = writer.await??;
    Ok((sent_hash, hash.finalize().to_vec(), got))
}

#[tokio::test]
async fn a_half_closed_client_gets_all_200_mb_back_through_ferry_forward() -> Result {
    let cluster = start_demo().await?;
    let mut child = Command::new(ferry_bin())
        .args(["forward", "svc/postgres", "0:5432", "--context", "demo"])
        .args(["--namespace", "shop"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("FERRY_CONFIG_DIR", cluster.dir().join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let seen = read_until(
        &mut lines,
        Duration::from_secs(30),
        "the Forwarding line",
        |l| l.starts_with("Forwarding from 127.0.0.1:"),
    )
    .await?;
    let line = seen.last().cloned().unwrap_or_default();
    let addr: SocketAddr = line
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no address in {line:?}"))?;

    let size = big_size();
    let started = std::time::Instant::now();
    let (sent, got, count) = echo_then_half_close(addr, size).await?;
    eprintln!(
        "{size} bytes echoed after a half-close in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(count, size, "bytes that came back after the half-close");
    assert_eq!(sent, got, "SHA-256 of what was sent and what came back");
    assert!(
        child.try_wait()?.is_none(),
        "ferry forward is still running"
    );
    Ok(())
}

#[tokio::test]
async fn small_answers_survive_a_half_close_and_the_pod_closing_ends_the_connection() -> Result {
    let env = tunnel_env().await?;
    let (_, echo) = env
        .start_active(spec_in("demo", "shop", "svc/postgres", &["0:5432"]))
        .await?;
    let echo = local_v4(&echo, 0)?;
    for size in [1, 100, 64 * 1024, 3_000_000] {
        let (sent, got, count) = echo_then_half_close(echo, size).await?;
        assert_eq!(count, size, "{size} bytes sent, {count} came back");
        assert_eq!(sent, got, "{size} bytes: SHA-256 differs");
    }

    // HTTP/1.0: the request, then a half-close; the server answers and closes, and that close
    // reaches the client as the end of the stream.
    let (_, web) = env
        .start_active(spec_in("demo", "default", "svc/kubia", &["0:80"]))
        .await?;
    let web = local_v4(&web, 0)?;
    for (path, body_len) in [("/bytes/10", 10), ("/bytes/5000000", 5_000_000)] {
        let mut stream = TcpStream::connect(web).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await?;
        stream.shutdown().await?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
            .await
            .map_err(|_| anyhow::anyhow!("GET {path}: the answer did not end within 60 s"))??;
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| {
                anyhow::anyhow!("GET {path}: no HTTP answer ({} bytes)", answer.len())
            })?;
        let head = String::from_utf8_lossy(&answer[..head_end]);
        assert!(head.starts_with("HTTP/1.0 200"), "{head}");
        let body = &answer[head_end + 4..];
        assert_eq!(body.len(), body_len, "GET {path}: body length");
        assert!(
            body.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8),
            "GET {path}: body bytes"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_client_that_goes_away_after_a_half_close_ends_its_connection() -> Result {
    let env = tunnel_env().await?;
    let (id, snap) = env
        .start_active(spec_in("demo", "shop", "svc/postgres", &["0:5432"]))
        .await?;
    let addr = local_v4(&snap, 0)?;
    let stream = TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.into_split();
    write.write_all(b"ping").await?;
    write.shutdown().await?;
    let mut echoed = [0u8; 4];
    read.read_exact(&mut echoed).await?;
    assert_eq!(&echoed, b"ping");
    env.wait_snapshot(id, Duration::from_secs(10), "one active connection", |s| {
        s.active_connections == 1
    })
    .await?;
    // Going away for good: a reset (what the kernel sends when a process dies, or closes a
    // socket with unread data).
    let stream = read.reunite(write)?;
    // Linger 0 makes the close a reset; blocking on drop is what this test wants.
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    env.wait_snapshot(id, Duration::from_secs(20), "no active connection", |s| {
        s.active_connections == 0
    })
    .await?;
    Ok(())
}
