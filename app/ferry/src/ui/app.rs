//! The eframe app: lays out the panels, lets each view push [`Command`]s, then applies them in
//! one place ([`FerryApp::apply`]). Views read one immutable [`Model`] per frame; everything
//! asynchronous goes through the [`Runtime`].

use std::sync::Arc;

use egui::{Key, KeyboardShortcut, Modifiers};

use super::commands::{Command, Selection, Tab};
use super::details::{self, LogState};
use super::event_log::EventLog;
use super::forward_dialog::{self, DialogRequest, ForwardDialog, PortCheck};
use super::model::{Model, SourceState};
use super::profiles::ProfilesWindow;
use super::runtime::{Notice, Request, Runtime};
use super::settings::{OnClose, SettingsWindow};
use super::sidebar::SidebarState;
use super::table::TableState;
use super::terminal::runner::{RunTarget, RunnerAction};
use super::terminal::{self, Dock};
use super::theme::{self, Tone};
use super::toasts::Toasts;
use super::tunnels::TunnelsState;
use super::{deployments, event_log, pods, profiles, services, sidebar, toasts, tunnels, welcome};

/// What survives a restart (eframe persistence; window size and position are kept by eframe).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    context: Option<String>,
    namespace: Option<String>,
    tab: Tab,
    event_log_expanded: bool,
}

const STORAGE_KEY: &str = "ferry";

/// The window's state. Public only so tests and the benchmark can drive it.
pub struct FerryApp {
    runtime: Runtime,
    model: Arc<Model>,
    context: Option<String>,
    namespace: Option<String>,
    /// The context/namespace remembered from last time, until the kubeconfig is known.
    wanted: Option<(String, Option<String>)>,
    tab: Tab,
    selection: Option<Selection>,
    pods: TableState,
    services: TableState,
    deployments: TableState,
    tunnels: TunnelsState,
    sidebar: SidebarState,
    forward: Option<ForwardDialog>,
    profiles: ProfilesWindow,
    log: EventLog,
    toasts: Toasts,
    /// The log lines shown: pod, container asked for (`None`: kubectl's default), lines.
    logs: Option<(String, Option<String>, LogState)>,
    /// The terminal dock: shells and the one-shot command panel.
    dock: Dock,
    starting_demo: bool,
    focus_filter: bool,
    title: String,
    settings: SettingsWindow,
    /// Set while the close question is shown: how many tunnels forward.
    close_question: Option<usize>,
    /// The user answered the close question: let the close through.
    close_allowed: bool,
}

impl FerryApp {
    /// Builds the app on a started runtime, restoring what was remembered in `storage`.
    pub fn new(
        ctx: &egui::Context,
        storage: Option<&dyn eframe::Storage>,
        runtime: Runtime,
    ) -> Self {
        theme::install(ctx);
        let remembered: Remembered = storage
            .and_then(|s| eframe::get_value(s, STORAGE_KEY))
            .unwrap_or_default();
        let log = EventLog {
            expanded: remembered.event_log_expanded,
            ..Default::default()
        };
        FerryApp {
            model: runtime.model(),
            runtime,
            context: None,
            namespace: None,
            wanted: remembered.context.map(|c| (c, remembered.namespace)),
            tab: remembered.tab,
            selection: None,
            pods: TableState::default(),
            services: TableState::default(),
            deployments: TableState::default(),
            tunnels: TunnelsState::default(),
            sidebar: SidebarState::default(),
            forward: None,
            profiles: ProfilesWindow::default(),
            log,
            toasts: Toasts::default(),
            logs: None,
            dock: Dock::default(),
            starting_demo: false,
            focus_filter: false,
            title: String::new(),
            settings: SettingsWindow::default(),
            close_question: None,
            close_allowed: false,
        }
    }

