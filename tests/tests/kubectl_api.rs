//! The real kubectl (v1.32) against kubesim: what a person typing these commands would see.
//! Each test starts its own kubesim (demo world, fast timing, TLS) and runs kubectl with its
//! own kubeconfig and discovery cache. Without kubectl these tests fail under `CI=true` and
//! say they were skipped otherwise.

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_e2e::{Kubectl, TestCluster, read_until, start_demo, wait_for};
use tokio::io::{AsyncBufReadExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(30);

/// kubesim with the demo world, kubectl for it, and the kubia deployment fully ready.
async fn demo() -> anyhow::Result<Option<(TestCluster, Kubectl)>> {
    let cluster = start_demo().await?;
    let Some(kubectl) = cluster.kubectl() else {
        return Ok(None);
    };
    wait_for_ready_replicas(&kubectl, "kubia", 3).await?;
    Ok(Some((cluster, kubectl)))
}

async fn wait_for_ready_replicas(kubectl: &Kubectl, deploy: &str, n: u32) -> anyhow::Result<()> {
    let want = n.to_string();
    wait_for(
        &format!("deployment {deploy} to have {n} ready replicas"),
        DEADLINE,
        || async {
            let out = kubectl
                .run(&[
                    "get",
                    "deploy",
                    deploy,
                    "-o",
                    "jsonpath={.status.readyReplicas}",
                ])
                .await
                .ok()?;
            (out.success && out.stdout.trim() == want).then_some(())
        },
    )
    .await
}

/// The pod names (`kubia-…`) of the kubia deployment.
async fn kubia_pods(kubectl: &Kubectl) -> anyhow::Result<BTreeSet<String>> {
    let out = kubectl
        .run(&[
            "get",
            "pods",
            "-l",
            "app=kubia",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await?
        .ok()?;
    Ok(out.stdout.split_whitespace().map(str::to_string).collect())
}

/// Words of the header line that starts with `first`, for column checks.
fn header_of(stdout: &str, first: &str) -> Vec<String> {
    stdout
        .lines()
        .find(|l| l.starts_with(first) && l.contains("NAME"))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn get_many_kinds_prints_the_real_columns_and_rows() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl
        .run(&["get", "pods,svc,ep,deploy,ns,nodes,ing", "-A"])
        .await?
        .ok()?;
    let s = &out.stdout;
    let headers: Vec<Vec<String>> = s
        .lines()
        .filter(|l| l.starts_with("NAMESPACE"))
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    let expect = |cols: &[&str]| {
        assert!(
            headers
                .iter()
                .any(|h| h == &cols.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            "missing header {cols:?} in:\n{s}"
        )
    };
    expect(&["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    expect(&[
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ]);
    expect(&["NAMESPACE", "NAME", "ENDPOINTS", "AGE"]);
    expect(&[
        "NAMESPACE",
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ]);
    expect(&["NAMESPACE", "NAME", "STATUS", "AGE"]);
    expect(&["NAMESPACE", "NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    expect(&[
        "NAMESPACE",
        "NAME",
        "CLASS",
        "HOSTS",
        "ADDRESS",
        "PORTS",
        "AGE",
    ]);
    let row = |prefix: &str, must: &[&str]| {
        let line = s
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == prefix))
            .unwrap_or_else(|| panic!("no row {prefix} in:\n{s}"));
        for m in must {
            assert!(line.contains(m), "row {prefix} lacks {m}: {line}");
        }
    };
    row("deployment.apps/kubia", &["3/3"]);
    row("service/kubia-nodeport", &["NodePort", "80:30123/TCP"]);
    row("service/kubia-loadbalancer", &["LoadBalancer"]);
    row("service/kubia-headless", &["None"]);
    row("namespace/default", &["Active"]);
    row("ingress.networking.k8s.io/kubia", &["kubia.example.com"]);
    let kubia_pods = s
        .lines()
        .filter(|l| l.contains("pod/kubia-") && l.contains("Running"))
        .count();
    assert_eq!(kubia_pods, 3, "three running kubia pods in:\n{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("default") && l.contains("endpoints/kubia ")),
        "{s}"
    );
    Ok(())
}

#[tokio::test]
async fn wide_output_adds_ip_and_node_columns() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl
        .run(&["get", "pods", "-o", "wide", "-l", "app=kubia"])
        .await?
        .ok()?;
    assert_eq!(
        header_of(&out.stdout, "NAME"),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    for line in out.stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols[5].starts_with("10."), "a pod IP in {line}");
        assert_ne!(cols[6], "<none>", "a node in {line}");
    }
    Ok(())
}

