//! Fault injection, each fault observed by a kube-rs client the way it would show on a real
//! cluster: pods disappear or turn NotReady, streams end, port-forward reports errors, new
//! streams are slow, the API server stalls or refuses connections and comes back with its state.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_e2e::kubesim::faults::{self, admin, cli};
use ferry_e2e::streams::{create_running_pod, test_pod};
use ferry_e2e::{TestCluster, start_empty, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

const STEP: Duration = Duration::from_secs(20);

async fn cluster_with_pod(name: &str) -> anyhow::Result<(TestCluster, Api<Pod>)> {
    let tc = start_empty().await?;
    let client = tc.client("demo").await?;
    create_running_pod(&client, test_pod(name, false)).await?;
    Ok((tc, Api::default_namespaced(client)))
}

/// Reads until the stream ends; fails if it is still going after [`STEP`].
async fn ends<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> anyhow::Result<()> {
    tokio::time::timeout(STEP, async {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .context("the stream did not end")
}

fn ready(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn deleted_pod_goes_away_and_takes_its_streams() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("victim").await?;
    let mut pf = pods.portforward("victim", &[19]).await?;
    let mut stream = pf.take_stream(19).context("no stream")?;
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).await?;
    faults::delete_pod(&tc.sim.primary(), "default", "victim")?;
    ends(&mut stream).await?;
    wait_for("the pod to be gone", STEP, || async {
        matches!(pods.get_opt("victim").await, Ok(None)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn not_ready_and_ready_flip_the_ready_condition() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("flaky").await?;
    wait_for("the pod to be Ready", STEP, || async {
        let pod = pods.get("flaky").await.ok()?;
        (ready(&pod).as_deref() == Some("True")).then_some(())
    })
    .await?;
    faults::set_pod_ready(&tc.sim.primary(), "default", "flaky", false)?;
    let pod = pods.get("flaky").await?;
    assert_eq!(ready(&pod).as_deref(), Some("False"));
    faults::set_pod_ready(&tc.sim.primary(), "default", "flaky", true)?;
    let pod = pods.get("flaky").await?;
    assert_eq!(ready(&pod).as_deref(), Some("True"));
    Ok(())
}

#[tokio::test]
async fn dropping_streams_ends_port_forwards_and_execs() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("streams").await?;
    let mut pf = pods.portforward("streams", &[19]).await?;
    let mut stream = pf.take_stream(19).context("no stream")?;
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).await?;
    let mut exec = pods
        .exec("streams", ["sleep", "600"], &AttachParams::default())
        .await?;
    let status = exec.take_status().context("no status future")?;
    faults::drop_streams(&tc.sim.primary());
    ends(&mut stream).await.context("port-forward")?;
    // kube-rs ends the exec without a status when the connection goes away.
    let status = tokio::time::timeout(STEP, status)
        .await
        .context("the exec stream did not end")?;
    assert!(
        status.is_none(),
        "a dropped exec must not report a status: {status:?}"
    );
    // The cluster still serves new streams.
    let mut pf = pods.portforward("streams", &[19]).await?;
    let mut again = pf.take_stream(19).context("no stream")?;
    again.read_exact(&mut first).await?;
    Ok(())
}

#[tokio::test]
async fn injected_port_forward_failure_reports_an_error_until_healed() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("broken").await?;
    let cluster = tc.sim.primary();
    cluster
        .faults
        .fail_port_forward("default", "broken", Some("network is unreachable".into()));
    let mut pf = pods.portforward("broken", &[80]).await?;
    let error = pf.take_error(80).context("no error channel")?;
    let text = tokio::time::timeout(STEP, error)
        .await?
        .context("no error message")?;
    assert!(
        text.starts_with("error forwarding port 80 to pod "),
        "{text}"
    );
    assert!(text.ends_with(": network is unreachable"), "{text}");
    cluster.faults.fail_port_forward("default", "broken", None);
    let mut pf = pods.portforward("broken", &[7]).await?;
    let mut echo = pf.take_stream(7).context("no stream")?;
    tokio::io::AsyncWriteExt::write_all(&mut echo, b"ok").await?;
    let mut buf = [0u8; 2];
    tokio::time::timeout(STEP, echo.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"ok");
    Ok(())
}

#[tokio::test]
async fn added_latency_delays_new_streams() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("slow").await?;
    let cluster = tc.sim.primary();
    cluster
        .faults
        .set_stream_latency(Duration::from_millis(800));
    let t = Instant::now();
    let _pf = pods.portforward("slow", &[80]).await?;
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "took {:?}",
        t.elapsed()
    );
    cluster.faults.set_stream_latency(Duration::ZERO);
    let t = Instant::now();
    let _pf = pods.portforward("slow", &[80]).await?;
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "took {:?}",
        t.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn paused_server_stalls_requests_until_resumed() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("patient").await?;
    let cluster = tc.sim.primary();
    faults::pause_server(&cluster)?;
    let pending = tokio::spawn({
        let pods = pods.clone();
        async move { pods.get("patient").await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "a request completed while the server was paused"
    );
    faults::resume_server(&cluster)?;
    let pod = tokio::time::timeout(STEP, pending).await???;
    assert_eq!(pod.metadata.name.as_deref(), Some("patient"));
    Ok(())
}

#[tokio::test]
async fn stopped_server_refuses_connections_and_restarts_with_its_state() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("survivor").await?;
    let cluster = tc.sim.primary();
    let addr = cluster.server.get().context("not served")?.local_addr();
    faults::stop_server(&cluster).await?;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "the stopped server accepted a connection");
    faults::restart_server(&cluster).await?;
    let pod = wait_for("the restarted server to answer", STEP, || async {
        pods.get("survivor").await.ok()
    })
    .await?;
    assert_eq!(pod.metadata.name.as_deref(), Some("survivor"));
    Ok(())
}

#[tokio::test]
async fn fault_cli_talks_to_the_admin_endpoint() -> anyhow::Result<()> {
    let (tc, pods) = cluster_with_pod("remote").await?;
    let cluster = tc.sim.primary();
    let admin = admin::start(tc.sim.clusters(), 0).await?;
    let file = admin::admin_file_for(tc.kubeconfig());
    admin.write_file(&file)?;
    let file = file.to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let mut argv = vec!["--admin-file", file.as_str()];
        argv.extend_from_slice(args);
        cli::FaultArgs::parse_from(argv)
    };

    cli::run(run(&["pause"])?).await?;
    let server = cluster.server.get().context("not served")?;
    assert!(server.is_paused());
    // The admin endpoint answers while the API server is paused.
    cli::run(run(&["--cluster", "demo", "resume"])?).await?;
    assert!(!server.is_paused());

    cli::run(run(&["fail-port-forward", "remote", "--reason", "boom"])?).await?;
    let mut pf = pods.portforward("remote", &[80]).await?;
    let error = pf.take_error(80).context("no error channel")?;
    let text = tokio::time::timeout(STEP, error)
        .await?
        .context("no error")?;
    assert!(text.ends_with(": boom"), "{text}");

    let err = cli::run(run(&["not-ready", "no-such-pod"])?)
        .await
        .err()
        .context("accepted")?;
    assert!(
        err.to_string()
            .contains("pod default/no-such-pod not found"),
        "{err}"
    );
    Ok(())
}
