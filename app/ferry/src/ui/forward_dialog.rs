//! The forward dialog: which ports (all by default), which local ports (prefilled, checked free
//! as you type, with a "use next free" fix), which local address (loopback unless confirmed),
//! how to spread connections over a service's pods, and whether to save it in a profile.
//!
//! Port checks are answered by the runtime thread (binding a socket is I/O); the dialog only
//! shows what has been answered so far.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use egui::{RichText, Ui};
use ferry_core::spec::{LocalPort, PortSpec, RemotePort, Spread, Target, TunnelSpec};
use k8s_openapi::api::core::v1::ContainerPort;

use super::commands::{Command, ForwardTarget};
use super::model::Model;
use super::theme::{self, Tone, icon};

/// One port the target offers.
#[derive(Debug, Clone, PartialEq)]
pub struct PortChoice {
    /// What the user sees (`http 80/TCP`).
    pub label: String,
    pub remote: u16,
    pub checked: bool,
    /// The local port as typed.
    pub local: String,
}

/// Whether a local port can be bound, as far as the runtime has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortCheck {
    Pending,
    Free,
    Taken,
}

/// The open dialog.
#[derive(Debug, Clone)]
pub struct ForwardDialog {
    pub target: ForwardTarget,
    pub context: String,
    pub namespace: String,
    pub ports: Vec<PortChoice>,
    pub all_interfaces: bool,
    pub confirmed_all_interfaces: bool,
    pub spread: Spread,
    pub alias: String,
    pub save: bool,
    pub profile: String,
    /// Answers from the runtime, by (bind address, port).
    pub checks: HashMap<(IpAddr, u16), PortCheck>,
}

/// What the dialog asks of the app this frame.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogRequest {
    /// Check whether this local port can be bound.
    Check(IpAddr, u16),
    /// Find the next free port at or after this one, for the port at this index.
    NextFree {
        index: usize,
        bind: IpAddr,
        from: u16,
    },
}

/// The local port to suggest for a remote port: the same number when it is unprivileged,
/// otherwise 8000 + port (80 → 8080), as people usually do by hand.
pub fn suggested_local(remote: u16) -> u16 {
    if remote >= 1024 {
        remote
    } else {
        remote.saturating_add(8000)
    }
}

impl ForwardDialog {
    /// Builds the dialog for a target of the current context and namespace; `only` preselects
    /// one port (double-click on a port), otherwise all ports are checked.
    pub fn new(
        target: ForwardTarget,
        only: Option<u16>,
        model: &Model,
        context: &str,
        namespace: &str,
    ) -> Self {
        let ports = offered_ports(&target, model)
            .into_iter()
            .map(|(label, remote)| PortChoice {
                label,
                remote,
                checked: only.is_none_or(|p| p == remote),
                local: suggested_local(remote).to_string(),
            })
            .collect();
        ForwardDialog {
            spread: Spread::Single,
            target,
            context: context.to_string(),
            namespace: namespace.to_string(),
            ports,
            all_interfaces: false,
            confirmed_all_interfaces: false,
            alias: String::new(),
            save: false,
            profile: String::new(),
            checks: HashMap::new(),
        }
    }