#[tokio::test]
async fn service_yaml_round_trips_through_apply() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let yaml = kubectl
        .run(&["get", "svc", "kubia", "-o", "yaml"])
        .await?
        .ok()?
        .stdout;
    for field in [
        "apiVersion: v1",
        "kind: Service",
        "clusterIP: 10.",
        "targetPort: https",
        "app: kubia",
    ] {
        assert!(yaml.contains(field), "{field} in:\n{yaml}");
    }
    let applied = kubectl
        .run_with_stdin(&["apply", "-f", "-"], Some(&yaml))
        .await?
        .ok()?;
    assert!(
        applied.stdout.contains("service/kubia"),
        "{}",
        applied.stdout
    );
    let again = kubectl
        .run(&[
            "get",
            "svc",
            "kubia",
            "-o",
            "jsonpath={.spec.ports[1].targetPort} {.spec.selector.app}",
        ])
        .await?
        .ok()?;
    assert_eq!(again.stdout.trim(), "https kubia");
    // Applying the stale copy again is refused, as the apiserver refuses a stale resourceVersion.
    let stale = kubectl
        .run_with_stdin(&["apply", "-f", "-"], Some(&yaml))
        .await?;
    assert!(
        !stale.success && stale.stderr.contains("the object has been modified"),
        "{stale:?}"
    );
    Ok(())
}

#[tokio::test]
async fn describe_service_shows_the_three_ready_endpoints() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = wait_for("describe to list three endpoints", DEADLINE, || async {
        let out = kubectl.run(&["describe", "svc", "kubia"]).await.ok()?;
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("Endpoints:"))?
            .to_string();
        (line.matches(":8080").count() == 3).then_some(out)
    })
    .await?;
    let ips: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Endpoints:"))
        .flat_map(|l| l.split_whitespace().nth(1).unwrap_or_default().split(','))
        .filter_map(|hp| hp.rsplit_once(':').map(|(ip, _)| ip))
        .collect();
    assert_eq!(ips.len(), 3, "{}", out.stdout);
    assert!(out.stdout.contains("Selector:") && out.stdout.contains("app=kubia"));
    Ok(())
}

#[tokio::test]
async fn deleted_pod_is_replaced_and_get_watch_shows_it() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let before = kubia_pods(&kubectl).await?;
    let victim = before.iter().next().cloned().expect("a kubia pod");
    let mut watch = kubectl.spawn(&["get", "pods", "-w", "-l", "app=kubia"])?;
    let mut lines = BufReader::new(watch.stdout.take().expect("piped stdout")).lines();
    // The initial listing: header plus the three pods.
    read_until(&mut lines, DEADLINE, "the initial pod list", |l| {
        l.starts_with("kubia-")
    })
    .await?;
    kubectl.run(&["delete", "pod", &victim]).await?.ok()?;
    let seen = read_until(&mut lines, DEADLINE, "a new Running kubia pod", |l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.len() > 2 && !before.contains(cols[0]) && cols[1] == "1/1" && cols[2] == "Running"
    })
    .await?;
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&victim) && l.contains("Terminating")),
        "{seen:?}"
    );
    let after = kubia_pods(&kubectl).await?;
    assert!(!after.contains(&victim));
    Ok(())
}

#[tokio::test]
async fn scale_deployment_to_five_replicas() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl
        .run(&["scale", "deploy", "kubia", "--replicas=5"])
        .await?
        .ok()?;
    assert_eq!(out.stdout.trim(), "deployment.apps/kubia scaled");
    wait_for_ready_replicas(&kubectl, "kubia", 5).await?;
    let status = kubectl
        .run(&["rollout", "status", "deploy/kubia", "--timeout=20s"])
        .await?
        .ok()?;
    assert!(
        status.stdout.contains("successfully rolled out"),
        "{}",
        status.stdout
    );
    assert_eq!(kubia_pods(&kubectl).await?.len(), 5);
    Ok(())
}

