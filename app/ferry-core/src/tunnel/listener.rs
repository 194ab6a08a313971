//! Local listeners: where a tunnel accepts connections on this machine.
//!
//! By default (and for `localhost`) a port is bound on 127.0.0.1 and, when the machine has
//! IPv6 loopback, on ::1 with the same port number (so `localhost:8080` works whichever address
//! a client resolves first); if either is taken, the tunnel does not start.
//! Other addresses only when asked; 0.0.0.0 / :: earn a warning because they expose the tunnel
//! (and through it the cluster) to the local network. A port already in use is a clear error
//! naming the port and offering the next free one; when the port is held by another tunnel of
//! this same Ferry, the error names that tunnel instead of blaming "another program".

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};

use crate::engine::Origin;
use crate::spec::TunnelSpec;

/// Why a local port could not be opened. Not retried automatically: a person must choose
/// another port or free this one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error(
        "local port {port} on {address} is already in use by another program{}",
        next_free.map(|p| format!("; port {p} is free (use {p}:REMOTE, or :REMOTE for any free port)")).unwrap_or_default()
    )]
    InUse {
        address: IpAddr,
        port: u16,
        next_free: Option<u16>,
    },
    /// Another tunnel of this Ferry process listens there.
    #[error(
        "local port {port} on {address} is already in use by Ferry's own {holder}; stop that tunnel or give this one another local port{}",
        next_free.map(|p| format!(" (port {p} is free: use {p}:REMOTE, or :REMOTE for any free port)")).unwrap_or_default()
    )]
    HeldByFerry {
        address: IpAddr,
        port: u16,
        holder: String,
        next_free: Option<u16>,
    },
    #[error(
        "not allowed to listen on {address}:{port} ({reason}); ports below 1024 need extra privileges, choose a higher local port"
    )]
    Denied {
        address: IpAddr,
        port: u16,
        reason: String,
    },
    #[error("cannot listen on {address}:{port}: {reason}")]
    Other {
        address: IpAddr,
        port: u16,
        reason: String,
    },
}

/// The listeners of one forwarded port, all on the same port number.
#[derive(Debug)]
pub struct BoundPort {
    pub port: u16,
    pub listeners: Vec<Listener>,
}

/// A listening socket of a tunnel. While it lives, a bind of the same port elsewhere in this
/// process is told which tunnel holds it.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    _claim: Claim,
}