    /// The local address the listeners will bind.
    pub fn bind(&self) -> IpAddr {
        if self.all_interfaces {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }

    /// The tunnel to start, or why the dialog cannot be accepted yet.
    pub fn spec(&self) -> Result<TunnelSpec, String> {
        let chosen: Vec<&PortChoice> = self.ports.iter().filter(|p| p.checked).collect();
        if chosen.is_empty() {
            return Err("Choose at least one port.".into());
        }
        let mut ports = Vec::new();
        for p in chosen {
            let local: u16 = p.local.trim().parse().map_err(|_| {
                format!(
                    "Local port \u{201c}{}\u{201d} for {} is not a number between 1 and 65535.",
                    p.local, p.label
                )
            })?;
            if local == 0 {
                return Err(format!(
                    "Local port for {} must be between 1 and 65535.",
                    p.label
                ));
            }
            if self.checks.get(&(self.bind(), local)) == Some(&PortCheck::Taken) {
                return Err(format!(
                    "Local port {local} is in use; choose another or use the next free one."
                ));
            }
            ports.push(PortSpec {
                local: LocalPort::Fixed(local),
                remote: RemotePort::Number(p.remote),
            });
        }
        if self.all_interfaces && !self.confirmed_all_interfaces {
            return Err(
                "Confirm that other computers may connect, or listen on loopback only.".into(),
            );
        }
        if self.save && self.profile.trim().is_empty() {
            return Err("Name the profile to save to.".into());
        }
        let target = match &self.target {
            ForwardTarget::Pod(n) => Target::Pod(n.clone()),
            ForwardTarget::Service(n) => Target::Service(n.clone()),
            ForwardTarget::Deployment(n) => Target::Deployment(n.clone()),
        };
        Ok(TunnelSpec {
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            spread: if matches!(target, Target::Service(_)) {
                self.spread
            } else {
                Spread::Single
            },
            target,
            ports,
            bind: if self.all_interfaces {
                vec![self.bind()]
            } else {
                Vec::new()
            },
            alias: Some(self.alias.trim().to_string()).filter(|a| !a.is_empty()),
            note: None,
        })
    }

    fn target_text(&self) -> String {
        match &self.target {
            ForwardTarget::Pod(n) => format!("pod/{n}"),
            ForwardTarget::Service(n) => format!("svc/{n}"),
            ForwardTarget::Deployment(n) => format!("deploy/{n}"),
        }
    }
}

/// The ports a target offers: a service's ports, or the container ports of a pod or of a
/// deployment's pod template.
pub fn offered_ports(target: &ForwardTarget, model: &Model) -> Vec<(String, u16)> {
    let objects = &model.objects;
    let container = |ports: Vec<&ContainerPort>| -> Vec<(String, u16)> {
        ports
            .into_iter()
            .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
            .filter_map(|p| {
                let n = u16::try_from(p.container_port).ok()?;
                let name = p
                    .name
                    .as_deref()
                    .map(|n| format!("{n} "))
                    .unwrap_or_default();
                Some((format!("{name}{n}/TCP"), n))
            })
            .collect()
    };
    match target {
        ForwardTarget::Service(name) => objects
            .services
            .iter()
            .find(|s| &s.name == name)
            .and_then(|s| s.service.spec.as_ref())
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                    .filter_map(|p| {
                        let n = u16::try_from(p.port).ok()?;
                        let name = p
                            .name
                            .as_deref()
                            .map(|n| format!("{n} "))
                            .unwrap_or_default();
                        Some((format!("{name}{n}/TCP"), n))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ForwardTarget::Pod(name) => objects
            .pods
            .iter()
            .find(|p| &p.name == name)
            .and_then(|p| p.pod.spec.as_ref())
            .map(|s| {
                container(
                    s.containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .collect(),
                )
            })
            .unwrap_or_default(),
        ForwardTarget::Deployment(name) => objects
            .deployments
            .iter()
            .find(|d| &d.name == name)
            .and_then(|d| d.deployment.spec.template.spec.as_ref())
            .map(|s| {
                container(
                    s.containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .collect(),
                )
            })
            .unwrap_or_default(),
    }
}

/// Draws the dialog. Returns requests for port checks; pushes Start/Close commands.
pub fn show(
    ctx: &egui::Context,
    dialog: &mut ForwardDialog,
    profiles: &[String],
    out: &mut Vec<Command>,
) -> Vec<DialogRequest> {
    let mut requests = Vec::new();
    let modal = egui::Modal::new(egui::Id::unique("forward-dialog")).show(ctx, |ui| {
        ui.set_width(440.0);
        ui.heading(format!("Forward {}", dialog.target_text()));
        ui.label(theme::weak(format!(
            "in {}/{}",
            dialog.context, dialog.namespace
        )));
        ui.add_space(theme::GAP);
        ports_grid(ui, dialog, &mut requests);
        ui.add_space(theme::GAP);
        bind_choice(ui, dialog);
        if matches!(dialog.target, ForwardTarget::Service(_)) {
            spread_choice(ui, dialog);
        }
        ui.add_space(theme::GAP / 2.0);
        ui.horizontal(|ui| {
            ui.label("Name");
            ui.add(
                egui::TextEdit::singleline(&mut dialog.alias)
                    .hint_text("optional, e.g. api")
                    .desired_width(160.0),
            );
        });
        ui.horizontal(|ui| {
            ui.checkbox(&mut dialog.save, "Save to profile");
            if dialog.save {
                egui::ComboBox::from_id_salt("profile-choice")
                    .selected_text(if dialog.profile.is_empty() {
                        "choose…"
                    } else {
                        dialog.profile.as_str()
                    })
                    .show_ui(ui, |ui| {
                        for p in profiles {
                            ui.selectable_value(&mut dialog.profile, p.clone(), p);
                        }
                    });
                ui.add(
                    egui::TextEdit::singleline(&mut dialog.profile)
                        .hint_text("or a new name")
                        .desired_width(120.0),
                );
            }
        });
        ui.separator();
        buttons(ui, dialog, out);
    });
    if modal.should_close() {
        out.push(Command::CloseForward);
    }
    requests
}

fn ports_grid(ui: &mut Ui, dialog: &mut ForwardDialog, requests: &mut Vec<DialogRequest>) {
    if dialog.ports.is_empty() {
        ui.label(theme::weak("This target declares no TCP ports."));
        return;
    }
    let bind = dialog.bind();
    egui::Grid::new("forward-ports")
        .num_columns(3)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            ui.label(theme::weak("Remote port"));
            ui.label(theme::weak("Local port"));
            ui.label("");
            ui.end_row();
            for (index, p) in dialog.ports.iter_mut().enumerate() {
                ui.checkbox(&mut p.checked, &p.label);
                ui.add_enabled(
                    p.checked,
                    egui::TextEdit::singleline(&mut p.local).desired_width(70.0),
                );
                match p.local.trim().parse::<u16>() {
                    Ok(n) if n > 0 && p.checked => match dialog.checks.get(&(bind, n)) {
                        None => {
                            requests.push(DialogRequest::Check(bind, n));
                            ui.spinner();
                        }
                        Some(PortCheck::Pending) => {
                            ui.spinner();
                        }
                        Some(PortCheck::Free) => {
                            theme::state_label(ui, Tone::Good, "free");
                        }
                        Some(PortCheck::Taken) => {
                            ui.horizontal(|ui| {
                                theme::state_label(ui, Tone::Bad, "in use");
                                if ui.small_button("use next free").clicked() {
                                    requests.push(DialogRequest::NextFree {
                                        index,
                                        bind,
                                        from: n.saturating_add(1),
                                    });
                                }
                            });
                        }
                    },
                    Ok(_) if !p.checked => {
                        ui.label("");
                    }
                    _ => {
                        theme::state_label(ui, Tone::Bad, "not a port");
                    }
                }
                ui.end_row();
            }
        });
}

fn bind_choice(ui: &mut Ui, dialog: &mut ForwardDialog) {
    ui.horizontal(|ui| {
        ui.label("Listen on");
        ui.radio_value(
            &mut dialog.all_interfaces,
            false,
            "this computer only (127.0.0.1)",
        );
        ui.radio_value(&mut dialog.all_interfaces, true, "all interfaces (0.0.0.0)");
    });
    if dialog.all_interfaces {
        let warn = theme::tone_color(ui, Tone::Warn);
        ui.checkbox(
            &mut dialog.confirmed_all_interfaces,
            RichText::new(format!(
                "{} Anyone who can reach this computer may connect",
                icon::WARNING
            ))
            .color(warn),
        );
    } else {
        dialog.confirmed_all_interfaces = false;
    }
}

fn spread_choice(ui: &mut Ui, dialog: &mut ForwardDialog) {
    ui.horizontal(|ui| {
        ui.label("Connections go to");
        egui::ComboBox::from_id_salt("spread")
            .selected_text(spread_text(dialog.spread))
            .show_ui(ui, |ui| {
                for s in [
                    Spread::Single,
                    Spread::RoundRobin,
                    Spread::ClientAffinity,
                    Spread::FollowService,
                ] {
                    ui.selectable_value(&mut dialog.spread, s, spread_text(s));
                }
            });
    });
}

/// How a spread choice is described to a person.
pub fn spread_text(s: Spread) -> &'static str {
    match s {
        Spread::Single => "one pod (like kubectl)",
        Spread::RoundRobin => "all ready pods, in turn",
        Spread::ClientAffinity => "all ready pods, sticky per client",
        Spread::FollowService => "as the service's affinity says",
    }
}

