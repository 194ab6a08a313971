//! Simulated containers: for every running pod, each declared TCP container port becomes a real
//! listener on `127.0.0.1:<ephemeral>` that behaves as the pod's annotations say
//! (`http-hello`, `echo`, `discard`, `source`, or `closed` for nothing listening). Port-forward
//! connects to these; exec runs its processes in the pod's working directory.
//!
//! Driven by the store's change events (no polling): a pod gets its listeners when it becomes
//! `Running` and loses them — with every open connection — when it stops running, starts
//! terminating or is deleted. A pod recreated under the same name (new uid) gets new ones.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::logs::ContainerLog;
use crate::sim::{PortBehaviour as Behaviour, port_behaviour};
use crate::store::{EventType, Store};

/// Annotation naming the container kubectl picks when none is given.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// How often a running container writes a heartbeat line to its log.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Read/write chunk size of the byte-stream behaviours.
const CHUNK: usize = 64 * 1024;

/// Why a `container=` choice was refused (the apiserver's words, 400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerChoiceError {
    #[error("container {container} is not valid for pod {pod}")]
    Unknown { container: String, pod: String },
    #[error("a container name must be specified for pod {pod}, choose one of: [{choices}]")]
    Ambiguous { pod: String, choices: String },
    #[error("a container name must be specified for pod {pod}")]
    NoContainers { pod: String },
}

/// The container an exec or log request addresses, as the apiserver decides it: the named one
/// (containers, then init containers); with no name, the only container; several containers and
/// no name is an error (kubectl itself applies `kubectl.kubernetes.io/default-container` and
/// always sends a name, see [`default_container`]).
pub fn choose_container(
    pod: &Value,
    requested: Option<&str>,
) -> Result<String, ContainerChoiceError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    match requested {
        Some(name) => {
            if containers
                .iter()
                .chain(names("initContainers").iter())
                .any(|c| c == name)
            {
                Ok(name.to_string())
            } else {
                Err(ContainerChoiceError::Unknown {
                    container: name.to_string(),
                    pod: pod_name,
                })
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ContainerChoiceError::NoContainers { pod: pod_name }),
            many => Err(ContainerChoiceError::Ambiguous {
                pod: pod_name,
                choices: many.join(" "),
            }),
        },
    }
}

/// The container kubectl would pick when the user names none: the
/// `kubectl.kubernetes.io/default-container` annotation if it names a container, else the first.
pub fn default_container(pod: &Value) -> Option<String> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array)?;
    let annotated = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .and_then(Value::as_str)
        .filter(|name| {
            containers
                .iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(name))
        });
    annotated.map(str::to_string).or_else(|| {
        containers
            .first()?
            .get("name")?
            .as_str()
            .map(str::to_string)
    })
}

/// One container of a running pod: what exec needs to run a process "inside" it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    /// Literal `env` entries of the container spec (`valueFrom` entries are skipped).
    pub env: Vec<(String, String)>,
    /// Programs the image does not have although the host does (exec fails for them as it
    /// would in the real image): the `kubesim.ferry.dev/missing-executables` annotation
    /// (comma list), else `bash` for busybox and alpine images.
    pub missing_executables: Vec<String>,
}

impl ContainerInfo {
    /// Whether `program` (a name or a path) is absent from the simulated image.
    pub fn lacks(&self, program: &str) -> bool {
        let base = program.rsplit('/').next().unwrap_or(program);
        self.missing_executables.iter().any(|m| m == base)
    }
}

/// Annotation listing programs the pod's images lack (comma separated).
pub const MISSING_EXECUTABLES_ANNOTATION: &str = "kubesim.ferry.dev/missing-executables";

fn missing_executables(pod: &Value, image: &str) -> Vec<String> {
    let annotated = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MISSING_EXECUTABLES_ANNOTATION))
        .and_then(Value::as_str);
    match annotated {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => {
            let image = image.to_ascii_lowercase();
            let no_bash = ["busybox", "alpine"].iter().any(|i| image.contains(i));
            if no_bash {
                vec!["bash".to_string()]
            } else {
                Vec::new()
            }
        }
    }
}

