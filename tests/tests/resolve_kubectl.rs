//! Ferry's target resolution judged by the real `kubectl port-forward`: for every port of the
//! demo services, kubectl's "Forwarding from … -> N" must name the container port Ferry's
//! `resolve_service_port` computes for the pod Ferry ranks first, kubectl's traffic must reach
//! that same pod, and what kubectl refuses Ferry refuses too.

use std::time::Duration;

use ferry_core::resolve::{self, PodQuery, TargetObject};
use ferry_core::spec::{RemotePort, Target};
use ferry_e2e::{Kubectl, TestCluster, read_until, start_demo, wait_for};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;
use tokio::io::{AsyncBufReadExt, BufReader};

type Result = anyhow::Result<()>;

/// Waits until every pod of the service is Ready, returns the service and its pods.
async fn service_and_pods(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
) -> anyhow::Result<(Service, Vec<Pod>)> {
    let client = cluster.client("demo").await?;
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let PodQuery::Labels(selector) = resolve::target_selector(
        &Target::Service(name.into()),
        Some(TargetObject::Service(&svc)),
    )?
    else {
        anyhow::bail!("a service selects by labels");
    };
    let pods_api = Api::<Pod>::namespaced(client, ns);
    let pods = wait_for(
        &format!("all pods of svc/{name} Ready"),
        Duration::from_secs(20),
        || {
            let pods_api = pods_api.clone();
            let selector = selector.clone();
            async move {
                let pods = pods_api
                    .list(&ListParams::default().labels_from(&selector))
                    .await
                    .ok()?
                    .items;
                (!pods.is_empty() && pods.iter().all(resolve::is_pod_ready)).then_some(pods)
            }
        },
    )
    .await?;
    Ok((svc, pods))
}

/// Starts `kubectl port-forward` and returns it with the "-> N" of its first line.
async fn kubectl_forward(
    kubectl: &Kubectl,
    ns: &str,
    target: &str,
    port: &str,
) -> anyhow::Result<(tokio::process::Child, u16, u16)> {
    let mut child = kubectl.spawn(&[
        "port-forward",
        "-n",
        ns,
        target,
        port,
        "--address",
        "127.0.0.1",
    ])?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let seen = match read_until(
        &mut lines,
        Duration::from_secs(30),
        "Forwarding from",
        |l| l.starts_with("Forwarding from"),
    )
    .await
    {
        Ok(seen) => seen,
        Err(e) => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), pipe.read_to_string(&mut stderr))
                        .await;
            }
            anyhow::bail!("kubectl port-forward {target} {port}: {e}; stderr: {stderr}");
        }
    };
    let line = seen.last().cloned().unwrap_or_default();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let (from, to) = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_once(" -> "))
        .ok_or_else(|| anyhow::anyhow!("unexpected kubectl output: {line}"))?;
    Ok((child, from.trim().parse()?, to.trim().parse()?))
}

async fn kubectl_error(
    kubectl: &Kubectl,
    ns: &str,
    target: &str,
    port: &str,
) -> anyhow::Result<String> {
    let out = kubectl
        .run(&[
            "port-forward",
            "-n",
            ns,
            target,
            port,
            "--address",
            "127.0.0.1",
        ])
        .await?;
    anyhow::ensure!(
        !out.success,
        "kubectl port-forward {target} {port} should fail"
    );
    Ok(out.stderr)
}

#[tokio::test]
async fn service_ports_resolve_to_the_same_container_ports_as_kubectl() -> Result {
    let cluster = start_demo().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    let cases = [
        ("default", "kubia"),
        ("default", "kubia-headless"),
        ("default", "kubia-sticky"),
        ("shop", "postgres"),
        ("shop", "web"),
    ];
    for (ns, name) in cases {
        let (svc, pods) = service_and_pods(&cluster, ns, name).await?;
        let best = resolve::rank_ready_pods(&pods)[0];
        let ports = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        for port in ports {
            let mut remotes = vec![RemotePort::Number(u16::try_from(port.port)?)];
            remotes.extend(port.name.clone().map(RemotePort::Name));
            for remote in remotes {
                let ours = resolve::resolve_service_port(&svc, best, &remote)?;
                let (_child, _, theirs) =
                    kubectl_forward(&kubectl, ns, &format!("svc/{name}"), &format!(":{remote}"))
                        .await?;
                assert_eq!(ours, theirs, "svc/{name} in {ns}, remote {remote}");
            }
        }
    }
    Ok(())
}

