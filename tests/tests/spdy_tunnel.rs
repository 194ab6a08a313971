//! Ferry's SPDY-over-WebSocket port-forward connection (`ferry_core::tunnel::spdy`) against
//! kubesim's SPDY tunnel, the one `kubectl port-forward` 1.32 uses: many local connections on
//! one WebSocket, half-close passed on, bytes intact, the pod side's errors reported.

use std::net::SocketAddr;
use std::time::Duration;

use ferry_core::tunnel::spdy::{SpdyConnection, SpdyError};
use ferry_e2e::start_empty;
use ferry_e2e::streams::{create_running_pod, source_sha256, test_pod};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RUN: Duration = Duration::from_secs(60);

/// A local port whose every connection is forwarded to `port` of the pod over `conn`; the
/// forward's results come back on the returned channel.
async fn serve(
    conn: SpdyConnection,
    port: u16,
) -> anyhow::Result<(
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<u64, SpdyError>>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((local, _)) = listener.accept().await {
            let conn = conn.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(conn.forward(port, local).await.map(|s| s.received));
            });
        }
    });
    Ok((address, rx))
}

#[tokio::test]
async fn many_connections_share_one_tunnel_with_half_close_and_intact_bytes() -> anyhow::Result<()>
{
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod("box", false)).await?;
    let conn = SpdyConnection::connect(&client, "default", "box").await?;

    // HTTP/1.0: the answer, then the pod side's close reaches the client.
    let (http, mut http_results) = serve(conn.clone(), 80).await?;
    let mut s = TcpStream::connect(http).await?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: box\r\n\r\n").await?;
    let mut answer = String::new();
    tokio::time::timeout(RUN, s.read_to_string(&mut answer)).await??;
    drop(s);
    let forwarded = tokio::time::timeout(RUN, http_results.recv()).await?;
    assert!(answer.starts_with("HTTP/1."), "{answer:?} {forwarded:?}");
    assert!(answer.contains("You've hit box"), "{answer:?}");
    assert!(
        matches!(forwarded, Some(Ok(n)) if n == answer.len() as u64),
        "{forwarded:?}"
    );

    // 32 echo connections at once, 1 MiB each, sent then half-closed, read back whole.
    let (echo, _) = serve(conn.clone(), 7).await?;
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..1024 * 1024).map(|j| (j as u8) ^ i).collect();
            let s = TcpStream::connect(echo).await?;
            let (mut r, mut w) = s.into_split();
            let expected = Sha256::digest(&data);
            let writer = tokio::spawn(async move {
                w.write_all(&data).await?;
                w.shutdown().await?;
                anyhow::Ok(())
            });
            let mut back = Vec::new();
            tokio::time::timeout(RUN, r.read_to_end(&mut back)).await??;
            writer.await??;
            anyhow::ensure!(back.len() == 1024 * 1024, "got {} bytes back", back.len());
            anyhow::ensure!(Sha256::digest(&back) == expected, "bytes differ");
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }

    // 16 downloads from a source port at once: the first 4 MiB of each are as sent.
    let (source, _) = serve(conn.clone(), 19).await?;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(source).await?;
            let mut got = vec![0u8; 4 * 1024 * 1024];
            tokio::time::timeout(RUN, s.read_exact(&mut got)).await??;
            anyhow::ensure!(
                <[u8; 32]>::from(Sha256::digest(&got)) == source_sha256(got.len() as u64),
                "source bytes differ"
            );
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert!(
        conn.is_open(),
        "the tunnel is still up after 49 connections"
    );

    // A port where nothing listens: the pod side's error, in the kubelet's words.
    let (shut, mut results) = serve(conn.clone(), 13).await?;
    let mut s = TcpStream::connect(shut).await?;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(RUN, s.read_to_end(&mut rest)).await?;
    let result = tokio::time::timeout(RUN, results.recv())
        .await?
        .expect("a result");
    match result {
        Err(SpdyError::Pod(message)) => {
            assert!(message.contains("connection refused"), "{message}")
        }
        other => panic!("expected the pod side's error, got {other:?}"),
    }
    assert!(conn.is_open(), "one failed stream leaves the tunnel up");
    Ok(())
}

#[tokio::test]
async fn a_missing_pod_is_refused_with_the_api_servers_words() -> anyhow::Result<()> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    match SpdyConnection::connect(&client, "default", "ghost").await {
        Err(SpdyError::Refused { status, message }) => {
            assert_eq!(status, 404, "{message}");
            assert!(message.contains("ghost"), "{message}");
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("a tunnel to a pod that does not exist"),
    }
    Ok(())
}
