//! Helpers that make UI tests read like what a person does: start the demo cluster, open the
//! real app on it, click things by their label, and wait (with a deadline) for what should
//! appear.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use ferry::ui::{FerryApp, Runtime, Source, Startup};

/// The demo cluster (kubesim, fast timings) on its own tokio runtime, alive for the test.
pub struct DemoCluster {
    pub sim: kubesim::Kubesim,
    pub runtime: tokio::runtime::Runtime,
    pub profiles: tempfile::TempDir,
}

impl DemoCluster {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for kubesim");
        let world = kubesim::World::try_demo().expect("the demo world loads");
        let config = kubesim::KubesimConfig {
            world,
            timing: kubesim::Timing::fast(),
            ..Default::default()
        };
        let sim = runtime
            .block_on(kubesim::Kubesim::start(config))
            .expect("kubesim starts");
        let profiles = tempfile::tempdir().expect("a temporary profile directory");
        DemoCluster {
            sim,
            runtime,
            profiles,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.sim.kubeconfig_path().to_path_buf()
    }

    /// The real app, wired to a real engine and catalog on this cluster.
    pub fn open_app(&self) -> Harness<'static, FerryApp> {
        let startup = Startup {
            source: Source::Paths(vec![self.kubeconfig()]),
            profiles_dir: Some(self.profiles.path().to_path_buf()),
        };
        Harness::builder()
            .with_size(egui::vec2(1280.0, 800.0))
            .build_eframe(move |cc| {
                let ctx = cc.egui_ctx.clone();
                let runtime = Runtime::start(startup, Arc::new(move || ctx.request_repaint()))
                    .expect("runtime starts");
                FerryApp::new(&cc.egui_ctx, None, runtime)
            })
    }

    /// Deletes a pod the way `kubectl delete pod` does (its deployment replaces it).
    pub fn delete_pod(&self, name: &str) {
        let cluster = self.sim.cluster("demo").expect("the demo cluster");
        kubesim::faults::delete_pod(&cluster, "default", name).expect("the pod can be deleted");
    }
}

/// Steps the app until `done` holds, failing with `what` after `timeout`. Between frames it
/// waits a little for the runtime thread (which wakes the app when something changes).
pub fn wait_for(
    harness: &mut Harness<'_, FerryApp>,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Harness<'_, FerryApp>) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        harness.step();
        if done(harness) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a widget with exactly this label is shown.
pub fn wait_for_label(harness: &mut Harness<'_, FerryApp>, label: &str, timeout: Duration) {
    wait_for(
        harness,
        &format!("\u{201c}{label}\u{201d} to appear"),
        timeout,
        |h| h.query_all_by_label(label).next().is_some(),
    );
}

/// Lets panels that just appeared take their final size, so a click lands where the widget is.
fn settle(harness: &mut Harness<'_, FerryApp>) {
    harness.step();
    harness.step();
}

/// Clicks the first widget with exactly this label and lets the app react.
pub fn click(harness: &mut Harness<'_, FerryApp>, label: &str) {
    settle(harness);
    harness
        .query_all_by_label(label)
        .next()
        .unwrap_or_else(|| panic!("no widget labelled \u{201c}{label}\u{201d}"))
        .click();
    harness.step();
    harness.step();
}

/// Clicks the first widget whose label contains this text.
pub fn click_containing(harness: &mut Harness<'_, FerryApp>, text: &str) {
    settle(harness);
    harness
        .query_all_by_label_contains(text)
        .next()
        .unwrap_or_else(|| panic!("no widget whose label contains \u{201c}{text}\u{201d}"))
        .click();
    harness.step();
    harness.step();
}

/// `GET /` over plain HTTP/1.0 on a local port; the whole response as text.
pub fn http_get(address: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

/// The pod name in kubia's answer (`You've hit kubia-…`).
pub fn hit_pod(response: &str) -> Option<String> {
    let start = response.find("You've hit ")? + "You've hit ".len();
    Some(response[start..].lines().next()?.trim().to_string())
}