impl Listener {
    /// The next local connection.
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One entry of [`HELD`], removed when the listener is dropped.
#[derive(Debug)]
struct Claim(u64);

/// The addresses this process's tunnels listen on and a description of each tunnel. The
/// operating system only says "address in use"; this table tells Ferry's own tunnels apart from
/// other programs. Process-wide because the sockets it describes are.
static HELD: Mutex<Vec<(u64, SocketAddr, String)>> = Mutex::new(Vec::new());
static NEXT_CLAIM: AtomicU64 = AtomicU64::new(1);

fn held() -> std::sync::MutexGuard<'static, Vec<(u64, SocketAddr, String)>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

impl Claim {
    fn new(address: SocketAddr, holder: &str) -> Self {
        let id = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        held().push((id, address, holder.to_string()));
        Claim(id)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        held().retain(|(id, _, _)| *id != self.0);
    }
}

/// The tunnel of this process listening on `port` at an address that overlaps `address`.
fn holder_of(address: IpAddr, port: u16) -> Option<String> {
    held()
        .iter()
        .find(|(_, a, _)| {
            a.port() == port
                && (a.ip() == address
                    || (a.is_ipv4() == address.is_ipv4()
                        && (a.ip().is_unspecified() || address.is_unspecified())))
        })
        .map(|(_, _, holder)| holder.clone())
}

/// How a tunnel is named when it holds a port another one wants:
/// `tunnel api: svc/api 8080:80 of profile "staging"`.
pub fn holder_label(spec: &TunnelSpec, origin: &Origin) -> String {
    let ports: Vec<String> = spec.ports.iter().map(ToString::to_string).collect();
    let alias = spec
        .alias
        .as_deref()
        .map(|a| format!("{a}: "))
        .unwrap_or_default();
    let from = match origin.profile() {
        Some(profile) => format!(" of profile \"{profile}\""),
        None => " (started with forward)".to_string(),
    };
    format!("tunnel {alias}{} {}{from}", spec.target, ports.join(" "))
}

impl BoundPort {
    /// The addresses actually bound.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

/// The addresses a port is bound on when the spec names none.
pub fn default_addresses() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
}

/// A warning for addresses that make the tunnel reachable from other machines.
pub fn exposure_warning(address: IpAddr, port: u16) -> Option<String> {
    address.is_unspecified().then(|| {
        format!(
            "listening on {address} port {port}: other machines on your network can reach this tunnel, and through it the cluster"
        )
    })
}

/// Bind `port` (0: any free port, then the same number on every address) on `addresses`
/// (empty: the defaults). With the defaults, ::1 is left out only when the machine has no IPv6
/// loopback. A port another program holds on ::1 alone is an error naming ::1: listening on
/// 127.0.0.1 alone would let `localhost:PORT` reach that other program for clients that try
/// ::1 first. Asking for `127.0.0.1` explicitly binds that address alone. `holder` names the
/// tunnel (see [`holder_label`]) for a later bind of the same port in this process.
pub async fn bind(addresses: &[IpAddr], port: u16, holder: &str) -> Result<BoundPort, BindError> {
    let defaults = addresses.is_empty();
    let addresses = if defaults {
        default_addresses()
    } else {
        addresses.to_vec()
    };
    // With port 0 the first bind picks the number; a clash on the others is a race with
    // another program, so try a few times with fresh numbers.
    let tries = if port == 0 { 5 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        match bind_all(&addresses, port, defaults).await {
            Ok((port, listeners)) => return Ok(claim(port, listeners, holder)),
            Err(err @ BindError::InUse { .. }) if port == 0 => last = Some(err),
            Err(err) => return Err(with_next_free(err, &addresses, defaults).await),
        }
    }
    Err(last.unwrap_or(BindError::Other {
        address: addresses[0],
        port,
        reason: "no free port found".into(),
    }))
}

/// Records the listeners in [`HELD`] under `holder`.
fn claim(port: u16, listeners: Vec<TcpListener>, holder: &str) -> BoundPort {
    let listeners = listeners
        .into_iter()
        .map(|inner| {
            let address = inner
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
            Listener {
                inner,
                _claim: Claim::new(address, holder),
            }
        })
        .collect();
    BoundPort { port, listeners }
}

/// Binds every address on one port number (0: the first bind picks it); the port and the
/// listeners.
async fn bind_all(
    addresses: &[IpAddr],
    port: u16,
    best_effort_v6: bool,
) -> Result<(u16, Vec<TcpListener>), BindError> {
    let mut listeners = Vec::with_capacity(addresses.len());
    let mut chosen = port;
    for (i, address) in addresses.iter().enumerate() {
        let optional = best_effort_v6 && i > 0;
        match TcpListener::bind(SocketAddr::new(*address, chosen)).await {
            Ok(listener) => {
                if chosen == 0 {
                    chosen = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                }
                listeners.push(listener);
            }
            Err(err) if optional && no_such_address(&err) => {
                tracing::debug!(%address, port = chosen, %err, "no IPv6 loopback on this machine; listening on IPv4 only");
            }
            Err(err) => return Err(classify(*address, chosen, &err)),
        }
    }
    Ok((chosen, listeners))
}

/// The address does not exist on this machine (no IPv6, or IPv6 loopback switched off), as
/// opposed to being in use: only then may the ::1 half of the default pair be left out.
fn no_such_address(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::AddrNotAvailable | ErrorKind::Unsupported
    ) || err.raw_os_error() == Some(libc_eafnosupport())
}

