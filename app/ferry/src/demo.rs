//! `ferry --demo`: a simulated cluster (kubesim with the built-in demo world) started inside
//! this process, with a temporary kubeconfig pointing at it, so Ferry can be tried without a
//! cluster. Exec in the demo runs commands as local processes on this computer: the UI says so
//! wherever a shell is offered.

use std::path::PathBuf;

use anyhow::Context as _;
use ferry_core::clients::ClientPool;

/// The note shown wherever the demo offers a shell.
pub const EXEC_NOTE: &str = "Demo cluster: a shell or exec here runs as a local process on this computer, not in a container.";

/// Written to the event log when the demo is up.
pub const STARTED_NOTE: &str = "Demo cluster started (simulated, running inside Ferry). \
     Shells and exec in the demo run as local processes on this computer.";

/// Starts the demo cluster and adds its contexts to the instance's clients; the instance owns
/// it from then on and stops it last. Returns the demo's kubeconfig (for kubectl).
pub async fn start_into(instance: &ferry_core::instance::Instance) -> anyhow::Result<PathBuf> {
    let sim = start().await?;
    let path = sim.kubeconfig_path().to_path_buf();
    let pool = ClientPool::from_paths(std::slice::from_ref(&path));
    let demo = Demo {
        sim,
        pool: pool.as_ref().ok().cloned(),
    };
    instance.adopt(Box::new(demo));
    let pool = pool.context("the demo cluster's kubeconfig could not be read")?;
    for context in pool.contexts() {
        let client = pool
            .client(&context.name)
            .await
            .with_context(|| format!("no client for the demo context {}", context.name))?;
        instance.clients().add_in_app(context, client);
    }
    Ok(path)
}

/// The demo cluster, owned by the instance, with the pool its clients come from (they follow
/// the demo's kubeconfig through it, so it lives as long as they do).
struct Demo {
    sim: kubesim::Kubesim,
    pool: Option<ClientPool>,
}

impl ferry_core::instance::Owned for Demo {
    fn shutdown(self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            drop(self.pool);
            self.sim.shutdown().await
        })
    }
}

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
