//! `ferry forward` as a subprocess against kubesim, for what it says: a typo (no such target,
//! namespace or port name) exits 1 at once naming what exists, and an outage produces Ferry's
//! own sentences, one per state change, with no library logs and no colour codes.
//!
//! The `ferry` binary must be built (`cargo build -p ferry`; `cargo test --workspace` does it).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_e2e::{ferry_forward, read_until, start_demo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

type Result = anyhow::Result<()>;

/// Runs `ferry forward ARGS`, which must fail within 15 s; returns stderr and how long it took.
async fn typo(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let child = ferry_forward(kubeconfig, args)?;
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("ferry forward {args:?} was still running after 15 s"))??;
    assert_eq!(
        out.status.code(),
        Some(1),
        "ferry forward {args:?}: {out:?}"
    );
    Ok((
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    ))
}

#[tokio::test]
async fn a_typo_exits_1_at_once_naming_what_exists() -> Result {
    let cluster = start_demo().await?;
    let kc = cluster.kubeconfig();
    let cases: [(&[&str], &[&str]); 5] = [
        (&["svc/nope", "0:80"], &["service \"nope\"", "kubia"]),
        (&["pod/nope", "0:80"], &["pod \"nope\"", "fortune"]),
        (&["deploy/nope", "0:80"], &["deployment \"nope\"", "kubia"]),
        (
            &["svc/kubia", "0:80", "-n", "no-such-ns"],
            &["namespace \"no-such-ns\"", "default"],
        ),
        (
            &["pod/fortune", "0:nope"],
            &["no container port named \"nope\"", "http"],
        ),
    ];
    for (args, expected) in cases {
        let (err, took) = typo(kc, args).await?;
        println!(
            "ferry forward {args:?}: exit 1 after {took:?}: {}",
            err.trim()
        );
        assert!(err.contains("not found"), "{args:?}: {err}");
        for word in expected {
            assert!(err.contains(word), "{args:?} should name {word}: {err}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn an_outage_prints_ferry_sentences_without_library_logs_or_colours() -> Result {
    let cluster = start_demo().await?;
    let client = cluster.client("demo").await?;
    ferry_e2e::tunnels::wait_ready_pods(&client, "app=kubia", 3).await?;
    let mut child = ferry_forward(
        cluster.kubeconfig(),
        &["svc/kubia", "0:80", "--context", "demo"],
    )?;
    let mut stderr = child.stderr.take().expect("stderr");
    let err_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let seen = read_until(&mut lines, Duration::from_secs(20), "Forwarding", |l| {
        l.starts_with("Forwarding from 127.0.0.1:")
    })
    .await?;
    let addr: std::net::SocketAddr = seen
        .last()
        .and_then(|l| l.strip_prefix("Forwarding from "))
        .and_then(|l| l.split(' ').next())
        .and_then(|a| a.parse().ok())
        .expect("an address");
    let server = cluster.sim.server("demo").expect("demo server");
    server.stop().await;
    // Connections during the outage make every layer try (and log, if allowed) again.
    for _ in 0..5 {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            ferry_e2e::tunnels::http_get(addr, "/"),
        )
        .await;
    }
    let mut out = read_until(&mut lines, Duration::from_secs(20), "waiting", |l| {
        l.contains("waiting") && l.contains("unreachable")
    })
    .await?;
    server.restart().await?;
    out.extend(
        read_until(&mut lines, Duration::from_secs(30), "recovered", |l| {
            l.contains("recovered, forwarding again")
        })
        .await?,
    );
    let pid = child.id().expect("running").to_string();
    Command::new("kill").args(["-INT", &pid]).status().await?;
    tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    while let Ok(Some(line)) = lines.next_line().await {
        out.push(line);
    }
    let err = err_task.await?;
    let all = format!("{}\n{err}", out.join("\n"));
    println!("{all}");
    assert!(
        !all.contains('\u{1b}'),
        "colour codes in redirected output:\n{all}"
    );
    for noise in ["kube_client", "hyper", "ERROR", " WARN "] {
        assert!(
            !all.contains(noise),
            "library log ({noise}) in output:\n{all}"
        );
    }
    let waiting = out.iter().filter(|l| l.contains("waiting")).count();
    assert_eq!(waiting, 1, "one line for the one change to waiting:\n{all}");
    let lines = all.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 12, "{lines} lines for one outage:\n{all}");
    Ok(())
}