/// EAFNOSUPPORT ("address family not supported"), which `std` has no `ErrorKind` for.
const fn libc_eafnosupport() -> i32 {
    if cfg!(target_os = "linux") {
        97
    } else if cfg!(windows) {
        10047
    } else {
        47
    }
}

fn classify(address: IpAddr, port: u16, err: &std::io::Error) -> BindError {
    match err.kind() {
        ErrorKind::AddrInUse => match holder_of(address, port) {
            Some(holder) => BindError::HeldByFerry {
                address,
                port,
                holder,
                next_free: None,
            },
            None => BindError::InUse {
                address,
                port,
                next_free: None,
            },
        },
        ErrorKind::PermissionDenied => BindError::Denied {
            address,
            port,
            reason: err.to_string(),
        },
        _ => BindError::Other {
            address,
            port,
            reason: err.to_string(),
        },
    }
}

/// Fill in the next free port for an "in use" error.
async fn with_next_free(err: BindError, addresses: &[IpAddr], defaults: bool) -> BindError {
    match err {
        BindError::InUse { address, port, .. } => BindError::InUse {
            address,
            port,
            next_free: next_free_port(addresses, port, defaults).await,
        },
        BindError::HeldByFerry {
            address,
            port,
            holder,
            ..
        } => BindError::HeldByFerry {
            address,
            port,
            holder,
            next_free: next_free_port(addresses, port, defaults).await,
        },
        other => other,
    }
}

/// The first port above `port` (within 100) that binds on every required address.
pub async fn next_free_port(addresses: &[IpAddr], port: u16, defaults: bool) -> Option<u16> {
    for candidate in port.saturating_add(1)..=port.saturating_add(100) {
        if candidate == port {
            break;
        }
        if bind_all(addresses, candidate, defaults).await.is_ok() {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn any_free_port_binds_loopback_only() {
        let bound = bind(&[], 0, "test").await.unwrap();
        assert_ne!(bound.port, 0);
        let addrs = bound.addresses();
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == bound.port),
            "{addrs:?}"
        );
        assert!(
            addrs
                .iter()
                .any(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }

    #[tokio::test]
    async fn a_port_in_use_names_the_port_and_offers_the_next_free_one() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], port, "test")
            .await
            .unwrap_err();
        let BindError::InUse {
            port: p, next_free, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*p, port);
        let free = next_free.expect("a free port nearby");
        assert!(free > port);
        let text = err.to_string();
        assert!(
            text.contains(&format!("local port {port}"))
                && text.contains(&format!("port {free} is free")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn explicit_addresses_are_used_as_given() {
        let bound = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], 0, "test")
            .await
            .unwrap();
        assert_eq!(bound.listeners.len(), 1);
    }

    #[tokio::test]
    async fn a_port_another_tunnel_holds_names_that_tunnel_until_it_lets_go() {
        let first = bind(
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            0,
            "tunnel svc/web 80 of profile \"a\"",
        )
        .await
        .unwrap();
        let err = bind(&[IpAddr::V4(Ipv4Addr::LOCALHOST)], first.port, "other")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, BindError::HeldByFerry { .. })
                && text.contains("Ferry's own tunnel svc/web 80 of profile \"a\"")
                && !text.contains("another program"),
            "{text}"
        );
        let port = first.port;
        drop(first);
        assert!(holder_of(IpAddr::V4(Ipv4Addr::LOCALHOST), port).is_none());
    }

    #[test]
    fn only_wildcard_addresses_warn() {
        assert!(
            exposure_warning(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80)
                .unwrap()
                .contains("other machines")
        );
        assert!(exposure_warning(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 80).is_some());
        assert!(exposure_warning(IpAddr::V4(Ipv4Addr::LOCALHOST), 80).is_none());
    }
}
