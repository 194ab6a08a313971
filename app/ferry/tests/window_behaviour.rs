//! What a person notices in the window, on a fixed demo-like model (no cluster): filtering,
//! sorting, the forward dialog's safety checks, bulk actions, and services that cannot be
//! forwarded. Requests the window sends are read from the fixed runtime.

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use ferry::ui::commands::{Command, Tab};
use ferry::ui::runtime::Request;
use ferry::ui::{FerryApp, Runtime, fixture};
use tokio::sync::mpsc::UnboundedReceiver;

fn window(extra_pods: usize, tab: Tab) -> (Harness<'static, FerryApp>, UnboundedReceiver<Request>) {
    let (runtime, requests) = Runtime::fixed(fixture::model(extra_pods));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(|cc| FerryApp::new(&cc.egui_ctx, None, runtime));
    let ctx = harness.ctx.clone();
    for c in [
        Command::SelectContext("demo".into()),
        Command::SelectNamespace("default".into()),
        Command::SelectTab(tab),
    ] {
        harness.state_mut().apply(&ctx, c);
    }
    harness.run_steps(2);
    (harness, requests)
}

fn sent(requests: &mut UnboundedReceiver<Request>) -> Vec<Request> {
    std::iter::from_fn(|| requests.try_recv().ok()).collect()
}

/// Clicks a widget by label. Panels that just appeared settle over a couple of frames, so
/// the layout is stepped before (to click where the widget really is) and after the click.
fn click(h: &mut Harness<'_, FerryApp>, label: &str) {
    h.run_steps(2);
    h.query_all_by_label(label)
        .next()
        .unwrap_or_else(|| panic!("no \u{201c}{label}\u{201d}"))
        .click();
    h.run_steps(3);
}

#[test]
fn ctrl_f_filters_the_pods_table_and_escape_clears_it() {
    let (mut h, _) = window(200, Tab::Pods);
    assert!(h.query_all_by_label_contains("kubia-").next().is_some());
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    h.run_steps(2);
    h.event(egui::Event::Text("postgres".into()));
    h.run_steps(2);
    assert!(
        h.query_by_label("postgres-0").is_some(),
        "the matching pod stays"
    );
    assert_eq!(
        h.query_all_by_label_contains("kubia-").count(),
        0,
        "others are filtered out"
    );
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert!(
        h.query_all_by_label_contains("kubia-").next().is_some(),
        "Escape clears the filter"
    );
}

#[test]
fn clicking_a_header_sorts_by_that_column_and_again_reverses() {
    let (mut h, _) = window(0, Tab::Pods);
    let first_row = |h: &Harness<'_, FerryApp>| {
        let mut rows: Vec<(f32, String)> = [
            "kubia-7d4b9c6f5-2xkqp",
            "postgres-0",
            "redis-6c9f8d7b4-l2x9c",
        ]
        .iter()
        .filter_map(|n| {
            h.query_by_label(n)
                .map(|node| (node.rect().top(), n.to_string()))
        })
        .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows.first().map(|r| r.1.clone()).unwrap_or_default()
    };
    click(&mut h, "Name");
    assert_eq!(first_row(&h), "kubia-7d4b9c6f5-2xkqp");
    click(&mut h, "Name ⏶");
    assert_eq!(first_row(&h), "redis-6c9f8d7b4-l2x9c");
}