    /// The selected context, if any (tests).
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The model the last frame showed (tests read tunnel addresses from it).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Applies one command: UI state changes here, everything else becomes a runtime request.
    pub fn apply(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::SelectContext(name) => {
                self.context = Some(name.clone());
                self.namespace = None;
                self.selection = None;
                self.runtime.send(Request::Scope {
                    context: name,
                    namespace: None,
                });
            }
            Command::SelectNamespace(ns) => {
                self.namespace = Some(ns.clone());
                self.selection = None;
                if let Some(context) = self.context.clone() {
                    self.runtime.send(Request::Scope {
                        context,
                        namespace: Some(ns),
                    });
                }
            }
            Command::SelectTab(tab) => self.tab = tab,
            Command::Select(selection) => {
                if let Some(Selection::Pod(pod)) = &selection
                    && self.logs.as_ref().is_none_or(|(p, _, _)| p != pod)
                {
                    self.fetch_logs(pod.clone(), None);
                }
                self.selection = selection;
            }
            Command::OpenForward { target, port } => {
                let context = self.context.clone().unwrap_or_default();
                let namespace = self.namespace.clone().unwrap_or_default();
                self.forward = Some(ForwardDialog::new(
                    target,
                    port,
                    &self.model,
                    &context,
                    &namespace,
                ));
            }
            Command::CloseForward => self.forward = None,
            Command::StartTunnel {
                spec,
                save_to_profile,
            } => {
                // Show the new tunnel in a wide table rather than the target's details.
                self.tab = Tab::Tunnels;
                self.selection = None;
                self.runtime.send(Request::StartTunnel {
                    spec,
                    save_to_profile,
                });
            }
            Command::StartTunnels(ids) => self.runtime.send(Request::StartTunnels(ids)),
            Command::StopTunnels(ids) => self.runtime.send(Request::StopTunnels(ids)),
            Command::RestartTunnels(ids) => self.runtime.send(Request::RestartTunnels(ids)),
            Command::RemoveTunnels(ids) => self.runtime.send(Request::RemoveTunnels(ids)),
            Command::StartProfile(name) => self.runtime.send(Request::StartProfile(name)),
            Command::StopProfile(name) => self.runtime.send(Request::StopProfile(name)),
            Command::SaveProfile {
                name,
                tunnels,
                autostart,
            } => self.runtime.send(Request::SaveProfile {
                name,
                tunnels,
                autostart,
            }),
            Command::RenameProfile { from, to } => {
                self.runtime.send(Request::RenameProfile { from, to })
            }
            Command::DeleteProfile(name) => self.runtime.send(Request::DeleteProfile(name)),
            Command::ImportProfiles => self.runtime.send(Request::ImportProfiles),
            Command::ExportProfiles => self.runtime.send(Request::ExportProfiles),
            Command::RestoreProfilesBackup => self.runtime.send(Request::RestoreProfilesBackup),
            Command::ShowProfiles(open) => self.profiles.open = open,
            Command::ToggleEventLog => self.log.expanded = !self.log.expanded,
            Command::FetchLogs { pod, container } => self.fetch_logs(pod, container),
            Command::OpenShell { pod, container } => {
                if let (Some(context), Some(namespace)) =
                    (self.context.clone(), self.namespace.clone())
                {
                    self.open_shell(ferry_core::exec::ShellTarget {
                        context,
                        namespace,
                        pod,
                        container,
                    });
                }
            }
            Command::OpenShellIn(target) => self.open_shell(target),
            Command::CloseTerminal(id) => self.runtime.send(Request::CloseTerminal(id)),
            Command::OpenRunner { pod, container } => {
                if let (Some(context), Some(namespace)) =
                    (self.context.clone(), self.namespace.clone())
                {
                    let containers = self
                        .model
                        .objects
                        .pods
                        .iter()
                        .find(|p| p.name == pod)
                        .map(|p| ferry_core::exec::container::containers(&p.pod))
                        .unwrap_or_default();
                    self.dock.runner.open(RunTarget {
                        context,
                        namespace,
                        pod,
                        containers,
                        container,
                    });
                    self.dock.show_runner();
                }
            }
            Command::ShowTerminals(shown) => self.dock.shown = shown,
            Command::OpenUrl(url) => ctx.open_url(egui::OpenUrl::new_tab(url)),
            Command::CopyText(text) => {
                self.log.push(Tone::Quiet, format!("Copied {text}"));
                ctx.copy_text(text);
            }
            Command::StartDemo => {
                self.starting_demo = true;
                self.runtime.send(Request::StartDemo);
            }
            Command::DismissToast(id) => self.toasts.dismiss(id),
            Command::Quit => self.runtime.send(Request::Quit),
            Command::ShowSettings(open) => self.settings.open = open,
            Command::SaveSettings(settings) => self.runtime.send(Request::SaveSettings(settings)),
            Command::CloseWindow { keep_running } => {
                self.close_question = None;
                self.close_allowed = true;
                if !keep_running {
                    self.runtime.send(Request::Quit);
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Command::CancelClose => self.close_question = None,
        }
    }

    fn fetch_logs(&mut self, pod: String, container: Option<String>) {
        let (Some(context), Some(namespace)) = (self.context.clone(), self.namespace.clone())
        else {
            return;
        };
        self.logs = Some((pod.clone(), container.clone(), LogState::Loading));
        self.runtime.send(Request::Logs {
            context,
            namespace,
            pod,
            container,
        });
    }

    /// Asks the instance for a shell; its tab comes to the front when it shows up.
    fn open_shell(&mut self, target: ferry_core::exec::ShellTarget) {
        self.dock.shown = true;
        // A first guess; the widget sends the real size on its first frame.
        let size = ferry_core::exec::TermSize {
            cols: 120,
            rows: 30,
        };
        self.runtime.send(Request::OpenShell { target, size });
    }

    /// Turns the command panel's wishes into runtime requests.
    fn runner_actions(&mut self, actions: Vec<RunnerAction>) {
        for action in actions {
            match action {
                RunnerAction::Run { id, target, argv } => self.runtime.send(Request::RunCommand {
                    run: id,
                    request: ferry_core::exec::ExecRequest {
                        context: target.context,
                        namespace: target.namespace,
                        pod: target.pod,
                        container: target.container,
                        command: ferry_core::exec::Command::Argv(argv),
                        stdin: false,
                        tty: false,
                        size: None,
                    },
                }),
                RunnerAction::Cancel(id) => self.runtime.send(Request::CancelRun(id)),
                RunnerAction::Save { file_name, bytes } => {
                    self.runtime.send(Request::SaveOutput { file_name, bytes })
                }
            }
        }
    }

    /// The terminal dock (tests read grids through it).
    pub fn dock(&self) -> &Dock {
        &self.dock
    }

    /// Takes in what the runtime reported since the last frame.
    fn receive(&mut self) {
        self.model = self.runtime.model();
        for notice in self.runtime.drain() {
            match notice {
                Notice::Event { tone, text, toast } => {
                    if toast {
                        self.toasts.push(tone, text.clone());
                    }
                    self.log.push(tone, text);
                }
                Notice::PortChecked { bind, port, free } => {
                    if let Some(d) = &mut self.forward {
                        d.checks.insert(
                            (bind, port),
                            if free {
                                PortCheck::Free
                            } else {
                                PortCheck::Taken
                            },
                        );
                    }
                }
                Notice::NextFreePort { index, port } => {
                    if let (Some(d), Some(port)) = (&mut self.forward, port)
                        && let Some(p) = d.ports.get_mut(index)
                    {
                        p.local = port.to_string();
                    }
                }
                Notice::Logs {
                    pod,
                    container,
                    lines,
                } => {
                    let state = match lines {
                        Ok(lines) => LogState::Lines(lines),
                        Err(e) => LogState::Failed(e),
                    };
                    // Only the answer to the latest question is shown.
                    if self
                        .logs
                        .as_ref()
                        .is_some_and(|(p, c, _)| *p == pod && *c == container)
                    {
                        self.logs = Some((pod, container, state));
                    }
                }
                Notice::RunOutput { run, stderr, data } => {
                    self.dock.runner.output(run, stderr, &data)
                }
                Notice::RunEnded { run, result, took } => self.dock.runner.ended(run, result, took),
                Notice::Scope { context, namespace } => {
                    if self.context.as_deref() == Some(context.as_str()) {
                        self.namespace = Some(namespace);
                    }
                }
            }
        }
        if !matches!(
            self.model.source,
            SourceState::Missing { .. } | SourceState::Broken { .. }
        ) {
            self.starting_demo = false;
        }
        self.dock.sync(&self.model.terminals);
        self.choose_initial_scope();
    }

    /// Once the contexts are known: the remembered context if it still exists, else the
    /// kubeconfig's current context, else the first.
    fn choose_initial_scope(&mut self) {
        if self.context.is_some() || self.model.contexts.is_empty() {
            return;
        }
        let wanted = self
            .wanted
            .take()
            .filter(|(c, _)| self.model.context(c).is_some());
        let (context, namespace) = match wanted {
            Some(w) => w,
            None => {
                let current = self
                    .model
                    .current_context
                    .clone()
                    .filter(|c| self.model.context(c).is_some());
                match current.or_else(|| self.model.contexts.first().map(|c| c.name.clone())) {
                    Some(c) => (c, None),
                    None => return,
                }
            }
        };
        self.context = Some(context.clone());
        self.namespace = namespace.clone();
        self.runtime.send(Request::Scope { context, namespace });
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let title = match (&self.model.source, &self.context, &self.namespace) {
            (SourceState::Demo { .. }, _, _) => "Ferry — demo cluster".to_string(),
            (_, Some(c), Some(ns)) => format!("Ferry — {c} / {ns}"),
            _ => "Ferry".to_string(),
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    /// The window's close button (or the window manager) asked to close.
    fn close_requested(&mut self, ctx: &egui::Context) {
        let serving = self
            .model
            .tunnels
            .iter()
            .filter(|t| t.status.is_running())
            .count();
        let decision = super::settings::on_close(
            &self.model.settings,
            serving,
            self.runtime.tray_shown(),
            self.runtime.closing_by_request(),
        );
        match decision {
            OnClose::Close => {}
            OnClose::Quit => self.runtime.send(Request::Quit),
            OnClose::Ask => {
                ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
                self.close_question = Some(serving);
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context, out: &mut Vec<Command>) {
        // Keys typed into a terminal belong to the program in it.
        if self.dock.terminal_focused {
            self.focus_filter = false;
            return;
        }
        self.focus_filter = ctx
            .input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::F)));
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Q)))
        {
            out.push(Command::Quit);
        }
        let tabs = [Key::Num1, Key::Num2, Key::Num3, Key::Num4];
        for (key, tab) in tabs.into_iter().zip(Tab::ALL) {
            if ctx
                .input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, key)))
            {
                out.push(Command::SelectTab(tab));
            }
        }
    }

    fn main_view(&mut self, ui: &mut egui::Ui, out: &mut Vec<Command>) {
        let model = self.model.clone();
        let frame = egui::Frame::side_top_panel(ui.style()).inner_margin(theme::PANEL_MARGIN);
        egui::Panel::top("tabs")
            .frame(frame)
            .show(ui, |ui| self.tab_bar(ui, &model, out));
        egui::Panel::bottom("events")
            .resizable(self.log.expanded)
            .default_size(if self.log.expanded { 160.0 } else { 0.0 })
            .frame(
                egui::Frame::side_top_panel(ui.style())
                    .inner_margin(egui::Margin::symmetric(theme::PANEL_MARGIN, 4)),
            )
            .show(ui, |ui| event_log::show(ui, &self.log, out));
        if self.dock.shown && self.dock.has_tabs(&model.terminals) {
            let actions = egui::Panel::bottom("terminals")
                .resizable(true)
                .default_size(320.0)
                .size_range(120.0..=1200.0)
                .frame(frame)
                .show(ui, |ui| {
                    terminal::show(ui, &mut self.dock, &model.terminals, out)
                })
                .inner;
            self.runner_actions(actions);
        } else {
            self.dock.terminal_focused = false;
        }
        egui::Panel::left("sidebar")
            .resizable(true)
            .default_size(210.0)
            .size_range(160.0..=360.0)
            .frame(frame)
            .show(ui, |ui| {
                sidebar::show(
                    ui,
                    &model,
                    self.context.as_deref(),
                    self.namespace.as_deref(),
                    &mut self.sidebar,
                    out,
                )
            });
        if self.selection.is_some() {
            egui::Panel::right("details")
                .resizable(true)
                .default_size(340.0)
                .size_range(260.0..=640.0)
                .frame(frame)
                .show(ui, |ui| {
                    details::show(ui, &model, self.selection.as_ref(), self.logs.as_ref(), out)
                });
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::central_panel(ui.style()).inner_margin(theme::PANEL_MARGIN))
            .show(ui, |ui| self.centre(ui, &model, out));
    }

    fn tab_bar(&mut self, ui: &mut egui::Ui, model: &Model, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            for tab in Tab::ALL {
                let count = match tab {
                    Tab::Pods => model.objects.pods.len(),
                    Tab::Services => model.objects.services.len(),
                    Tab::Deployments => model.objects.deployments.len(),
                    Tab::Tunnels => model.tunnels.len(),
                };
                let text = format!("{}  {}", tab.title(), count);
                if ui.selectable_label(self.tab == tab, text).clicked() {
                    out.push(Command::SelectTab(tab));
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Quit")
                    .on_hover_text(
                        "Stop every tunnel and quit Ferry (Ctrl+Q). Closing the window instead keeps running tunnels forwarding in the background.",
                    )
                    .clicked()
                {
                    out.push(Command::Quit);
                }
                if !self.dock.shown
                    && self.dock.has_tabs(&model.terminals)
                    && ui
                        .button(format!(
                            "{} Terminals {}",
                            theme::icon::SHELL,
                            model.terminals.len()
                        ))
                        .on_hover_text("Show the shells and the command panel")
                        .clicked()
                {
                    out.push(Command::ShowTerminals(true));
                }
                if ui.button("Settings").clicked() {
                    out.push(Command::ShowSettings(!self.settings.open));
                }
                if ui
                    .button(format!("{} Profiles", theme::icon::PROFILE))
                    .clicked()
                {
                    out.push(Command::ShowProfiles(!self.profiles.open));
                }
                if model.is_demo() {
                    ui.label(theme::weak("demo cluster — simulated, runs inside Ferry"));
                }
                if model.objects.loading && self.context.is_some() {
                    ui.spinner();
                }
            });
        });
    }

    fn centre(&mut self, ui: &mut egui::Ui, model: &Model, out: &mut Vec<Command>) {
        if let Some(error) = &model.objects.error {
            ui.label(
                egui::RichText::new(format!("{} {error}", theme::icon::WARNING))
                    .color(theme::tone_color(ui, Tone::Bad)),
            );
        }
        let selection = self.selection.as_ref();
        let focus = self.focus_filter;
        match self.tab {
            Tab::Pods => pods::show(ui, &model.objects, &mut self.pods, selection, focus, out),
            Tab::Services => services::show(
                ui,
                &model.objects,
                &mut self.services,
                selection,
                focus,
                out,
            ),
            Tab::Deployments => deployments::show(
                ui,
                &model.objects,
                &mut self.deployments,
                selection,
                focus,
                out,
            ),
            Tab::Tunnels => tunnels::show(
                ui,
                &model.tunnels,
                model.tunnels_version,
                &mut self.tunnels,
                selection,
                focus,
                out,
            ),
        }
    }

    fn dialogs(&mut self, ctx: &egui::Context, out: &mut Vec<Command>) {
        super::settings::show(ctx, &self.model, &mut self.settings, out);
        if let Some(serving) = self.close_question {
            super::settings::close_question(ctx, serving, out);
        }
        if let Some(dialog) = &mut self.forward {
            let names: Vec<String> = self
                .model
                .profiles
                .items
                .iter()
                .map(|p| p.name.clone())
                .collect();
            for request in forward_dialog::show(ctx, dialog, &names, out) {
                match request {
                    DialogRequest::Check(bind, port) => {
                        dialog.checks.insert((bind, port), PortCheck::Pending);
                        self.runtime.send(Request::CheckPort { bind, port });
                    }
                    DialogRequest::NextFree { index, bind, from } => {
                        self.runtime
                            .send(Request::NextFreePort { index, bind, from });
                    }
                }
            }
        }
        profiles::show(ctx, &self.model, &mut self.profiles, out);
        toasts::show(ctx, &mut self.toasts, out);
    }
}

