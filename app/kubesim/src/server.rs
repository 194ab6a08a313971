//! The sockets of one simulated cluster: a listener on 127.0.0.1, TLS (or plain HTTP),
//! HTTP/1.1 with upgrades (WebSocket and SPDY streaming), and the fault-injection controls
//! tests use to make the network misbehave: [`ServerControl::pause`] (stop accepting, stall
//! every open connection, as a frozen apiserver or a black-holed network would),
//! [`ServerControl::resume`], [`ServerControl::stop`] (close the port and reset every
//! connection, upgraded streams included) and [`ServerControl::restart`] (listen again on the
//! same port; the cluster's objects are untouched because they live in the store, not here).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The wakers of one open connection, so that pause/resume/stop can wake it.
#[derive(Default)]
struct ConnSlot {
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
}

impl ConnSlot {
    fn wake(&self) {
        for m in [&self.read, &self.write] {
            if let Some(w) = m.lock().unwrap_or_else(|p| p.into_inner()).take() {
                w.wake();
            }
        }
    }
}

/// Shared switches every connection of one server consults on each read and write.
#[derive(Default)]
struct Gate {
    paused: AtomicBool,
    /// Connections opened before the current epoch are reset.
    epoch: AtomicU64,
    slots: Mutex<Vec<Weak<ConnSlot>>>,
}

impl Gate {
    fn register(&self) -> Arc<ConnSlot> {
        let slot = Arc::new(ConnSlot::default());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|w| w.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        slot
    }

    fn wake_all(&self) {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for slot in slots.iter().filter_map(Weak::upgrade) {
            slot.wake();
        }
    }
}

/// A connection's socket, wrapped so that the [`Gate`] can stall or reset it.
struct GatedIo<T> {
    inner: T,
    gate: Arc<Gate>,
    slot: Arc<ConnSlot>,
    epoch: u64,
}

impl<T> GatedIo<T> {
    /// `Some(result)` when the gate decides instead of the socket.
    fn check<R>(&self, cx: &Context<'_>, write: bool) -> Option<Poll<io::Result<R>>> {
        let m = if write {
            &self.slot.write
        } else {
            &self.slot.read
        };
        *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if self.gate.epoch.load(Ordering::SeqCst) != self.epoch {
            return Some(Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "kubesim stopped the server",
            ))));
        }
        if self.gate.paused.load(Ordering::SeqCst) {
            return Some(Poll::Pending);
        }
        None
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GatedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(p) = self.check(cx, false) {
            return p;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GatedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(p) = self.check(cx, true) {
            return p;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(p) = self.check(cx, true) {
            return p;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Running state of the accept loop.
struct Running {
    accept: JoinHandle<()>,
    /// Dropping or sending on this ends the accept loop.
    stop: watch::Sender<bool>,
}

struct Shared {
    addr: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
    gate: Arc<Gate>,
    paused: watch::Sender<bool>,
    running: Mutex<Option<Running>>,
}

/// Controls one cluster's listener. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct ServerControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerControl")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // So that `restart` can take the same port back while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl ServerControl {
    /// Binds `addr` (port 0 picks a free port) and starts serving `router`.
    pub async fn start(
        addr: SocketAddr,
        router: Router,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<Self> {
        let listener = bind_listener(addr)?;
        let addr = listener.local_addr()?;
        let (paused, _) = watch::channel(false);
        let control = Self {
            shared: Arc::new(Shared {
                addr,
                router,
                tls,
                gate: Arc::new(Gate::default()),
                paused,
                running: Mutex::new(None),
            }),
        };
        control.spawn_accept(listener);
        Ok(control)
    }

    /// The address the server listens on (the same across restarts).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Whether the server is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.gate.paused.load(Ordering::SeqCst)
    }

    /// Whether the listener is open (not stopped).
    pub fn is_running(&self) -> bool {
        self.lock_running().is_some()
    }

    /// Stops accepting new connections and stalls every open one (reads and writes hang) until
    /// [`ServerControl::resume`]. New connections queue in the kernel's backlog and hang too.
    pub fn pause(&self) {
        self.shared.gate.paused.store(true, Ordering::SeqCst);
        self.shared.paused.send_replace(true);
        tracing::info!(addr = %self.shared.addr, "server paused");
    }

    /// Undoes [`ServerControl::pause`]: stalled connections carry on where they stopped.
    pub fn resume(&self) {
        self.shared.gate.paused.store(false, Ordering::SeqCst);
        self.shared.paused.send_replace(false);
        self.shared.gate.wake_all();
        tracing::info!(addr = %self.shared.addr, "server resumed");
    }

    /// Resets every open connection (upgraded streams included) but keeps listening, like a
    /// proxy in between dropping its connections.
    pub fn drop_connections(&self) {
        self.shared.gate.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.gate.wake_all();
    }

    /// Closes the port and resets every open connection. The cluster's state is kept;
    /// [`ServerControl::restart`] serves it again on the same port.
    pub async fn stop(&self) {
        let running = self.lock_running().take();
        if let Some(running) = running {
            running.stop.send_replace(true);
            // The accept loop owns the listener; waiting for it guarantees the port is closed.
            let _ = running.accept.await;
        }
        self.drop_connections();
        tracing::info!(addr = %self.shared.addr, "server stopped");
    }

    /// Stops at once without waiting (for `Drop`): the listener closes as soon as the runtime
    /// drops the aborted accept task.
    pub fn shutdown_now(&self) {
        if let Some(running) = self.lock_running().take() {
            running.stop.send_replace(true);
            running.accept.abort();
        }
        self.drop_connections();
    }

    /// Listens again on the same address after [`ServerControl::stop`]. Also resumes a paused
    /// server. Does nothing if the server is running.
    pub async fn restart(&self) -> io::Result<()> {
        self.resume();
        if self.is_running() {
            return Ok(());
        }
        let listener = bind_listener(self.shared.addr)?;
        self.spawn_accept(listener);
        tracing::info!(addr = %self.shared.addr, "server restarted");
        Ok(())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_accept(&self, listener: TcpListener) {
        let (stop, stop_rx) = watch::channel(false);
        let shared = self.shared.clone();
        let accept = tokio::spawn(accept_loop(shared, listener, stop_rx));
        *self.lock_running() = Some(Running { accept, stop });
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut paused = shared.paused.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        if *paused.borrow_and_update() {
            tokio::select! {
                _ = paused.changed() => continue,
                _ = stop.changed() => continue,
            }
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => spawn_connection(&shared, tcp, peer),
                Err(e) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = paused.changed() => {}
            _ = stop.changed() => {}
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let gate = shared.gate.clone();
    let io = GatedIo {
        inner: tcp,
        slot: gate.register(),
        epoch: gate.epoch.load(Ordering::SeqCst),
        gate,
    };
    let router = shared.router.clone();
    let tls = shared.tls.clone();
    tokio::spawn(async move {
        let result = match tls {
            Some(acceptor) => match acceptor.accept(io).await {
                Ok(stream) => serve_http(stream, router).await,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            },
            None => serve_http(io, router).await,
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    });
}

async fn serve_http<I>(io: I, router: Router) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await
}