/// A pod whose containers are running: its listeners, working directory and logs. Dropped (and
/// its listeners and connections closed) when the pod stops running.
pub struct RunningPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Cancelled when the pod stops running; streams to this pod end with it.
    pub stopped: CancellationToken,
    /// Container port → listener address (ports with behaviour `closed` are absent).
    listeners: HashMap<u16, SocketAddr>,
    containers: Vec<ContainerInfo>,
    logs: HashMap<String, Arc<ContainerLog>>,
    workdir: tempfile::TempDir,
}

impl RunningPod {
    /// Connects to `port` inside the pod, as the kubelet's port-forward does to localhost in
    /// the pod's network namespace. Refused when nothing listens there.
    pub async fn connect(&self, port: u16) -> std::io::Result<TcpStream> {
        match self.listeners.get(&port) {
            Some(addr) => TcpStream::connect(addr).await,
            None => Err(std::io::ErrorKind::ConnectionRefused.into()),
        }
    }

    /// The loopback address backing a container port, if something listens there.
    pub fn listener(&self, port: u16) -> Option<SocketAddr> {
        self.listeners.get(&port).copied()
    }

    /// The pod's working directory (shared by its containers' exec processes).
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// A container by name.
    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// A container's log.
    pub fn log(&self, container: &str) -> Option<Arc<ContainerLog>> {
        self.logs.get(container).cloned()
    }
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        self.stopped.cancel();
    }
}

/// The running pods of one cluster. Lives on [`Cluster`]; filled by the event loop that
/// [`start`] spawns.
#[derive(Default)]
pub struct Containers {
    pods: Mutex<HashMap<(String, String), Arc<RunningPod>>>,
    started: AtomicBool,
    /// Where pods' working directories are made (the kubesim's private folder); the system
    /// temp dir when unset.
    workdir_root: OnceLock<PathBuf>,
}