#[tokio::test]
async fn viewer_cannot_delete_pods() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let pod = kubia_pods(&kubectl)
        .await?
        .into_iter()
        .next()
        .expect("a pod");
    let out = kubectl
        .run(&["--context", "demo-viewer", "delete", "pod", &pod])
        .await?;
    assert!(!out.success);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "Error from server (Forbidden): pods \"{pod}\" is forbidden: User \"viewer\" cannot delete resource \"pods\" in API group \"\" in the namespace \"default\""
        )
    );
    // Reading is fine for the viewer.
    kubectl
        .run(&["--context", "demo-viewer", "get", "pods"])
        .await?
        .ok()?;
    Ok(())
}

#[tokio::test]
async fn bad_token_is_unauthorized() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl
        .run(&["--token", "not-a-real-token", "get", "pods"])
        .await?;
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[tokio::test]
async fn restricted_user_cannot_list_namespaces_but_can_use_default() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl
        .run(&["--context", "demo-restricted", "get", "ns"])
        .await?;
    assert!(
        out.stderr
            .contains("Error from server (Forbidden): namespaces is forbidden"),
        "{}",
        out.stderr
    );
    kubectl
        .run(&["--context", "demo-restricted", "get", "pods"])
        .await?
        .ok()?;
    let other = kubectl
        .run(&[
            "--context",
            "demo-restricted",
            "get",
            "pods",
            "-n",
            "kube-system",
        ])
        .await?;
    assert!(other.stderr.contains("Forbidden"), "{}", other.stderr);
    Ok(())
}

#[tokio::test]
async fn missing_pod_is_reported_like_a_real_cluster() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl.run(&["get", "pod", "no-such-pod"]).await?;
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): pods \"no-such-pod\" not found"
    );
    Ok(())
}

#[tokio::test]
async fn api_resources_lists_short_names() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl.run(&["api-resources"]).await?.ok()?;
    for (name, short) in [
        ("pods", "po"),
        ("services", "svc"),
        ("endpoints", "ep"),
        ("namespaces", "ns"),
        ("nodes", "no"),
        ("deployments", "deploy"),
        ("replicasets", "rs"),
        ("ingresses", "ing"),
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(short)),
            "{name} {short} in:\n{}",
            out.stdout
        );
    }
    Ok(())
}

#[tokio::test]
async fn create_label_and_delete_a_pod_from_a_manifest() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  labels:\n    app: hello\nspec:\n  containers:\n  - name: main\n    image: busybox\n    ports:\n    - containerPort: 8080\n";
    let out = kubectl
        .run_with_stdin(&["create", "-f", "-"], Some(manifest))
        .await?
        .ok()?;
    assert_eq!(out.stdout.trim(), "pod/hello created");
    let dup = kubectl
        .run_with_stdin(&["create", "-f", "-"], Some(manifest))
        .await?;
    assert!(dup.stderr.contains("AlreadyExists"), "{}", dup.stderr);
    kubectl
        .run(&["label", "pod", "hello", "tier=web"])
        .await?
        .ok()?;
    kubectl
        .run(&["annotate", "pod", "hello", "note=hi"])
        .await?
        .ok()?;
    let labels = kubectl
        .run(&[
            "get",
            "pod",
            "hello",
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}",
        ])
        .await?
        .ok()?;
    assert_eq!(labels.stdout.trim(), "web hi");
    let selected = kubectl
        .run(&["get", "pods", "-l", "app in (hello),tier!=db", "-o", "name"])
        .await?
        .ok()?;
    assert_eq!(selected.stdout.trim(), "pod/hello");
    let out = kubectl.run(&["delete", "pod", "hello"]).await?.ok()?;
    assert_eq!(out.stdout.trim(), "pod \"hello\" deleted");
    Ok(())
}

