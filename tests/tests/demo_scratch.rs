//! The demo cluster (`ferry --demo` starts kubesim exactly like this: the demo world and no
//! kubeconfig path) keeps its kubeconfig and its pods' working directories in one private
//! folder (mode 0700) and removes all of it when it stops, so no `kubesim-…` folders pile up
//! in the temporary directory.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_e2e::kubesim::{Kubesim, KubesimConfig, World};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Starts the demo as `ferry --demo` does and waits until a pod's containers run.
async fn demo_with_a_running_pod() -> (Kubesim, PathBuf) {
    let sim = Kubesim::start(KubesimConfig {
        world: World::try_demo().expect("demo world"),
        ..KubesimConfig::default()
    })
    .await
    .expect("kubesim starts");
    let cluster = sim.primary();
    let workdir = ferry_e2e::wait_for("a running pod in shop", Duration::from_secs(60), || {
        let cluster = cluster.clone();
        async move {
            let (pods, _) = cluster.store.list("pods", Some("shop"));
            pods.iter().find_map(|p| {
                let name = p.pointer("/metadata/name")?.as_str()?;
                let running = cluster.containers.running("shop", name)?;
                Some(running.workdir().to_path_buf())
            })
        }
    })
    .await
    .expect("the demo's pods start");
    (sim, workdir)
}

#[tokio::test]
async fn demo_cluster_keeps_its_files_private_and_removes_them_on_shutdown() {
    let (sim, workdir) = demo_with_a_running_pod().await;
    let scratch = sim
        .kubeconfig_path()
        .parent()
        .expect("kubeconfig in a folder")
        .to_path_buf();
    assert_eq!(mode(&scratch), 0o700, "{}", scratch.display());
    assert!(
        workdir.starts_with(&scratch),
        "pod folder {} is inside {}",
        workdir.display(),
        scratch.display()
    );
    assert_eq!(mode(&workdir), 0o700, "{}", workdir.display());
    sim.shutdown().await;
    assert!(!scratch.exists(), "{} is removed", scratch.display());
    assert!(!workdir.exists(), "{} is removed", workdir.display());
}

#[tokio::test]
async fn demo_cluster_removes_its_files_when_dropped() {
    let (sim, workdir) = demo_with_a_running_pod().await;
    let scratch = sim.kubeconfig_path().parent().unwrap().to_path_buf();
    drop(sim);
    assert!(!scratch.exists(), "{} is removed", scratch.display());
    assert!(!workdir.exists(), "{} is removed", workdir.display());
}