impl Containers {
    /// The running pod `namespace/name`, if its containers are running.
    pub fn running(&self, namespace: &str, name: &str) -> Option<Arc<RunningPod>> {
        self.lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// How many pods have running containers.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<RunningPod>>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes pods' working directories inside `root` (set once, before [`start`]), so they go
    /// when that folder is removed.
    pub fn keep_workdirs_in(&self, root: &Path) {
        let _ = self.workdir_root.set(root.to_path_buf());
    }

    /// Stops every pod's containers (the cluster is shutting down).
    pub fn stop_all(&self) {
        let pods: Vec<_> = self.lock().drain().collect();
        for (_, pod) in pods {
            pod.stopped.cancel();
        }
    }
}

/// Starts the event loop that keeps the cluster's simulated containers in step with its pods.
/// Idempotent: later calls do nothing. Must run inside a tokio runtime.
pub fn start(cluster: &Arc<Cluster>) {
    if cluster.containers.started.swap(true, Ordering::SeqCst) {
        return;
    }
    // Only a weak reference: the loop ends when the cluster is dropped (its store, and with it
    // the change channel, goes away).
    let weak = Arc::downgrade(cluster);
    // Subscribe before listing so no change falls between the two.
    let mut changes = cluster.store.subscribe();
    resync(&cluster.store, &cluster.containers);
    tokio::spawn(async move {
        loop {
            let change = changes.recv().await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            match change {
                Ok(c) if c.key.resource == "pods" => {
                    let object = (c.event != EventType::Deleted).then_some(&c.object);
                    reconcile(&cluster.containers, &c.key.namespace, &c.key.name, object);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => resync(&cluster.store, &cluster.containers),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Why a stream cannot reach a pod's containers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodUnavailable {
    /// 404: the pod does not exist.
    #[error("pods \"{0}\" not found")]
    NotFound(String),
    /// 400: the pod exists but its containers are not running.
    #[error("{0}")]
    NotRunning(String),
}

impl axum::response::IntoResponse for PodUnavailable {
    fn into_response(self) -> axum::response::Response {
        use http::StatusCode;
        let (code, reason) = match &self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::NotRunning(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        };
        crate::streams::status_response(code, reason, &self.to_string())
    }
}

/// The running pod a stream addresses, or why not, as a real apiserver/kubelet answers: 404
/// when the pod does not exist, 400 when its containers are not running. A pod that the store
/// already shows `Running` is started here if the event loop has not caught up yet.
pub fn running_or_status(
    cluster: &Arc<Cluster>,
    namespace: &str,
    name: &str,
) -> Result<Arc<RunningPod>, PodUnavailable> {
    let Some(object) = cluster.store.get("pods", namespace, name) else {
        return Err(PodUnavailable::NotFound(name.to_string()));
    };
    if let Some(running) = cluster.containers.running(namespace, name)
        && running.uid == str_at(&object, "/metadata/uid")
    {
        return Ok(running);
    }
    if is_running(&object) {
        reconcile(&cluster.containers, namespace, name, Some(&object));
        if let Some(running) = cluster.containers.running(namespace, name) {
            return Ok(running);
        }
    }
    let phase = str_at(&object, "/status/phase");
    Err(PodUnavailable::NotRunning(
        if str_at(&object, "/spec/nodeName").is_empty() {
            format!("pod {name} does not have a host assigned")
        } else if object
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            format!("unable to upgrade connection: pod {name} is terminating")
        } else {
            format!("unable to upgrade connection: pod {name} is not running (phase {phase})")
        },
    ))
}

fn resync(store: &Store, containers: &Containers) {
    let (pods, _) = store.list("pods", None);
    let mut seen = std::collections::HashSet::new();
    for pod in &pods {
        let ns = str_at(pod, "/metadata/namespace");
        let name = str_at(pod, "/metadata/name");
        reconcile(containers, &ns, &name, Some(pod));
        seen.insert((ns, name));
    }
    let gone: Vec<_> = containers
        .lock()
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    for (ns, name) in gone {
        reconcile(containers, &ns, &name, None);
    }
}

/// Brings one pod's simulated containers in line with its object (`None`: deleted).
fn reconcile(containers: &Containers, namespace: &str, name: &str, pod: Option<&Value>) {
    let key = (namespace.to_string(), name.to_string());
    let should_run = pod.filter(|p| is_running(p));
    let mut pods = containers.lock();
    let current_uid = pods.get(&key).map(|p| p.uid.clone());
    match (should_run, current_uid) {
        (Some(p), Some(uid)) if uid == str_at(p, "/metadata/uid") => {}
        (Some(p), _) => match start_pod(p, containers.workdir_root.get().map(PathBuf::as_path)) {
            Ok(running) => {
                tracing::debug!(pod = %name, namespace, "simulated containers started");
                if let Some(old) = pods.insert(key, Arc::new(running)) {
                    old.stopped.cancel();
                }
            }
            Err(e) => {
                tracing::warn!(pod = %name, namespace, "cannot start simulated containers: {e}")
            }
        },
        (None, Some(_)) => {
            if let Some(old) = pods.remove(&key) {
                tracing::debug!(pod = %name, namespace, "simulated containers stopped");
                old.stopped.cancel();
            }
        }
        (None, None) => {}
    }
}

/// A pod runs its containers while it is `Running` and not being deleted (a terminating pod's
/// containers have been sent SIGTERM; simulated ones exit at once).
fn is_running(pod: &Value) -> bool {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    // A crash-looping container is not running even though the pod's phase says Running.
    let some_container_runs = statuses
        .is_none_or(|cs| cs.is_empty() || cs.iter().any(|c| c.pointer("/state/running").is_some()));
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
        && some_container_runs
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A new directory only this user may enter (mode 0700 on Unix), in `parent` or the system
/// temp dir, removed when the returned handle is dropped.
pub fn private_tempdir(prefix: &str, parent: Option<&Path>) -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    match parent {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
}

/// Binds the pod's listeners, creates its working directory (in `root`, if given) and writes
/// its start-up logs.
fn start_pod(pod: &Value, root: Option<&Path>) -> std::io::Result<RunningPod> {
    let name = str_at(pod, "/metadata/name");
    let stopped = CancellationToken::new();
    let workdir = private_tempdir(&format!("kubesim-{name}-"), root)?;
    let mut listeners = HashMap::new();
    let mut infos = Vec::new();
    let mut logs = HashMap::new();
    let specs = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for spec in &specs {
        let cname = str_at(spec, "/name");
        let log = Arc::new(ContainerLog::default());
        let image = spec
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        log.write(format!("Starting {cname} (image {image}) in pod {name}"));
        for port in spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let protocol = port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            let Some(number) = port
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            else {
                continue;
            };
            let behaviour = port_behaviour(pod, number);
            if protocol != "TCP"
                || behaviour == Behaviour::Closed
                || listeners.contains_key(&number)
            {
                continue;
            }
            let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            std_listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std_listener)?;
            listeners.insert(number, listener.local_addr()?);
            log.write(format!("Listening on :{number} ({})", behaviour.as_str()));
            let ctx = ConnContext {
                pod: name.clone(),
                log: log.clone(),
                stopped: stopped.clone(),
            };
            tokio::spawn(accept_loop(listener, behaviour, ctx));
        }
        log.write("Ready");
        tokio::spawn(heartbeat(log.clone(), stopped.clone()));
        infos.push(ContainerInfo {
            name: cname.clone(),
            env: literal_env(spec),
            missing_executables: missing_executables(pod, image),
        });
        logs.insert(cname, log);
    }
    Ok(RunningPod {
        namespace: str_at(pod, "/metadata/namespace"),
        name,
        uid: str_at(pod, "/metadata/uid"),
        stopped,
        listeners,
        containers: infos,
        logs,
        workdir,
    })
}

fn literal_env(spec: &Value) -> Vec<(String, String)> {
    spec.get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?;
            let value = e.get("value").and_then(Value::as_str).unwrap_or_default();
            (e.get("valueFrom").is_none()).then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

async fn heartbeat(log: Arc<ContainerLog>, stopped: CancellationToken) {
    let mut beats = 0u64;
    let mut interval = tokio::time::interval(HEARTBEAT);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = stopped.cancelled() => return,
            _ = interval.tick() => {
                beats += 1;
                log.write(format!("heartbeat {beats}: healthy"));
            }
        }
    }
}

/// What a connection handler needs to know about its pod.
#[derive(Clone)]
struct ConnContext {
    pod: String,
    log: Arc<ContainerLog>,
    stopped: CancellationToken,
}

async fn accept_loop(listener: TcpListener, behaviour: Behaviour, ctx: ConnContext) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.stopped.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("simulated container accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let stopped = ctx.stopped.clone();
            // The connection dies with the pod: dropping the future closes the socket.
            tokio::select! {
                _ = stopped.cancelled() => {}
                r = serve_connection(stream, behaviour, ctx) => {
                    if let Err(e) = r {
                        tracing::trace!("simulated connection ended: {e}");
                    }
                }
            }
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    behaviour: Behaviour,
    ctx: ConnContext,
) -> std::io::Result<()> {
    match behaviour {
        Behaviour::Echo => {
            let (r, mut w) = stream.split();
            let mut r = BufReader::with_capacity(CHUNK, r);
            tokio::io::copy_buf(&mut r, &mut w).await?;
            w.shutdown().await
        }
        Behaviour::Discard => {
            let mut buf = vec![0u8; CHUNK];
            while stream.read(&mut buf).await? > 0 {}
            Ok(())
        }
        Behaviour::Source => {
            let block: Vec<u8> = (0..CHUNK).map(|i| i as u8).collect();
            loop {
                stream.write_all(&block).await?;
            }
        }
        Behaviour::HttpHello => serve_http(stream, ctx).await,
        Behaviour::Closed => Ok(()),
    }
}

type HttpBody = BoxBody<Bytes, Infallible>;

async fn serve_http(stream: TcpStream, ctx: ConnContext) -> std::io::Result<()> {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        async move {
            if matches!(*req.method(), hyper::Method::POST | hyper::Method::PUT) {
                return Ok::<_, Infallible>(receive_upload(req, &ctx).await);
            }
            Ok::<_, Infallible>(http_hello(&req, &ctx))
        }
    });
    // Half-close on: an HTTP/1.0 client that shuts down its sending side after the request
    // still gets the answer, as from nginx or Apache.
    hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(std::io::Error::other)
}

/// An upload to `http-hello` (`POST`/`PUT` with any path, as `curl -T` sends): the body is read
/// to its end and thrown away, and the answer is `received N bytes\n` — so an upload is timed
/// from its first byte to the moment the container has all of it.
async fn receive_upload(
    req: hyper::Request<hyper::body::Incoming>,
    ctx: &ConnContext,
) -> hyper::Response<HttpBody> {
    let (parts, mut body) = req.into_parts();
    let mut received: u64 = 0;
    let (status, text) = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                }
            }
            Some(Err(e)) => break (400, format!("upload broken after {received} bytes: {e}\n")),
            None => break (200, format!("received {received} bytes\n")),
        }
    };
    ctx.log.write(format!(
        "\"{} {} {:?}\" {status} {received}",
        parts.method, parts.uri, parts.version
    ));
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", text.len())
        .body(full(text))
        .unwrap_or_else(|_| hyper::Response::new(full(String::new())))
}

