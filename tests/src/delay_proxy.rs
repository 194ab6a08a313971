//! A loopback TCP relay that delays every byte by a fixed one-way time, for benchmarks that
//! must see what a forwarder does when its API server is not 0.4 ms away (a real one is often
//! 20–100 ms away). It sits between the forwarder (Ferry or kubectl) and kubesim and is used
//! identically for both; TLS passes through it untouched.
//!
//! Each direction of each connection is a reader that stamps every chunk with "deliver at
//! now + delay" and a writer that waits for that moment before writing it on, so the delay
//! holds for every byte without slowing a stream to one chunk per delay. The queue between them
//! is bounded, so a slow receiver slows the sender instead of growing a buffer. End of stream
//! is passed on as a half-close after the last delayed chunk.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Chunks in flight per direction; with 64 KiB reads this bounds a direction's queue to 16 MiB.
const QUEUE: usize = 256;
const CHUNK: usize = 64 * 1024;

/// A running delay proxy (stopped on drop).
pub struct DelayProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on `127.0.0.1:0` and relays every connection to `upstream`, each direction
    /// delayed by `one_way`.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> anyhow::Result<DelayProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("the delay proxy could not listen on loopback")?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, one_way).await;
                    }
                });
            }
        });
        Ok(DelayProxy { addr, accept })
    }

    /// Where forwarders connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, one_way: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(one_direction(client_read, server_write, one_way));
    let down = tokio::spawn(one_direction(server_read, client_write, one_way));
    let _ = tokio::join!(up, down);
}

async fn one_direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    one_way: Duration,
) {
    let (queue, mut delivered) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let reader = async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if queue.send((Instant::now() + one_way, buf)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = delivered.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round trips through the proxy take at least twice the one-way delay, and bytes arrive
    /// whole and in order, with the half-close passed on.
    #[tokio::test]
    async fn every_round_trip_pays_twice_the_delay_and_bytes_arrive_intact() -> anyhow::Result<()> {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await?;
        let upstream = echo.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        let one_way = Duration::from_millis(25);
        let proxy = DelayProxy::start(upstream, one_way).await?;
        let mut stream = TcpStream::connect(proxy.addr()).await?;
        for round in 0..3u8 {
            let started = std::time::Instant::now();
            stream.write_all(&[round; 10]).await?;
            let mut back = [0u8; 10];
            stream.read_exact(&mut back).await?;
            let rtt = started.elapsed();
            assert_eq!(back, [round; 10]);
            assert!(
                rtt >= 2 * one_way,
                "round trip {rtt:?} shorter than 2 × {one_way:?}"
            );
        }
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = stream.into_split();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await?;
            w.shutdown().await?;
            anyhow::Ok(w)
        });
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back)).await??;
        writer.await??;
        assert_eq!(back.len(), payload.len());
        assert!(back == payload, "echoed bytes differ from what was sent");
        Ok(())
    }
}
