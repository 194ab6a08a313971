//! kube-rs (the client Ferry uses) against kubesim over TLS with the generated kubeconfig:
//! list, watch with resume and 410, create/delete, errors with the apiserver's codes and
//! reasons, RBAC users, pagination, and the server's fault-injection controls.

use std::time::Duration;

use ferry_e2e::{start_demo, start_empty, wait_for};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(20);

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "e2e"}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "ports": [{"containerPort": 8080}]}]},
    }))
    .expect("valid pod")
}

fn api_error(err: kube::Error) -> (u16, String, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_rs_lists_demo_pods_by_label_over_tls() -> anyhow::Result<()> {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let kubia = wait_for("three kubia pods", DEADLINE, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=kubia"))
                .await
                .ok()?;
            (list.items.len() == 3).then_some(list)
        }
    })
    .await?;
    assert!(kubia.metadata.resource_version.is_some());
    let all: Api<Pod> = Api::all(client);
    let everywhere = all.list(&ListParams::default()).await?;
    assert!(
        everywhere.items.len() > kubia.items.len(),
        "pods in every namespace"
    );
    let set_based = pods
        .list(&ListParams::default().labels("app in (kubia),app notin (nope),!missing"))
        .await?;
    assert_eq!(set_based.items.len(), 3);
    Ok(())
}

