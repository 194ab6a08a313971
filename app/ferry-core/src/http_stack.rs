//! The HTTP stack under every `kube::Client` Ferry builds: kube's own layers (base URI, auth,
//! extra headers, retries of idempotent requests, connect/read/write timeouts, rustls) on a
//! TCP connector with **`TCP_NODELAY`** set.
//!
//! `kube::Client::try_from` connects with hyper's `HttpConnector`, which leaves Nagle's
//! algorithm on. For REST calls that hardly matters, but a port-forward connection is
//! long-lived and carries many small writes (SPDY stream openings, window updates, a
//! keystroke): with Nagle on, a small write waits in the kernel until the previous one is
//! acknowledged, which against a server that delays its ACKs is up to one round trip or a
//! 40 ms delayed-ACK timer. Seen in the benchmark at 20 ms RTT: a new connection's
//! SYN_STREAMs sat in Ferry's send queue for 22 ms. kubectl (Go) sets `TCP_NODELAY` on every
//! connection by default; so does this stack.
//!
//! Proxies (`proxy-url`) are left to kube's builder, which reports that this build has no
//! proxy support, exactly as before.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use tower::{BoxError, ServiceBuilder};

/// A client for `config`, as `kube::Client::try_from(config)` builds it, but whose
/// connections to the API server have `TCP_NODELAY` set.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    let tls = config.rustls_https_connector_with_connector(tcp)?;
    let mut timed = hyper_timeout::TimeoutConnector::new(tls);
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    timed.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(timed);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| tower::retry::RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace))
}
