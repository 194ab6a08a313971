//! Frame-time benchmark: the real app's egui pass (layout of every panel, no GPU) with 5,000
//! pods in the Pods tab — idle, scrolling, re-sorting and filtering — plus tessellation.
//! Goal: the egui pass ≤ 8 ms.
//!
//! `cargo run --release -p ferry --example frame_bench [PODS] [FRAMES]`

use std::time::{Duration, Instant};

use egui::{Event, MouseWheelUnit, Pos2, RawInput, Rect, vec2};
use ferry::ui::commands::{Command, Tab};
use ferry::ui::{FerryApp, Runtime, fixture};

struct Bench {
    ctx: egui::Context,
    app: FerryApp,
    frame: eframe::Frame,
    time: f64,
}

impl Bench {
    fn new(pods: usize) -> Self {
        let ctx = egui::Context::default();
        let (runtime, requests) = Runtime::fixed(fixture::model(pods));
        // The fixed runtime hands requests to us; the bench ignores them.
        std::mem::forget(requests);
        let mut app = FerryApp::new(&ctx, None, runtime);
        for c in [
            Command::SelectContext("demo".into()),
            Command::SelectNamespace("default".into()),
            Command::SelectTab(Tab::Pods),
        ] {
            app.apply(&ctx, c);
        }
        Bench {
            ctx,
            app,
            frame: eframe::Frame::_new_kittest(),
            time: 0.0,
        }
    }

    /// One frame with these input events; returns (egui pass, pass + tessellation).
    fn frame(&mut self, events: Vec<Event>) -> (Duration, Duration) {
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
        output.textures_delta.clear(); // no GPU here: font atlas updates are not uploaded
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        std::hint::black_box(primitives);
        (pass, started.elapsed())
    }
}

fn report(name: &str, mut samples: Vec<(Duration, Duration)>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut totals: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    totals.sort();
    println!(
        "{name:<34} egui pass median {:6.2} ms  p95 {:6.2} ms  max {:6.2} ms | with tessellation median {:6.2} ms",
        ms(pick(0.5).0),
        ms(pick(0.95).0),
        ms(pick(1.0).0),
        ms(totals[totals.len() / 2]),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let frames: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let mut bench = Bench::new(pods);
    for _ in 0..10 {
        bench.frame(Vec::new()); // warm up: fonts, table widths
    }
    println!("{} pods, {frames} frames per scenario, 1280×800", pods + 5);

    let idle: Vec<_> = (0..frames).map(|_| bench.frame(Vec::new())).collect();
    report("idle (Pods tab)", idle);

    let hover = Event::PointerMoved(Pos2::new(600.0, 400.0));
    let wheel = |dy: f32| Event::MouseWheel {
        unit: MouseWheelUnit::Point,
        delta: vec2(0.0, dy),
        phase: egui::TouchPhase::Move,
        modifiers: Default::default(),
        source: egui::MouseWheelSource::Wheel,
    };
    let scroll: Vec<_> = (0..frames)
        .map(|_| bench.frame(vec![hover.clone(), wheel(-240.0)]))
        .collect();
    report("scrolling (240 px per frame)", scroll);

    // Click the Name header each frame: every frame re-sorts 5,000 rows.
    let header = Pos2::new(240.0, 86.0);
    let resort: Vec<_> = (0..frames.min(100))
        .map(|_| {
            bench.frame(vec![
                Event::PointerMoved(header),
                Event::PointerButton {
                    pos: header,
                    button: egui::PointerButton::Primary,
                    pressed: true,
                    modifiers: Default::default(),
                },
                Event::PointerButton {
                    pos: header,
                    button: egui::PointerButton::Primary,
                    pressed: false,
                    modifiers: Default::default(),
                },
            ])
        })
        .collect();
    report("re-sorting on every frame", resort);

    let focus = Event::Key {
        key: egui::Key::F,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::COMMAND,
    };
    bench.frame(vec![focus]);
    let typing: Vec<_> = (0..frames.min(100))
        .map(|i| {
            let text = if i % 2 == 0 { "0" } else { "\u{8}" };
            if text == "\u{8}" {
                bench.frame(vec![Event::Key {
                    key: egui::Key::Backspace,
                    physical_key: None,
                    pressed: true,
                    repeat: false,
                    modifiers: Default::default(),
                }])
            } else {
                bench.frame(vec![Event::Text(text.into())])
            }
        })
        .collect();
    report("typing in the filter (re-filter)", typing);
}