/// kubectl's request log (`-v=6`) shows which pod it chose: `…/pods/NAME/portforward`.
#[tokio::test]
async fn kubectl_forwards_to_the_pod_ferry_ranks_first() -> Result {
    let cluster = start_demo().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    let (_, pods) = service_and_pods(&cluster, "default", "kubia").await?;
    assert_eq!(pods.len(), 3);
    let ranked: Vec<String> = resolve::rank_ready_pods(&pods)
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let chosen = kubectl_choice(&kubectl).await?;
    assert_eq!(
        chosen, ranked[0],
        "kubectl chose {chosen}; Ferry ranks {ranked:?}"
    );

    // Replace the chosen pod: its replacement is Ready most recently, so both must now prefer
    // one of the older pods, whatever the names.
    let pods_api: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods_api.delete(&ranked[0], &Default::default()).await?;
    let gone = ranked[0].clone();
    let pods = wait_for(
        "three Ready kubia pods again",
        Duration::from_secs(30),
        || {
            let pods_api = pods_api.clone();
            let gone = gone.clone();
            async move {
                let pods = pods_api
                    .list(&ListParams::default().labels("app=kubia"))
                    .await
                    .ok()?
                    .items;
                let fresh = pods
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(gone.as_str()));
                (fresh && pods.len() == 3 && pods.iter().all(resolve::is_pod_ready)).then_some(pods)
            }
        },
    )
    .await?;
    let ranked: Vec<String> = resolve::rank_ready_pods(&pods)
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let chosen = kubectl_choice(&kubectl).await?;
    assert_eq!(
        chosen, ranked[0],
        "after replacement kubectl chose {chosen}; Ferry ranks {ranked:?}"
    );
    Ok(())
}

#[tokio::test]
async fn what_kubectl_refuses_ferry_refuses() -> Result {
    let cluster = start_demo().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(());
    };
    let client = cluster.client("demo").await?;
    let services = Api::<Service>::namespaced(client, "default");

    let external = services.get("external-service").await?;
    let theirs = kubectl_error(&kubectl, "default", "svc/external-service", ":80").await?;
    assert!(theirs.contains("without a selector"), "{theirs}");
    let ours = resolve::target_selector(
        &Target::Service("external-service".into()),
        Some(TargetObject::Service(&external)),
    );
    assert!(
        matches!(
            ours,
            Err(resolve::ResolveError::ServiceWithoutSelector { .. })
        ),
        "{ours:?}"
    );

    let (kubia, pods) = service_and_pods(&cluster, "default", "kubia").await?;
    let best = resolve::rank_ready_pods(&pods)[0];
    for (remote, parsed) in [
        (":81", RemotePort::Number(81)),
        (":metrics", RemotePort::Name("metrics".into())),
    ] {
        let theirs = kubectl_error(&kubectl, "default", "svc/kubia", remote).await?;
        assert!(theirs.contains("does not have"), "{theirs}");
        let ours = resolve::resolve_service_port(&kubia, best, &parsed).expect_err("refused");
        assert!(
            ours.to_string()
                .starts_with("service \"kubia\" has no port"),
            "{ours}"
        );
    }
    Ok(())
}

/// Starts `kubectl port-forward -v=6 svc/kubia :80` and reads its log until the portforward
/// request names the chosen pod; kubectl is killed afterwards (it keeps forwarding).
async fn kubectl_choice(kubectl: &Kubectl) -> anyhow::Result<String> {
    let mut child =
        kubectl.spawn(&["port-forward", "-v=6", "-n", "default", "svc/kubia", ":80"])?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = BufReader::new(stderr).lines();
    let seen = read_until(
        &mut lines,
        Duration::from_secs(30),
        "a portforward request",
        |l| l.contains("/portforward"),
    )
    .await?;
    let _ = child.start_kill();
    let line = seen.last().cloned().unwrap_or_default();
    line.split("/pods/")
        .nth(1)
        .and_then(|rest| rest.split_once("/portforward"))
        .map(|(name, _)| name.to_string())
        .ok_or_else(|| anyhow::anyhow!("no pod in kubectl's log line: {line}"))
}