#[tokio::test]
async fn field_selectors_and_chunked_lists_work() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let all = kubectl
        .run(&["get", "pods", "-A", "-o", "name"])
        .await?
        .ok()?;
    let chunked = kubectl
        .run(&["get", "pods", "-A", "-o", "name", "--chunk-size=2"])
        .await?
        .ok()?;
    assert_eq!(all.stdout, chunked.stdout);
    let running = kubectl
        .run(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    let pending = kubectl
        .run(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "status.phase=Pending",
            "-o",
            "name",
        ])
        .await?
        .ok()?;
    let total = all.stdout.lines().count();
    assert!(running.stdout.lines().count() >= 3);
    assert!(running.stdout.lines().count() + pending.stdout.lines().count() <= total);
    let bad = kubectl
        .run(&["get", "pods", "--field-selector", "spec.bogus=1"])
        .await?;
    assert!(bad.stderr.contains("BadRequest"), "{}", bad.stderr);
    Ok(())
}

#[tokio::test]
async fn version_reports_the_simulated_server() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let out = kubectl.run(&["version"]).await?.ok()?;
    assert!(
        out.stdout.contains("Server Version: v1.32"),
        "{}",
        out.stdout
    );
    Ok(())
}

#[tokio::test]
async fn auth_can_i_answers_for_each_user() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    let ask = |context: &'static str, args: &'static [&'static str]| {
        let kubectl = kubectl.clone();
        async move {
            let mut full = vec!["--context", context, "auth", "can-i"];
            full.extend_from_slice(args);
            kubectl
                .run(&full)
                .await
                .map(|o| o.stdout.trim().to_string())
        }
    };
    assert_eq!(ask("demo", &["delete", "pods"]).await?, "yes");
    assert_eq!(
        ask(
            "demo-viewer",
            &["create", "pods", "--subresource=portforward"]
        )
        .await?,
        "no"
    );
    assert_eq!(ask("demo-viewer", &["list", "pods"]).await?, "yes");
    assert_eq!(
        ask("demo-restricted", &["list", "pods", "-n", "kube-system"]).await?,
        "no"
    );
    assert_eq!(
        ask(
            "demo-restricted",
            &["create", "pods", "--subresource=portforward"]
        )
        .await?,
        "yes"
    );
    Ok(())
}

#[tokio::test]
async fn events_and_describe_pod_work() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    kubectl.run(&["get", "events", "-A"]).await?.ok()?;
    let pod = kubia_pods(&kubectl)
        .await?
        .into_iter()
        .next()
        .expect("a pod");
    let out = kubectl.run(&["describe", "pod", &pod]).await?.ok()?;
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("Running")),
        "{}",
        out.stdout
    );
    for field in [
        "Name:",
        "Node:",
        "IP:",
        "Containers:",
        "Conditions:",
        "Events:",
    ] {
        assert!(out.stdout.contains(field), "{field} in:\n{}", out.stdout);
    }
    Ok(())
}

#[tokio::test]
async fn configmaps_and_secrets_work_and_viewer_cannot_read_secrets() -> anyhow::Result<()> {
    let Some((_cluster, kubectl)) = demo().await? else {
        return Ok(());
    };
    kubectl
        .run(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=a=1",
            "--from-literal=b=2",
        ])
        .await?
        .ok()?;
    kubectl
        .run(&[
            "create",
            "secret",
            "generic",
            "creds",
            "--from-literal=password=hunter2",
        ])
        .await?
        .ok()?;
    let cm = kubectl.run(&["get", "cm", "settings"]).await?.ok()?;
    assert_eq!(header_of(&cm.stdout, "NAME"), ["NAME", "DATA", "AGE"]);
    assert!(
        cm.stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["settings", "2"])),
        "{}",
        cm.stdout
    );
    let secret = kubectl.run(&["get", "secret", "creds"]).await?.ok()?;
    assert!(
        secret
            .stdout
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["creds", "Opaque", "1"])),
        "{}",
        secret.stdout
    );
    let denied = kubectl
        .run(&["--context", "demo-viewer", "get", "secrets"])
        .await?;
    assert!(denied.stderr.contains("Error from server (Forbidden): secrets is forbidden: User \"viewer\" cannot list resource \"secrets\""), "{}", denied.stderr);
    kubectl
        .run(&["--context", "demo-viewer", "get", "configmaps"])
        .await?
        .ok()?;
    Ok(())
}
