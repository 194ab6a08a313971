//! Terminal benchmark: 20 MB of output (`seq 1 2700000`) through a shell in a kubia pod of
//! the demo cluster (kubesim, in this process), while the real app draws the terminal dock at
//! 60 frames a second. Reports the egui pass (median, p95, max; goal p95 < 16 ms), how long
//! the stream took, memory before and after (bounded by the scrollback), and the CPU the
//! process spends with the shell open and idle.
//!
//! `cargo run --release -p ferry --example terminal_bench [LINES]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Event, Pos2, RawInput, Rect, vec2};
use ferry::ui::commands::Command;
use ferry::ui::{FerryApp, Runtime, Source, Startup};
use ferry_core::exec::TerminalStatus;

struct Bench {
    ctx: egui::Context,
    app: FerryApp,
    frame: eframe::Frame,
    time: f64,
}

impl Bench {
    /// One frame with these input events; returns the egui pass's duration.
    fn frame(&mut self, events: Vec<Event>) -> Duration {
        self.time += 1.0 / 60.0;
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(1280.0, 800.0))),
            time: Some(self.time),
            events,
            ..Default::default()
        };
        let started = Instant::now();
        let ctx = self.ctx.clone();
        let (app, frame) = (&mut self.app, &mut self.frame);
        let mut output = ctx.run_ui(input, |ui| {
            eframe::App::logic(app, &ctx, frame);
            eframe::App::ui(app, ui, frame);
        });
        let pass = started.elapsed();
        output.textures_delta.clear();
        std::hint::black_box(ctx.tessellate(output.shapes, output.pixels_per_point));
        pass
    }

    /// Runs frames (60 a second, as a display would) until `done` holds or `limit` passes.
    fn frames_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&FerryApp) -> bool,
    ) -> Vec<Duration> {
        let started = Instant::now();
        let mut passes = Vec::new();
        let mut next = Instant::now();
        while !done(&self.app) {
            assert!(started.elapsed() < limit, "gave up after {limit:?}");
            passes.push(self.frame(Vec::new()));
            next += Duration::from_micros(16_667);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        passes
    }

    fn screen_text(&self) -> String {
        self.app
            .model()
            .terminals
            .first()
            .map(|t| t.view().screen.text())
            .unwrap_or_default()
    }
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses); utime and stime are 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in USER_HZ, which is 100 on every target Ferry ships for.
    (ticks(11) + ticks(12)) / 100.0
}

fn report(name: &str, mut passes: Vec<Duration>) {
    passes.sort();
    let pick = |q: f64| passes[((passes.len() as f64 - 1.0) * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<40} {:5} frames  egui pass median {:6.2} ms  p95 {:6.2} ms  max {:6.2} ms",
        passes.len(),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(pick(1.0)),
    );
}

fn main() -> anyhow::Result<()> {
    let lines: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_700_000);
    let bytes: u64 = (1..=lines).map(|n| n.to_string().len() as u64 + 1).sum();

    let sim_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sim = sim_runtime.block_on(kubesim::Kubesim::start(kubesim::KubesimConfig {
        world: kubesim::World::try_demo()?,
        timing: kubesim::Timing::fast(),
        ..Default::default()
    }))?;
    let profiles = tempfile::tempdir()?;
    let ctx = egui::Context::default();
    let repaint_ctx = ctx.clone();
    let runtime = Runtime::start(
        Startup {
            source: Source::Paths(vec![sim.kubeconfig_path().to_path_buf()]),
            profiles_dir: Some(profiles.path().to_path_buf()),
        },
        Arc::new(move || repaint_ctx.request_repaint()),
    )?;
    let mut bench = Bench {
        app: FerryApp::new(&ctx, None, runtime),
        ctx,
        frame: eframe::Frame::_new_kittest(),
        time: 0.0,
    };
    let ctx = bench.ctx.clone();
    bench.app.apply(&ctx, Command::SelectContext("demo".into()));
    bench
        .app
        .apply(&ctx, Command::SelectNamespace("default".into()));
    bench.frames_until(Duration::from_secs(30), |app| {
        app.model()
            .objects
            .pods
            .iter()
            .any(|p| p.name.starts_with("kubia-") && p.status == "Running")
    });
    let pod = bench
        .app
        .model()
        .objects
        .pods
        .iter()
        .find(|p| p.name.starts_with("kubia-") && p.status == "Running")
        .map(|p| p.name.clone())
        .expect("a running kubia pod");
    bench.app.apply(
        &ctx,
        Command::OpenShell {
            pod: pod.clone(),
            container: None,
        },
    );
    bench.frames_until(Duration::from_secs(30), |app| {
        app.model().terminals.first().is_some_and(|t| {
            let v = t.view();
            v.status == TerminalStatus::Running && !v.screen.text().trim().is_empty()
        })
    });
    let (cols, rows) = {
        let v = bench.app.model().terminals[0].view();
        (v.screen.cols, v.screen.rows)
    };
    for _ in 0..30 {
        bench.frame(Vec::new());
    }
    println!(
        "shell in {pod}, {cols}×{rows} cells, 1280×800 window; {lines} lines = {:.1} MB of output",
        bytes as f64 / 1e6
    );

    let idle = bench.frames_until(Duration::from_secs(2), {
        let until = Instant::now() + Duration::from_secs(1);
        move |_| Instant::now() >= until
    });
    report("shell open, idle", idle);
    let (rss_before, _) = memory();

    bench.frame(vec![Event::Text(format!(
        "seq 1 {lines}; echo stream-done-$((6*7))"
    ))]);
    let started = Instant::now();
    bench.frame(vec![Event::Key {
        key: egui::Key::Enter,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: Default::default(),
    }]);
    let streaming = {
        let mut passes = Vec::new();
        let mut next = Instant::now();
        loop {
            passes.push(bench.frame(Vec::new()));
            if bench
                .screen_text()
                .lines()
                .any(|l| l.trim() == "stream-done-42")
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the stream did not finish in 5 minutes"
            );
            next += Duration::from_micros(16_667);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        passes
    };
    let took = started.elapsed();
    report(
        &format!(
            "while {:.0} MB stream through the shell",
            bytes as f64 / 1e6
        ),
        streaming,
    );
    let history = bench.app.model().terminals[0].view().screen.history;
    let (rss_after, hwm) = memory();
    println!(
        "stream: {:.2} s ({:.1} MB/s through exec, emulator and frames); scrollback {history} lines",
        took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    println!("memory: RSS {rss_before:.1} MiB before, {rss_after:.1} MiB after, peak {hwm:.1} MiB");

    // The shell open and idle, no frames drawn (the window hidden or not repainting).
    let cpu_before = cpu_seconds();
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = cpu_seconds() - cpu_before;
    println!(
        "idle with the shell open, no frames: {:.2} s CPU in 10 s ({:.1} % of one core; kubesim in the same process)",
        idle_cpu,
        idle_cpu * 10.0
    );
    drop(bench);
    drop(sim);
    Ok(())
}
