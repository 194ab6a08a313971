//! The one-shot command panel: run an argv (or, when ticked, a `sh -c` line) in a pod's
//! container and show stdout and stderr apart, the exit code and how long it took. The last 50
//! commands are remembered per pod. Output is kept in full; more than [`SHOWN`] bytes of it
//! is shown as its last [`SHOWN`] bytes, with a button to save all of it to a file.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use egui::Ui;
use ferry_core::exec::ContainerEntry;

use crate::ui::commands::Command;
use crate::ui::theme::{self, Tone, icon};

/// Output shown per stream, at most (the rest is kept and saved).
pub const SHOWN: usize = 1024 * 1024;
/// Commands remembered per pod.
pub const HISTORY: usize = 50;

/// Where commands run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTarget {
    pub context: String,
    pub namespace: String,
    pub pod: String,
    /// Every container of the pod, for the picker.
    pub containers: Vec<ContainerEntry>,
    /// The chosen one; `None` is kubectl's default.
    pub container: Option<String>,
}

impl RunTarget {
    fn key(&self) -> String {
        format!("{}/{}/{}", self.context, self.namespace, self.pod)
    }
}

/// One stream's output, with where each line starts (so only visible lines are laid out).
#[derive(Debug, Default, Clone)]
pub struct OutputBuf {
    bytes: Vec<u8>,
    line_starts: Vec<usize>,
}

impl OutputBuf {
    pub fn push(&mut self, data: &[u8]) {
        let base = self.bytes.len();
        let mut at_line_start = base == 0 || self.bytes[base - 1] == b'\n';
        for (i, b) in data.iter().enumerate() {
            if at_line_start {
                self.line_starts.push(base + i);
            }
            at_line_start = *b == b'\n';
        }
        self.bytes.extend_from_slice(data);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The lines shown: those that start within the last [`SHOWN`] bytes.
    pub fn shown_lines(&self) -> &[usize] {
        let from = self.bytes.len().saturating_sub(SHOWN);
        let first = self.line_starts.partition_point(|s| *s < from);
        &self.line_starts[first..]
    }

    /// Line `start` (one of [`Self::shown_lines`]) as text, without its newline.
    pub fn line(&self, start: usize) -> String {
        let end = self.bytes[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(self.bytes.len(), |p| start + p);
        String::from_utf8_lossy(&self.bytes[start..end]).into_owned()
    }

    pub fn truncated(&self) -> bool {
        self.bytes.len() > SHOWN
    }
}

/// One run of a command.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub argv: Vec<String>,
    pub pod: String,
    pub stdout: OutputBuf,
    pub stderr: OutputBuf,
    /// How it ended (exit code, or why it could not run) and how long it took.
    pub ended: Option<(Result<i32, String>, Duration)>,
}

/// The panel's state.
#[derive(Debug, Default)]
pub struct Runner {
    pub target: Option<RunTarget>,
    pub command: String,
    pub sh_c: bool,
    pub run: Option<Run>,
    /// Problem with the command line itself (unbalanced quotes).
    pub input_error: Option<String>,
    history: HashMap<String, VecDeque<String>>,
    next_id: u64,
    focus_field: bool,
}

/// What the panel asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerAction {
    Run {
        id: u64,
        target: RunTarget,
        argv: Vec<String>,
    },
    Cancel(u64),
    Save {
        file_name: String,
        bytes: Arc<Vec<u8>>,
    },
}

/// The argv a command line stands for: shell-style words (quotes and backslashes group, no
/// shell runs), or `sh -c LINE` when asked.
pub fn argv(line: &str, sh_c: bool) -> Result<Vec<String>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("type a command first".into());
    }
    if sh_c {
        return Ok(vec!["sh".into(), "-c".into(), line.into()]);
    }
    shlex::split(line)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| "the command has an unclosed quote or a trailing backslash".to_string())
}

impl Runner {
    /// Points the panel at a pod (keeps the command line, so the same command can run in
    /// another pod).
    pub fn open(&mut self, target: RunTarget) {
        self.target = Some(target);
        self.focus_field = true;
    }

