//! `kubesim serve` as a person runs it: it says where the kubeconfig is and how to use it,
//! the kubeconfig reaches the cluster with kube-rs over TLS, and Ctrl-C (SIGINT) stops it.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_prints_how_to_use_it_and_stops_on_ctrl_c() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kc");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["serve", "--fast", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            let done = line.contains("Ctrl-C");
            seen.push(line);
            if done {
                break;
            }
        }
        anyhow::Ok(())
    })
    .await;
    assert!(
        ready.is_ok(),
        "kubesim did not get ready; printed:\n{}",
        seen.join("\n")
    );
    let text = seen.join("\n");
    assert!(
        text.contains(&format!(
            "export KUBECONFIG={}",
            std::fs::canonicalize(&kubeconfig)?.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("demo") && text.contains("https://127.0.0.1:"),
        "{text}"
    );

    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let namespaces: Api<Namespace> = Api::all(kube::Client::try_from(config)?);
    let list = namespaces.list(&ListParams::default()).await?;
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()?;
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(exit.success(), "kubesim exits cleanly on Ctrl-C: {exit:?}");
    Ok(())
}

#[tokio::test]
async fn serve_explains_a_port_that_is_taken() -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    let dir = tempfile::tempdir()?;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["serve", "--world", "demo", "--port", &port, "--kubeconfig"])
        .arg(dir.path().join("kc"))
        .output()
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("--port"),
        "{stderr}"
    );
    Ok(())
}