impl eframe::App for FerryApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        // The instance is ending (`ferry quit`, SIGTERM): also when that came while the window
        // was still being made, with no window yet to close.
        if self.runtime.instance_quitting() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else if ctx.input(|i| i.viewport().close_requested()) && !self.close_allowed {
            self.close_requested(ctx);
        }
        self.receive();
        self.update_title(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        super::report_first_frame();
        let ctx = ui.ctx().clone();
        let mut out = Vec::new();
        self.shortcuts(&ctx, &mut out);
        match &self.model.source {
            SourceState::Loading => {
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| ui.spinner());
                });
            }
            SourceState::Missing { .. } | SourceState::Broken { .. } => {
                let source = self.model.source.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    welcome::show(ui, &source, self.starting_demo, &mut out)
                });
            }
            SourceState::Kubeconfig { .. } | SourceState::Demo { .. } => {
                self.main_view(ui, &mut out)
            }
        }
        self.dialogs(&ctx, &mut out);
        if !out.is_empty() {
            // The commands change what is shown: draw it now, not on the next input event.
            ctx.request_repaint();
        }
        for command in out {
            self.apply(&ctx, command);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        let remembered = Remembered {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            tab: self.tab,
            event_log_expanded: self.log.expanded,
        };
        eframe::set_value(storage, STORAGE_KEY, &remembered);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.runtime.shutdown();
    }
}
