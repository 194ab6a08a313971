//! A person's first session, driven through the real window (egui_kittest) on the demo cluster
//! (kubesim): choose the context, find the kubia pods, forward the kubia service from its
//! details, see the tunnel become Active, reach a pod through it, and keep it Active while that
//! pod is deleted and replaced.

mod support;

use std::time::Duration;

use egui_kittest::kittest::Queryable;
use ferry::ui::model::TunnelStatus;
use support::{DemoCluster, click, click_containing, hit_pod, http_get, wait_for, wait_for_label};

const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn forwarding_a_service_from_the_window_survives_deleting_its_pod() {
    let cluster = DemoCluster::start();
    let mut app = cluster.open_app();

    // Choose the demo context and see the kubia pods.
    wait_for_label(&mut app, "demo", PATIENCE);
    click(&mut app, "demo");
    wait_for(&mut app, "the three kubia pods", PATIENCE, |h| {
        h.query_all_by_label_contains("kubia-").count() >= 3
    });

    // Open service kubia and press Forward….
    click_containing(&mut app, "Services");
    wait_for_label(&mut app, "kubia", PATIENCE);
    click(&mut app, "kubia");
    wait_for_label(&mut app, "⇄ Forward…", PATIENCE);
    click(&mut app, "⇄ Forward…");

    // Every port is checked and its local port checked free (or moved to the next free one).
    wait_for_label(&mut app, "Start forwarding", PATIENCE);
    wait_for(
        &mut app,
        "both local ports to be checked free",
        PATIENCE,
        |h| {
            if let Some(fix) = h.query_all_by_label("use next free").next() {
                fix.click();
            }
            h.query_all_by_label("free").count() == 2
        },
    );
    click(&mut app, "Start forwarding");

    // The tunnels tab shows it Active, going to a kubia pod.
    wait_for(&mut app, "the tunnel to become Active", PATIENCE, |h| {
        let model = h.state().model();
        model
            .tunnels
            .first()
            .is_some_and(|t| t.status == TunnelStatus::Active && t.pod.is_some())
            && h.query_all_by_label("Active").next().is_some()
    });
    let tunnel = app.state().model().tunnels[0].clone();
    assert_eq!(tunnel.spec.target.to_kubectl(), "svc/kubia");
    let http = tunnel
        .listeners
        .iter()
        .find(|l| l.remote == "80")
        .expect("a listener for port 80");
    assert!(
        http.local.ip().is_loopback(),
        "binds loopback by default, got {}",
        http.local
    );

    // A request through the local port reaches the pod the row names.
    let response = http_get(http.local).expect("the local port answers");
    let first = hit_pod(&response).unwrap_or_else(|| panic!("not kubia's answer: {response}"));
    assert!(first.starts_with("kubia-"), "{response}");
    assert_eq!(
        tunnel.pod.as_deref(),
        Some(first.as_str()),
        "the row names the pod that answered"
    );
    assert!(
        app.query_all_by_label(&first).next().is_some(),
        "the row shows pod {first}"
    );

    // Delete that pod: the row stays Active and now names another pod, which answers.
    cluster.delete_pod(&first);
    wait_for(
        &mut app,
        "the tunnel to move to another pod",
        PATIENCE,
        |h| {
            let model = h.state().model();
            model.tunnels.first().is_some_and(|t| {
                t.status == TunnelStatus::Active && t.pod.as_deref().is_some_and(|p| p != first)
            })
        },
    );
    let moved = app.state().model().tunnels[0].pod.clone().expect("a pod");
    wait_for_label(&mut app, &moved, PATIENCE);
    assert!(
        app.query_all_by_label("Active").next().is_some(),
        "the row still says Active"
    );
    let response = http_get(http.local).expect("the local port still answers");
    let second = hit_pod(&response).unwrap_or_else(|| panic!("not kubia's answer: {response}"));
    assert_ne!(second, first, "the deleted pod cannot answer");
    assert_eq!(second, moved, "the row names the pod that answers now");
}
