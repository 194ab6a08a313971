//! Rough numbers for kubesim's REST API over TLS with kube-rs: GET latency, LIST latency,
//! concurrent GET throughput, and how long one change takes to reach many watchers.
//!
//! `cargo run -p kubesim --example api_bench` (add `--release` for release numbers).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kubesim::{Kubesim, KubesimConfig, Timing, World};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

async fn timed<F, Fut>(n: usize, mut f: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sim = Kubesim::start(KubesimConfig {
        world: World::demo(),
        timing: Timing::fast(),
        ..KubesimConfig::default()
    })
    .await?;
    let kc = kube::config::Kubeconfig::read_from(sim.kubeconfig_path())?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let name = pods.list(&ListParams::default()).await?.items[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();

    let mut get = timed(2000, || async {
        pods.get(&name).await.map(|_| ()).map_err(Into::into)
    })
    .await?;
    println!(
        "GET pod (sequential, 2000): p50 {:?}  p99 {:?}",
        percentile(&mut get, 0.5),
        percentile(&mut get, 0.99)
    );
    let all: Api<Pod> = Api::all(client.clone());
    let count = all.list(&ListParams::default()).await?.items.len();
    let mut list = timed(500, || async {
        all.list(&ListParams::default())
            .await
            .map(|_| ())
            .map_err(Into::into)
    })
    .await?;
    println!(
        "LIST {count} pods, all namespaces (500): p50 {:?}  p99 {:?}",
        percentile(&mut list, 0.5),
        percentile(&mut list, 0.99)
    );

    let started = Instant::now();
    let total = 4000;
    futures::stream::iter(0..total)
        .map(|_| {
            let pods = pods.clone();
            let name = name.clone();
            async move { pods.get(&name).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "GET pod, 32 in flight: {:.0} requests/s",
        total as f64 / secs
    );

    let watchers = 200;
    let rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut streams = Vec::new();
    for _ in 0..watchers {
        streams.push(pods.watch(&WatchParams::default(), &rv).await?.boxed());
    }
    let patch = serde_json::json!({"metadata": {"labels": {"bench": "1"}}});
    let sent = Instant::now();
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let mut arrivals = Vec::new();
    for mut s in streams {
        loop {
            match s.try_next().await? {
                Some(WatchEvent::Modified(p))
                    if p.metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.contains_key("bench")) =>
                {
                    arrivals.push(sent.elapsed());
                    break;
                }
                Some(_) => continue,
                None => anyhow::bail!("a watch ended early"),
            }
        }
    }
    println!(
        "one change to {watchers} watchers: last arrived after {:?} (median {:?})",
        arrivals.iter().max().copied().unwrap_or_default(),
        percentile(&mut arrivals, 0.5)
    );
    sim.shutdown().await;
    Ok(())
}