fn buttons(ui: &mut Ui, dialog: &ForwardDialog, out: &mut Vec<Command>) {
    let spec = dialog.spec();
    if let Err(reason) = &spec {
        ui.label(RichText::new(reason).color(theme::tone_color(ui, Tone::Warn)));
    }
    ui.horizontal(|ui| {
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let accept = ui.add_enabled(
                spec.is_ok(),
                egui::Button::new(RichText::new("Start forwarding").strong()),
            );
            if accept.clicked()
                && let Ok(spec) = spec
            {
                let save_to_profile = dialog.save.then(|| dialog.profile.trim().to_string());
                out.push(Command::StartTunnel {
                    spec,
                    save_to_profile,
                });
                out.push(Command::CloseForward);
            }
            if ui.button("Cancel").clicked() {
                out.push(Command::CloseForward);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> ForwardDialog {
        ForwardDialog {
            target: ForwardTarget::Service("kubia".into()),
            context: "demo".into(),
            namespace: "default".into(),
            ports: vec![
                PortChoice {
                    label: "http 80/TCP".into(),
                    remote: 80,
                    checked: true,
                    local: "8080".into(),
                },
                PortChoice {
                    label: "metrics 9090/TCP".into(),
                    remote: 9090,
                    checked: false,
                    local: "9090".into(),
                },
            ],
            all_interfaces: false,
            confirmed_all_interfaces: false,
            spread: Spread::Single,
            alias: String::new(),
            save: false,
            profile: String::new(),
            checks: HashMap::new(),
        }
    }

    #[test]
    fn privileged_ports_are_suggested_above_8000() {
        assert_eq!(suggested_local(80), 8080);
        assert_eq!(suggested_local(443), 8443);
        assert_eq!(suggested_local(5432), 5432);
    }

    #[test]
    fn accepting_builds_a_loopback_spec_with_the_checked_ports_only() {
        let spec = dialog().spec().unwrap();
        assert_eq!(spec.target, Target::Service("kubia".into()));
        assert_eq!(spec.ports, vec!["8080:80".parse().unwrap()]);
        assert!(spec.bind.is_empty(), "loopback is the default");
    }

    #[test]
    fn all_interfaces_needs_a_confirmation() {
        let mut d = dialog();
        d.all_interfaces = true;
        assert!(d.spec().is_err());
        d.confirmed_all_interfaces = true;
        assert_eq!(
            d.spec().unwrap().bind,
            vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
        );
    }

    #[test]
    fn a_taken_or_invalid_local_port_blocks_accepting() {
        let mut d = dialog();
        d.checks.insert((d.bind(), 8080), PortCheck::Taken);
        assert!(d.spec().unwrap_err().contains("in use"));
        d.ports[0].local = "80a".into();
        assert!(d.spec().unwrap_err().contains("not a number"));
        d.ports[0].checked = false;
        assert!(d.spec().unwrap_err().contains("at least one"));
    }
}
