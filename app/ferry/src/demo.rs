//! `ferry --demo`: a simulated cluster (kubesim with the built-in demo world) started inside
//! this process, with a temporary kubeconfig pointing at it, so Ferry can be tried without a
//! cluster. Exec in the demo runs commands as local processes on this computer: the UI says so
//! wherever a shell is offered.

use anyhow::Context as _;

/// The note shown wherever the demo offers a shell.
pub const EXEC_NOTE: &str = "Demo cluster: a shell or exec here runs as a local process on this computer, not in a container.";

/// Written to the event log when the demo is up.
pub const STARTED_NOTE: &str = "Demo cluster started (simulated, running inside Ferry). \
     Shells and exec in the demo run as local processes on this computer.";

/// Starts kubesim with the demo world on loopback; its kubeconfig lives in a private temporary
/// directory for as long as the returned handle.
pub async fn start() -> anyhow::Result<kubesim::Kubesim> {
    let world =
        kubesim::World::try_demo().context("the built-in demo world could not be loaded")?;
    let config = kubesim::KubesimConfig {
        world,
        ..Default::default()
    };
    kubesim::Kubesim::start(config)
        .await
        .context("the demo cluster could not start")
}