    /// The commands run in this pod, newest first.
    pub fn history(&self) -> Vec<String> {
        self.target
            .as_ref()
            .and_then(|t| self.history.get(&t.key()))
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn remember(&mut self, key: String, line: String) {
        let h = self.history.entry(key).or_default();
        h.retain(|l| l != &line);
        h.push_front(line);
        h.truncate(HISTORY);
    }

    /// Output arrived for run `id`.
    pub fn output(&mut self, id: u64, stderr: bool, data: &[u8]) {
        if let Some(run) = self.run.as_mut().filter(|r| r.id == id) {
            if stderr {
                run.stderr.push(data);
            } else {
                run.stdout.push(data);
            }
        }
    }

    /// Run `id` ended.
    pub fn ended(&mut self, id: u64, result: Result<i32, String>, took: Duration) {
        if let Some(run) = self.run.as_mut().filter(|r| r.id == id) {
            run.ended = Some((result, took));
        }
    }

    fn start(&mut self) -> Option<RunnerAction> {
        let target = self.target.clone()?;
        match argv(&self.command, self.sh_c) {
            Err(e) => {
                self.input_error = Some(e);
                None
            }
            Ok(argv) => {
                self.input_error = None;
                self.next_id += 1;
                let id = self.next_id;
                let mut line = self.command.trim().to_string();
                if self.sh_c {
                    line = format!("sh -c {}", shlex::try_quote(&line).unwrap_or_default());
                }
                self.remember(target.key(), line);
                self.run = Some(Run {
                    id,
                    argv: argv.clone(),
                    pod: target.pod.clone(),
                    stdout: OutputBuf::default(),
                    stderr: OutputBuf::default(),
                    ended: None,
                });
                Some(RunnerAction::Run { id, target, argv })
            }
        }
    }
}

/// Draws the panel; returns what to do.
pub fn show(ui: &mut Ui, runner: &mut Runner, out: &mut Vec<Command>) -> Vec<RunnerAction> {
    let mut actions = Vec::new();
    let Some(target) = runner.target.clone() else {
        ui.label(theme::weak(
            "Choose \"Run command…\" on a pod (its details or its right-click menu) to run a command in it.",
        ));
        return actions;
    };
    ui.horizontal(|ui| {
        ui.label(theme::weak("Run in"));
        ui.label(egui::RichText::new(&target.pod).strong());
        if target.containers.len() > 1 {
            let chosen = runner
                .target
                .as_ref()
                .and_then(|t| t.container.clone())
                .or_else(|| {
                    target
                        .containers
                        .iter()
                        .find(|c| c.default)
                        .map(|c| c.name.clone())
                })
                .unwrap_or_default();
            egui::ComboBox::from_id_salt("runner-container")
                .selected_text(&chosen)
                .show_ui(ui, |ui| {
                    for c in &target.containers {
                        let label = c.label();
                        if ui
                            .add_enabled(
                                c.running,
                                egui::Button::selectable(chosen == c.name, label),
                            )
                            .clicked()
                            && let Some(t) = runner.target.as_mut()
                        {
                            t.container = Some(c.name.clone());
                        }
                    }
                });
        }
    });
    let mut run_now = false;
    ui.horizontal(|ui| {
        let running = runner.run.as_ref().is_some_and(|r| r.ended.is_none());
        let field = ui.add(
            egui::TextEdit::singleline(&mut runner.command)
                .font(egui::TextStyle::Monospace)
                .hint_text("curl -s http://kubia    (argv: no shell runs it)")
                .desired_width((ui.available_width() - 260.0).max(160.0)),
        );
        if runner.focus_field {
            field.request_focus();
            runner.focus_field = false;
        }
        if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) && !running {
            run_now = true;
        }
        ui.checkbox(&mut runner.sh_c, "sh -c")
            .on_hover_text("Run the line with sh -c (pipes, globs, variables) instead of as argv");
        if running {
            if ui.button("Stop").clicked()
                && let Some(r) = &runner.run
            {
                actions.push(RunnerAction::Cancel(r.id));
            }
        } else if ui.button(format!("{} Run", icon::FORWARD)).clicked() {
            run_now = true;
        }
        let history = runner.history();
        ui.add_enabled_ui(!history.is_empty(), |ui| {
            ui.menu_button("History", |ui| {
                egui::ScrollArea::vertical()
                    .max_height(300.0)
                    .show(ui, |ui| {
                        for line in history {
                            if ui.button(theme::mono(&line)).clicked() {
                                match line.strip_prefix("sh -c ") {
                                    Some(rest) => {
                                        runner.sh_c = true;
                                        runner.command = shlex::split(rest)
                                            .and_then(|w| w.into_iter().next())
                                            .unwrap_or_default();
                                    }
                                    None => {
                                        runner.sh_c = false;
                                        runner.command = line;
                                    }
                                }
                                ui.close();
                            }
                        }
                    });
            });
        });
    });
    if run_now && let Some(a) = runner.start() {
        actions.push(a);
    }
    if let Some(e) = &runner.input_error {
        ui.label(egui::RichText::new(e).color(theme::tone_color(ui, Tone::Bad)));
    }
    let Some(run) = &runner.run else {
        return actions;
    };
    ui.horizontal(|ui| match &run.ended {
        None => {
            ui.spinner();
            ui.label(theme::weak(format!("running in {}…", run.pod)));
        }
        Some((Ok(code), took)) => {
            let tone = if *code == 0 { Tone::Good } else { Tone::Warn };
            theme::state_label(ui, tone, &format!("exit code {code}"));
            ui.label(theme::weak(format!("in {}", duration(*took))));
        }
        Some((Err(e), took)) => {
            theme::state_label(ui, Tone::Bad, "failed");
            ui.label(egui::RichText::new(e).color(theme::tone_color(ui, Tone::Bad)));
            ui.label(theme::weak(format!("after {}", duration(*took))));
        }
    });
    let _ = out;
    ui.columns(2, |cols| {
        for (ui, (name, buf)) in cols
            .iter_mut()
            .zip([("stdout", &run.stdout), ("stderr", &run.stderr)])
        {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new(name).strong());
                ui.label(theme::weak(bytes_text(buf.len())));
                if buf.truncated() {
                    ui.label(theme::weak(format!(
                        "(showing the last {})",
                        bytes_text(SHOWN)
                    )));
                }
                if !buf.is_empty()
                    && ui
                        .small_button(format!("{} Save to file", icon::COPY))
                        .on_hover_text("Save all of this output")
                        .clicked()
                {
                    actions.push(RunnerAction::Save {
                        file_name: format!("{}-{name}.txt", run.pod),
                        bytes: Arc::new(buf.bytes().to_vec()),
                    });
                }
            });
            output_lines(ui, name, buf);
        }
    });
    actions
}