/// The `http-hello` application: `/` and anything else → `You've hit <pod>\n`; `/headers` →
/// the request headers, one `name: value` per line; `/bytes/N` → N bytes (`i % 256`). Uploads
/// go to [`receive_upload`].
fn http_hello<B>(req: &hyper::Request<B>, ctx: &ConnContext) -> hyper::Response<HttpBody> {
    let path = req.uri().path();
    let (status, len, body): (u16, u64, HttpBody) = if path == "/headers" {
        let text: String = req
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        (200, text.len() as u64, full(text))
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<u64>() {
            Ok(n) => (200, n, byte_stream(n)),
            Err(_) => {
                let text = format!("invalid byte count {n:?}\n");
                (400, text.len() as u64, full(text))
            }
        }
    } else {
        let text = format!("You've hit {}\n", ctx.pod);
        (200, text.len() as u64, full(text))
    };
    ctx.log.write(format!(
        "\"{} {} {:?}\" {status} {len}",
        req.method(),
        req.uri(),
        req.version()
    ));
    hyper::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-length", len)
        .body(body)
        .unwrap_or_else(|_| hyper::Response::new(full(String::new())))
}

fn full(text: String) -> HttpBody {
    Full::new(Bytes::from(text)).boxed()
}

fn byte_stream(total: u64) -> HttpBody {
    let block = Bytes::from((0..CHUNK).map(|i| i as u8).collect::<Vec<u8>>());
    let chunks = futures::stream::unfold(0u64, move |sent| {
        let block = block.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(CHUNK as u64) as usize;
            Some((Ok(Frame::data(block.slice(..n))), sent + n as u64))
        }
    });
    StreamBody::new(chunks).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "annotations": {
                "kubesim.ferry.dev/port.metrics": "source",
                "kubesim.ferry.dev/port.7": "echo",
                "kubesim.ferry.dev/port.9": "closed",
                "kubectl.kubernetes.io/default-container": "side"
            }},
            "spec": {"containers": [
                {"name": "main", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 7},
                           {"containerPort": 9}, {"containerPort": 9100, "name": "metrics"}]},
                {"name": "side", "image": "busybox"}
            ]},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn container_choice_follows_the_apiserver() {
        let p = pod();
        assert_eq!(choose_container(&p, Some("side")).unwrap(), "side");
        assert_eq!(
            choose_container(&p, Some("nope")).unwrap_err().to_string(),
            "container nope is not valid for pod web-1"
        );
        assert_eq!(
            choose_container(&p, None).unwrap_err().to_string(),
            "a container name must be specified for pod web-1, choose one of: [main side]"
        );
        assert_eq!(default_container(&p).as_deref(), Some("side"));
    }

    #[tokio::test]
    async fn listeners_behave_and_die_with_the_pod() {
        let containers = Containers::default();
        reconcile(&containers, "default", "web-1", Some(&pod()));
        let running = containers.running("default", "web-1").expect("running");
        assert!(running.listener(9).is_none(), "closed port must not listen");
        assert_eq!(
            running.container("main").unwrap().env,
            [("A".into(), "1".into())]
        );

        let mut echo = running.connect(7).await.unwrap();
        echo.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        echo.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        let mut http = running.connect(80).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("You've hit web-1\n") {
            let mut chunk = [0u8; 512];
            let n = http.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed early: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&chunk[..n]);
        }

        let mut deleted = pod();
        deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        reconcile(&containers, "default", "web-1", Some(&deleted));
        assert!(containers.running("default", "web-1").is_none());
        assert!(running.stopped.is_cancelled());
        let n = tokio::time::timeout(Duration::from_secs(5), echo.read(&mut buf))
            .await
            .expect("connection must close with the pod");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}