#[tokio::test]
async fn created_pod_can_be_read_and_deleted() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let created = pods.create(&PostParams::default(), &pod("e2e-a")).await?;
    assert!(created.metadata.uid.is_some());
    let again = pods
        .create(&PostParams::default(), &pod("e2e-a"))
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(again);
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(message, "pods \"e2e-a\" already exists");
    assert_eq!(
        pods.get("e2e-a").await?.metadata.name.as_deref(),
        Some("e2e-a")
    );
    pods.delete("e2e-a", &DeleteParams::default()).await?;
    wait_for("the deleted pod to be gone", DEADLINE, || {
        let pods = pods.clone();
        async move {
            pods.get_opt("e2e-a")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await?;
    let (code, reason, message) = api_error(pods.get("e2e-a").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "pods \"e2e-a\" not found")
    );
    Ok(())
}

#[tokio::test]
async fn creating_in_a_missing_namespace_is_not_found() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "nowhere");
    let (code, reason, message) = api_error(
        pods.create(&PostParams::default(), &pod("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, "namespaces \"nowhere\" not found");
    Ok(())
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    pods.create(&PostParams::default(), &pod("e2e-before-watch"))
        .await?;
    // The pod was created before the watch started: only the resume can show it.
    let mut stream = pods.watch(&WatchParams::default(), &rv).await?.boxed();
    let first = tokio::time::timeout(DEADLINE, stream.try_next()).await??;
    match first {
        Some(WatchEvent::Added(p)) => {
            assert_eq!(p.metadata.name.as_deref(), Some("e2e-before-watch"))
        }
        other => panic!("expected ADDED for the pod created after {rv}, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_expired() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    pods.create(&PostParams::default(), &pod("e2e-compacted"))
        .await?;
    cluster.sim.primary().store.compact();
    let mut stream = pods.watch(&WatchParams::default(), &rv).await?.boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next()).await?? {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected an ERROR event with 410, got {other:?}"),
    }
    // A LIST pinned to the compacted version is refused the same way.
    let exact = ListParams::default()
        .at(&rv)
        .matching(kube::api::VersionMatch::Exact);
    let (code, reason, _) = api_error(pods.list(&exact).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (410, "Expired"));
    Ok(())
}

#[tokio::test]
async fn runtime_watcher_recovers_after_compaction() -> anyhow::Result<()> {
    use kube::runtime::watcher;
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let mut events = watcher(pods.clone(), watcher::Config::default()).boxed();
    let init_done = async {
        while let Some(ev) = events.try_next().await? {
            if matches!(ev, watcher::Event::InitDone) {
                return Ok::<(), watcher::Error>(());
            }
        }
        Ok(())
    };
    tokio::time::timeout(DEADLINE, init_done).await??;
    pods.create(&PostParams::default(), &pod("e2e-live"))
        .await?;
    let seen = async {
        while let Some(ev) = events.next().await {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev
                && p.metadata.name.as_deref() == Some("e2e-live")
            {
                return true;
            }
        }
        false
    };
    assert!(
        tokio::time::timeout(DEADLINE, seen).await?,
        "the watcher saw the new pod"
    );
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_the_apiservers_status_codes() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let client = cluster.client("demo").await?;
    let get = |uri: &str| http::Request::get(uri).body(Vec::new()).expect("request");
    let (code, reason, message) = api_error(
        client
            .request::<serde_json::Value>(get("/api/v1/namespaces/default/foos"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, "the server could not find the requested resource");

    let (code, reason, _) = api_error(
        client
            .request::<serde_json::Value>(get(
                "/api/v1/namespaces/default/pods?labelSelector=app%20in%20(",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    let (code, reason, _) = api_error(
        client
            .request::<serde_json::Value>(get(
                "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3Dx",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    let malformed = http::Request::post("/api/v1/namespaces/default/pods")
        .header("content-type", "application/json")
        .body(b"{\"metadata\": {".to_vec())?;
    let (code, reason, _) = api_error(
        client
            .request::<serde_json::Value>(malformed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));

    let wrong_kind = http::Request::post("/api/v1/namespaces/default/pods")
        .header("content-type", "application/json")
        .body(br#"{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"x"}}"#.to_vec())?;
    let (code, reason, message) = api_error(
        client
            .request::<serde_json::Value>(wrong_kind)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    assert!(
        message.contains("does not match the expected API version"),
        "{message}"
    );

    let put_collection =
        http::Request::put("/api/v1/namespaces/default/pods").body(b"{}".to_vec())?;
    let (code, reason, _) = api_error(
        client
            .request::<serde_json::Value>(put_collection)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (405, "MethodNotAllowed"));

    // After all that the server still answers.
    let pods: Api<Pod> = Api::namespaced(client, "default");
    pods.list(&ListParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn users_get_what_their_role_allows() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let restricted = cluster.client("demo-restricted").await?;
    let namespaces: Api<Namespace> = Api::all(restricted.clone());
    let (code, reason, message) =
        api_error(namespaces.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "namespaces is forbidden: User \"restricted\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    Api::<Pod>::namespaced(restricted, "default")
        .list(&ListParams::default())
        .await?;

    let viewer = cluster.client("demo-viewer").await?;
    let pods: Api<Pod> = Api::namespaced(viewer, "default");
    pods.list(&ListParams::default()).await?;
    let (code, reason, _) = api_error(
        pods.create(&PostParams::default(), &pod("nope"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));

    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig())?;
    let mut bad =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    bad.auth_info.token = Some("not-a-token".to_string().into());
    let anonymous: Api<Pod> = Api::namespaced(kube::Client::try_from(bad)?, "default");
    let (code, reason, _) = api_error(anonymous.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    Ok(())
}

#[tokio::test]
async fn paginated_lists_return_every_item_once() -> anyhow::Result<()> {
    let cluster = start_demo().await?;
    let pods: Api<Pod> = Api::all(cluster.client("demo").await?);
    let full: Vec<String> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let mut paged = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = pods.list(&params).await?;
        assert!(page.items.len() <= 2);
        paged.extend(page.items.into_iter().filter_map(|p| p.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(paged.len(), full.len());
    let (code, reason, _) = api_error(
        pods.list(&ListParams::default().continue_token("garbage"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    Ok(())
}

#[tokio::test]
async fn staging_is_a_separate_cluster() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let demo: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let staging: Api<Pod> = Api::namespaced(cluster.client("staging").await?, "default");
    demo.create(&PostParams::default(), &pod("only-in-demo"))
        .await?;
    assert!(staging.get_opt("only-in-demo").await?.is_none());
    assert_ne!(
        cluster.sim.server_url("demo"),
        cluster.sim.server_url("staging")
    );
    Ok(())
}

#[tokio::test]
async fn stopped_server_restarts_on_the_same_port_with_its_state() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods.create(&PostParams::default(), &pod("survivor"))
        .await?;
    let control = cluster.sim.server("demo").expect("demo is served");
    let addr = control.local_addr();
    control.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed while stopped"
    );
    control.restart().await?;
    assert_eq!(control.local_addr(), addr);
    let fresh: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    assert!(
        fresh.get_opt("survivor").await?.is_some(),
        "state survived the restart"
    );
    Ok(())
}

#[tokio::test]
async fn paused_server_stalls_requests_until_resumed() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods.list(&ListParams::default()).await?;
    let control = cluster.sim.server("demo").expect("demo is served");
    control.pause();
    let stalled = tokio::time::timeout(
        Duration::from_millis(500),
        pods.list(&ListParams::default()),
    )
    .await;
    assert!(stalled.is_err(), "a request to a paused server must hang");
    control.resume();
    tokio::time::timeout(DEADLINE, pods.list(&ListParams::default())).await??;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn kubeconfig_is_readable_only_by_its_owner() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let cluster = start_empty().await?;
    let mode = std::fs::metadata(cluster.kubeconfig())?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(cluster.kubeconfig())?;
    assert!(text.contains("certificate-authority-data"));
    for ctx in ["demo", "demo-restricted", "demo-viewer", "staging"] {
        assert!(text.contains(&format!("name: {ctx}")), "context {ctx}");
    }
    Ok(())
}

#[tokio::test]
async fn watch_with_a_selector_sees_objects_leave_it() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    pods.create(&PostParams::default(), &pod("e2e-relabel"))
        .await?;
    let mut stream = pods
        .watch(&WatchParams::default().labels("app=e2e"), "0")
        .await?
        .boxed();
    match tokio::time::timeout(DEADLINE, stream.try_next()).await?? {
        Some(WatchEvent::Added(p)) => assert_eq!(p.metadata.name.as_deref(), Some("e2e-relabel")),
        other => panic!("expected the synthetic ADDED, got {other:?}"),
    }
    let patch = json!({"metadata": {"labels": {"app": "other"}}});
    pods.patch(
        "e2e-relabel",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    // The pod no longer matches: a selector watch reports it as DELETED, like the apiserver.
    loop {
        match tokio::time::timeout(DEADLINE, stream.try_next()).await?? {
            Some(WatchEvent::Deleted(p)) => {
                assert_eq!(p.labels().get("app").map(String::as_str), Some("other"));
                break;
            }
            Some(WatchEvent::Modified(_)) => continue,
            other => panic!("expected DELETED after relabelling, got {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn watch_sends_bookmarks_and_ends_at_its_timeout() -> anyhow::Result<()> {
    let cluster = start_empty().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let params = WatchParams {
        bookmarks: true,
        ..WatchParams::default().timeout(7)
    };
    let started = std::time::Instant::now();
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(20),
        pods.watch(&params, &rv).await?.collect(),
    )
    .await?;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(6),
        "ended after {elapsed:?}, before the timeout"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "a BOOKMARK within 7 s: {events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() -> anyhow::Result<()> {
    use kube::runtime::watcher;
    let cluster = start_demo().await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client("demo").await?, "default");
    let config = watcher::Config::default()
        .streaming_lists()
        .labels("app=kubia");
    let mut events = watcher(pods.clone(), config).boxed();
    let mut initial = Vec::new();
    let done = async {
        while let Some(ev) = events.try_next().await? {
            match ev {
                watcher::Event::InitApply(p) => initial.push(p.metadata.name.unwrap_or_default()),
                watcher::Event::InitDone => return Ok::<(), watcher::Error>(()),
                _ => {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(DEADLINE, done).await??;
    assert!(
        !initial.is_empty(),
        "initial events before the initial-events-end bookmark"
    );
    Ok(())
}

#[tokio::test]
async fn plain_http_mode_serves_the_same_api() -> anyhow::Result<()> {
    let cluster = ferry_e2e::start_with(ferry_e2e::kubesim::KubesimConfig {
        plain_http: true,
        ..Default::default()
    })
    .await?;
    let url = cluster.sim.server_url("demo").unwrap_or_default();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(cluster.sim.ca_pem().is_none());
    let namespaces: Api<Namespace> = Api::all(cluster.client("demo").await?);
    let list = namespaces.list(&ListParams::default()).await?;
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("kube-system"))
    );
    Ok(())
}