/// The shown lines of one stream, laid out only where visible.
fn output_lines(ui: &mut Ui, name: &str, buf: &OutputBuf) {
    let lines = buf.shown_lines();
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::Frame::group(ui.style()).show(ui, |ui| {
        egui::ScrollArea::both()
            .id_salt(("runner-output", name))
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show_rows(ui, row_height, lines.len(), |ui, range| {
                for i in range {
                    ui.label(theme::mono(buf.line(lines[i])));
                }
            });
    });
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn bytes_text(n: usize) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_become_argv_without_a_shell() {
        assert_eq!(
            argv("curl -s 'http://kubia/a b'", false).unwrap(),
            ["curl", "-s", "http://kubia/a b"]
        );
        assert_eq!(
            argv("echo $HOME | wc", false).unwrap(),
            ["echo", "$HOME", "|", "wc"]
        );
        assert_eq!(
            argv("echo $HOME | wc", true).unwrap(),
            ["sh", "-c", "echo $HOME | wc"]
        );
        assert!(argv("echo 'open", false).is_err());
        assert!(argv("   ", false).is_err());
    }

    #[test]
    fn output_lines_are_indexed_across_chunks_and_shown_bounded() {
        let mut b = OutputBuf::default();
        b.push(b"one\ntw");
        b.push(b"o\n");
        b.push(b"three");
        let lines: Vec<String> = b.shown_lines().iter().map(|s| b.line(*s)).collect();
        assert_eq!(lines, ["one", "two", "three"]);
        let mut big = OutputBuf::default();
        for i in 0..200_000 {
            big.push(format!("line {i}\n").as_bytes());
        }
        assert!(big.truncated());
        let shown = big.shown_lines();
        assert!(shown.len() < 200_000);
        assert_eq!(big.line(*shown.last().unwrap()), "line 199999");
        assert!(big.len() - shown[0] <= SHOWN);
    }

    #[test]
    fn history_keeps_the_last_fifty_per_pod_newest_first() {
        let mut r = Runner::default();
        let target = |pod: &str| RunTarget {
            context: "c".into(),
            namespace: "n".into(),
            pod: pod.into(),
            containers: vec![],
            container: None,
        };
        r.open(target("a"));
        for i in 0..60 {
            r.command = format!("echo {i}");
            assert!(r.start().is_some());
        }
        r.command = "echo 10".into();
        r.start();
        let h = r.history();
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0], "echo 10");
        assert_eq!(h[1], "echo 59");
        r.open(target("b"));
        assert!(r.history().is_empty());
    }
}