#[test]
fn listening_on_all_interfaces_needs_a_confirmation() {
    let (mut h, mut requests) = window(0, Tab::Services);
    click(&mut h, "kubia");
    click(&mut h, "⇄ Forward…");
    click(&mut h, "all interfaces (0.0.0.0)");
    let start = h.get_by_label("Start forwarding");
    assert!(
        start.accesskit_node().is_disabled(),
        "cannot start without the confirmation"
    );
    click(&mut h, "⚠ Anyone who can reach this computer may connect");
    click(&mut h, "Start forwarding");
    let start = sent(&mut requests).into_iter().find_map(|r| match r {
        Request::StartTunnel { spec, .. } => Some(spec),
        _ => None,
    });
    let spec = start.expect("the tunnel was started");
    assert_eq!(
        spec.bind,
        vec!["0.0.0.0".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(spec.target.to_kubectl(), "svc/kubia");
}

#[test]
fn the_forward_dialog_binds_loopback_and_checks_local_ports() {
    let (mut h, mut requests) = window(0, Tab::Services);
    click(&mut h, "kubia");
    click(&mut h, "⇄ Forward…");
    let checks: Vec<_> = sent(&mut requests)
        .into_iter()
        .filter_map(|r| match r {
            Request::CheckPort { bind, port } => Some((bind, port)),
            _ => None,
        })
        .collect();
    assert_eq!(
        checks,
        vec![("127.0.0.1".parse().unwrap(), 8080)],
        "port 80 is offered locally as 8080"
    );
    click(&mut h, "Start forwarding");
    let spec = sent(&mut requests)
        .into_iter()
        .find_map(|r| match r {
            Request::StartTunnel { spec, .. } => Some(spec),
            _ => None,
        })
        .expect("the tunnel was started");
    assert!(spec.bind.is_empty(), "loopback is the default");
    assert_eq!(
        spec.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["8080:80"]
    );
}

#[test]
fn bulk_stop_stops_every_checked_tunnel() {
    let (mut h, mut requests) = window(0, Tab::Tunnels);
    // The table's checkboxes (the sidebar's profile toggle is a checkbox too).
    let checkboxes: Vec<egui::Rect> = h
        .query_all(egui_kittest::kittest::by().role(egui::accesskit::Role::CheckBox))
        .map(|n| n.rect())
        .filter(|r| r.left() > 212.0)
        .collect();
    assert_eq!(checkboxes.len(), 3, "one checkbox per tunnel");
    for rect in checkboxes.iter().take(2) {
        h.hover_at(rect.center());
        h.event(egui::Event::PointerButton {
            pos: rect.center(),
            button: egui::PointerButton::Primary,
            pressed: true,
            modifiers: Default::default(),
        });
        h.event(egui::Event::PointerButton {
            pos: rect.center(),
            button: egui::PointerButton::Primary,
            pressed: false,
            modifiers: Default::default(),
        });
        h.run_steps(2);
    }
    assert!(h.query_by_label("2 selected").is_some());
    click(&mut h, "⏹ Stop");
    let stopped = sent(&mut requests).into_iter().find_map(|r| match r {
        Request::StopTunnels(ids) => Some(ids),
        _ => None,
    });
    assert_eq!(stopped, Some(vec!["t1".to_string(), "t2".to_string()]));
}

#[test]
fn a_selectorless_service_says_why_it_cannot_be_forwarded() {
    let (mut h, _) = window(0, Tab::Services);
    click(&mut h, "external-db");
    assert!(h.query_by_label("⚠ Cannot be forwarded").is_some());
    assert!(
        h.query_by_label("⇄ Forward…").is_none(),
        "no Forward button"
    );
    assert!(
        h.query_by_label("192.0.2.50").is_some(),
        "its manual endpoint is listed"
    );
}

#[test]
fn current_tunnels_can_be_saved_as_a_profile() {
    let (mut h, mut requests) = window(0, Tab::Tunnels);
    click(&mut h, "Save as profile…");
    // The window's name field is the last text field (the tunnels filter comes first).
    h.query_all(egui_kittest::kittest::by().role(egui::accesskit::Role::TextInput))
        .last()
        .expect("the profile name field")
        .click();
    h.run_steps(2);
    h.event(egui::Event::Text("backend-2".into()));
    h.run_steps(2);
    click(&mut h, "Save the 3 current tunnels");
    let saved = sent(&mut requests).into_iter().find_map(|r| match r {
        Request::SaveProfile { name, tunnels, .. } => Some((name, tunnels.len())),
        _ => None,
    });
    assert_eq!(saved, Some(("backend-2".to_string(), 3)));
}

#[test]
fn ages_keep_moving_in_an_idle_window() {
    let (mut h, _) = window(0, Tab::Pods);
    h.run_steps(2);
    // The fixture's pods are minutes old: the Age column's text next changes within a minute,
    // and the window asks to be woken then: not at every frame, and not never.
    let shown = h.output().viewport_output[&egui::ViewportId::ROOT].repaint_delay;
    assert!(
        shown > std::time::Duration::ZERO && shown <= std::time::Duration::from_secs(60),
        "repaint delay with ages on screen: {shown:?}"
    );
}

/// Issue 10 item 19: the tunnels table clips a long pod name and shows only a tunnel's first
/// local address; hovering shows the whole text.
#[test]
fn the_tunnels_table_shows_clipped_pods_and_further_addresses_on_hover() {
    let mut model = fixture::model(0);
    let tunnels = std::sync::Arc::make_mut(&mut model.tunnels);
    let second = tunnels[0].listeners[0].clone();
    tunnels[0].listeners.push(ferry::ui::model::Listener {
        local: ([127, 0, 0, 1], 9443).into(),
        remote: "https".into(),
        ..second
    });
    let (runtime, _requests) = Runtime::fixed(model);
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(|cc| FerryApp::new(&cc.egui_ctx, None, runtime));
    let ctx = h.ctx.clone();
    for c in [
        Command::SelectContext("demo".into()),
        Command::SelectNamespace("default".into()),
        Command::SelectTab(Tab::Tunnels),
    ] {
        h.state_mut().apply(&ctx, c);
    }
    // Tooltips show at once instead of after egui's half-second delay.
    ctx.all_styles_mut(|s| s.interaction.tooltip_delay = 0.0);
    h.run_steps(3);

    h.get_by_label("kubia-7d4b9c6f5-2xkqp").hover();
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("Serving pod: kubia-7d4b9c6f5-2xkqp")
            .next()
            .is_some(),
        "hovering the pod shows its whole name"
    );

    h.get_by_label("+1").hover();
    h.run_steps(3);
    assert!(
        h.query_all_by_label_contains("127.0.0.1:9443 → remote port https")
            .next()
            .is_some(),
        "hovering +1 lists the second port's address"
    );
}

/// Closing the window while tunnels forward and no tray shows Ferry asks first: keeping them
/// closes the window only, quitting asks the instance to quit, cancelling keeps the window.
#[test]
fn closing_with_running_tunnels_and_no_tray_asks_what_to_do() {
    let close = |h: &mut Harness<'_, FerryApp>| {
        h.input_mut()
            .viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .events
            .push(egui::ViewportEvent::Close);
        h.run_steps(3);
    };
    let (mut h, mut requests) = window(0, Tab::Tunnels);
    assert!(
        h.state()
            .model()
            .tunnels
            .iter()
            .any(|t| t.status.is_running()),
        "the fixture has running tunnels"
    );
    close(&mut h);
    assert!(
        h.query_by_label("Keep forwarding?").is_some(),
        "the question is asked"
    );
    click(&mut h, "Cancel");
    assert!(h.query_by_label("Keep forwarding?").is_none());
    assert!(!sent(&mut requests).contains(&Request::Quit));

    close(&mut h);
    click(&mut h, "Quit Ferry");
    assert!(
        sent(&mut requests).contains(&Request::Quit),
        "quitting asks the instance"
    );

    let (mut h, mut requests) = window(0, Tab::Tunnels);
    close(&mut h);
    click(&mut h, "Keep forwarding in the background");
    assert!(h.query_by_label("Keep forwarding?").is_none());
    assert!(
        !sent(&mut requests).contains(&Request::Quit),
        "the tunnels keep running"
    );
}
