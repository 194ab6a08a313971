//! Everything a view can ask for. Views only push [`Command`]s; `app.rs` applies them in one
//! place after the frame's views ran, so no view mutates shared state or talks to the engine.

use ferry_core::spec::TunnelSpec;

/// The centre tabs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Tab {
    #[default]
    Pods,
    Services,
    Deployments,
    Tunnels,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Pods, Tab::Services, Tab::Deployments, Tab::Tunnels];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Pods => "Pods",
            Tab::Services => "Services",
            Tab::Deployments => "Deployments",
            Tab::Tunnels => "Tunnels",
        }
    }
}

/// What the details panel shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selection {
    Pod(String),
    Service(String),
    Deployment(String),
    Tunnel(String),
}

/// What the forward dialog is opened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    Pod(String),
    Service(String),
    Deployment(String),
}

/// A request from a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SelectContext(String),
    SelectNamespace(String),
    SelectTab(Tab),
    Select(Option<Selection>),
    /// Open the forward dialog; `port` preselects one port only (double-click on a port).
    OpenForward {
        target: ForwardTarget,
        port: Option<u16>,
    },
    CloseForward,
    StartTunnel {
        spec: TunnelSpec,
        /// Also add it to this profile (created if missing).
        save_to_profile: Option<String>,
    },
    StartTunnels(Vec<String>),
    StopTunnels(Vec<String>),
    RestartTunnels(Vec<String>),
    RemoveTunnels(Vec<String>),
    StartProfile(String),
    StopProfile(String),
    /// Save the given tunnels as a (new or replaced) profile.
    SaveProfile {
        name: String,
        tunnels: Vec<TunnelSpec>,
        autostart: bool,
    },
    RenameProfile {
        from: String,
        to: String,
    },
    DeleteProfile(String),
    /// Ask for a file (dialog shown off the UI thread), then import its profiles.
    ImportProfiles,
    /// Ask where to save (dialog shown off the UI thread), then export all profiles.
    ExportProfiles,
    RestoreProfilesBackup,
    ShowProfiles(bool),
    ToggleEventLog,
    /// Ask for the recent log lines of a pod's container (shown in its details); `None` is
    /// the container kubectl would pick.
    FetchLogs {
        pod: String,
        container: Option<String>,
    },
    /// Open a shell in a pod's container (a new tab in the terminal dock).
    OpenShell {
        pod: String,
        container: Option<String>,
    },
    /// Open a shell in a pod of another scope (a tunnel's pod, in the tunnel's context and
    /// namespace).
    OpenShellIn(ferry_core::exec::ShellTarget),
    /// Close a shell's tab; its session ends.
    CloseTerminal(ferry_core::exec::TerminalId),
    /// Point the one-shot command panel at a pod's container.
    OpenRunner {
        pod: String,
        container: Option<String>,
    },
    /// Show or hide the terminal dock.
    ShowTerminals(bool),
    OpenUrl(String),
    CopyText(String),
    /// Start the built-in demo cluster (from the welcome screen).
    StartDemo,
    /// Stop every tunnel and end Ferry (not only the window).
    Quit,
    ShowSettings(bool),
    SaveSettings(ferry_core::settings::Settings),
    /// The answer to the close question: close the window, keeping the tunnels or not.
    CloseWindow {
        keep_running: bool,
    },
    /// The close question was cancelled: the window stays.
    CancelClose,
    DismissToast(u64),
}
