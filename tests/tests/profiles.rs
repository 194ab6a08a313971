//! Profiles end to end: the `ferry profile …` commands on a private config directory, imports
//! from a kftray export and from pasted kubectl lines, several ferry processes writing at once,
//! a corrupt file left untouched, and `ferry up staging` against kubesim with traffic through
//! every tunnel.
//!
//! The `ferry` binary must be built (`cargo build -p ferry`; `cargo test --workspace` does it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::profiles::import::{ImportDefaults, import_kftray, import_kubectl};
use ferry_core::profiles::{Profile, ProfileStore};
use ferry_core::secrets::MemorySecrets;
use ferry_core::spec::{LocalPort, PortSpec, Target, TunnelSpec};
use tokio::io::{AsyncBufReadExt, BufReader};

use ferry_e2e::ferry_bin;

const KFTRAY: &str = include_str!("../fixtures/kftray-export.json");

/// Runs `ferry ARGS` with its own config dir and no kubeconfig.
fn ferry(config: &Path, args: &[&str]) -> Output {
    ferry_with_stdin(config, args, "")
}

fn ferry_with_stdin(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(ferry_bin())
        .args(args)
        .env("FERRY_CONFIG_DIR", config)
        .env("KUBECONFIG", config.join("no-kubeconfig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferry");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("run ferry")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn store(dir: &Path) -> ProfileStore {
    ProfileStore::open(dir, Arc::new(MemorySecrets::default())).expect("open store")
}

fn defaults() -> ImportDefaults {
    ImportDefaults {
        context: "current-ctx".into(),
        namespace: "current-ns".into(),
    }
}

#[test]
fn profile_commands_add_show_export_import_and_remove() {
    let a = tempfile::tempdir().unwrap();
    let out = ferry(
        a.path(),
        &[
            "profile",
            "add",
            "staging",
            "svc/api",
            "8080:80",
            "--context",
            "kind-staging",
            "-n",
            "backend",
            "--alias",
            "api",
            "--autostart",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ferry(
        a.path(),
        &[
            "profile",
            "add",
            "staging",
            "pod/postgres-0",
            "5432",
            "--context",
            "kind-staging",
            "-n",
            "data",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = ferry(a.path(), &["profile", "list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("staging  (2 tunnels)  [autostart]"),
        "{}",
        text(&out)
    );
    let out = ferry(a.path(), &["profile", "show", "staging"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("api: svc/api 8080:80 (context kind-staging, namespace backend)"),
        "{}",
        text(&out)
    );
    assert!(
        shown.contains("pod/postgres-0 5432 (context kind-staging, namespace data)"),
        "{}",
        text(&out)
    );

    let export = a.path().join("shared.toml");
    let out = ferry(
        a.path(),
        &[
            "profile",
            "export",
            "staging",
            "-o",
            export.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // A teammate imports it into an empty config: the same profile comes out.
    let b = tempfile::tempdir().unwrap();
    let out = ferry(b.path(), &["profile", "import", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(store(b.path()).profiles(), store(a.path()).profiles());
    // Importing again clashes unless told what to do.
    let out = ferry(b.path(), &["profile", "import", export.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out).contains("--rename"),
        "{}",
        text(&out)
    );
    let out = ferry(
        b.path(),
        &["profile", "import", export.to_str().unwrap(), "--rename"],
    );
    assert!(
        text(&out).contains("imported profile \"staging (2)\""),
        "{}",
        text(&out)
    );

    let out = ferry(a.path(), &["profile", "rm", "staging"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(store(a.path()).profiles().is_empty());
    let out = ferry(a.path(), &["profile", "show", "staging"]);
    assert!(
        !out.status.success() && text(&out).contains("no profile named \"staging\""),
        "{}",
        text(&out)
    );
}

#[test]
fn kftray_export_is_imported_and_what_ferry_cannot_do_is_listed() {
    let report = import_kftray(KFTRAY, "kf", &defaults()).unwrap();
    let profile = &report.profiles[0];
    let specs: Vec<&TunnelSpec> = profile.specs().collect();
    assert_eq!(specs.len(), 3, "{specs:?}");
    assert_eq!(specs[0].target, Target::Service("argocd-server".into()));
    assert_eq!(
        (specs[0].context.as_str(), specs[0].namespace.as_str()),
        ("test-cluster", "argocd")
    );
    assert_eq!(
        specs[0].ports,
        vec![PortSpec {
            local: LocalPort::Fixed(8888),
            remote: "8080".parse::<PortSpec>().unwrap().remote
        }]
    );
    assert_eq!(specs[0].alias.as_deref(), Some("argocd"));
    assert_eq!(
        specs[1].target,
        Target::Selector("app.kubernetes.io/component=server".into())
    );
    assert_eq!(
        specs[1].bind,
        vec!["127.0.0.5".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        specs[2].context, "current-ctx",
        "no context in the entry: the current one"
    );

    let skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    let has = |needle: &str| skipped.iter().any(|s| s.contains(needle));
    assert!(
        has("entry 3 (\"dns\") skipped: protocol udp is not supported"),
        "{skipped:#?}"
    );
    assert!(
        has("entry 4 (\"rds\") skipped: proxy workloads"),
        "{skipped:#?}"
    );
    assert!(
        has("entry 1 (\"argocd\"): `domain_enabled` ignored"),
        "{skipped:#?}"
    );
    assert!(
        has("`kubeconfig` ignored") && has("`http_logs_enabled` ignored"),
        "{skipped:#?}"
    );

    // The same through the CLI.
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kftray-export.json");
    let out = ferry(
        dir.path(),
        &[
            "profile",
            "import",
            fixture.to_str().unwrap(),
            "--kftray",
            "--name",
            "from-kftray",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported profile \"from-kftray\" (3 tunnels)"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("skipped: entry 4 (\"rds\") skipped"),
        "{}",
        text(&out)
    );
    assert_eq!(
        store(dir.path())
            .profile("from-kftray")
            .unwrap()
            .tunnels
            .len(),
        3
    );
}

#[test]
fn pasted_kubectl_port_forward_lines_become_a_profile() {
    let pasted = "\
$ kubectl port-forward svc/api 8080:80 -n backend --context kind-staging
kubectl -n data port-forward pod/postgres-0 5432 15432:5433 &
# a comment
kubectl port-forward deploy/web :http --address 127.0.0.1,::1 \\
    --namespace=web --pod-running-timeout=2m
kubectl port-forward postgres-1 6000:5432
kubectl get pods
kubectl port-forward rs/frontend 80
";
    let report = import_kubectl(pasted, "pasted", &defaults()).unwrap();
    let specs: Vec<&TunnelSpec> = report.profiles[0].specs().collect();
    assert_eq!(specs.len(), 4, "{specs:#?}\n{:#?}", report.skipped);
    assert_eq!(specs[0].target, Target::Service("api".into()));
    assert_eq!(
        (specs[0].context.as_str(), specs[0].namespace.as_str()),
        ("kind-staging", "backend")
    );
    assert_eq!(specs[1].namespace, "data");
    assert_eq!(specs[1].context, "current-ctx");
    let ports: Vec<String> = specs[1].ports.iter().map(ToString::to_string).collect();
    assert_eq!(ports, ["5432", "15432:5433"]);
    assert_eq!(specs[2].target, Target::Deployment("web".into()));
    assert_eq!(specs[2].namespace, "web");
    assert_eq!(specs[2].bind.len(), 2);
    assert_eq!(specs[2].ports[0].to_string(), ":http");
    assert_eq!(specs[3].target, Target::Pod("postgres-1".into()));
    assert_eq!(specs[3].namespace, "current-ns");
    let skipped: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("line 4: `--pod-running-timeout` ignored")),
        "{skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("line 7 skipped: not a `kubectl port-forward` command")),
        "{skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("line 8 skipped") && s.contains("rs")),
        "{skipped:#?}"
    );

    // Through the CLI, pasted on standard input.
    let dir = tempfile::tempdir().unwrap();
    let out = ferry_with_stdin(
        dir.path(),
        &["profile", "import", "-", "--kubectl", "--name", "pasted"],
        pasted,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        store(dir.path()).profile("pasted").unwrap().tunnels.len(),
        4
    );
}

#[test]
fn several_ferry_processes_adding_profiles_at_once_lose_none() {
    let dir = tempfile::tempdir().unwrap();
    let bin = ferry_bin();
    for round in 0..3 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                Command::new(&bin)
                    .args([
                        "profile",
                        "add",
                        &format!("p{round}-{i}"),
                        "svc/api",
                        "80",
                        "--context",
                        "c",
                        "-n",
                        "n",
                    ])
                    .env("FERRY_CONFIG_DIR", dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn ferry")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    }
    let s = store(dir.path());
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    assert_eq!(s.profiles().len(), 24);
}

#[test]
fn a_corrupt_profile_file_is_left_untouched_and_the_error_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profiles.toml");
    let corrupt = b"version = 1\n\n[[profile]]\nname = \"staging\"\nautostart = yes\n".to_vec();
    std::fs::write(&path, &corrupt).unwrap();
    let out = ferry(dir.path(), &["profile", "list"]);
    assert!(text(&out).contains("profiles.toml:5:13"), "{}", text(&out));
    let out = ferry(
        dir.path(),
        &[
            "profile",
            "add",
            "new",
            "svc/api",
            "80",
            "--context",
            "c",
            "-n",
            "n",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("will not overwrite it"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        corrupt,
        "the file must be byte-for-byte unchanged"
    );
}

/// `[staging] api: Forwarding from 127.0.0.1:PORT -> SPEC` → (label, address).
fn forwarding_line(line: &str) -> Option<(String, SocketAddr)> {
    let (label, rest) = line.split_once(": Forwarding from ")?;
    let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    addr.is_ipv4().then(|| (label.to_string(), addr))
}

fn roundtrip(addr: SocketAddr, send: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(send)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains('\n') {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_staging_brings_every_tunnel_up_and_traffic_flows() {
    let cluster = ferry_e2e::start_demo().await.expect("kubesim");
    let config = tempfile::tempdir().unwrap();
    let tunnel = |target: &str, port: &str, alias: &str| TunnelSpec {
        context: "staging".into(),
        namespace: "backend".into(),
        target: target.parse().unwrap(),
        ports: vec![port.parse().unwrap()],
        bind: vec![],
        spread: Default::default(),
        alias: Some(alias.into()),
        note: None,
    };
    let mut staging = Profile::new(
        "staging",
        [
            tunnel("svc/api", ":80", "api"),
            tunnel("svc/redis", ":6379", "redis"),
            tunnel("svc/postgres", ":5432", "postgres"),
        ],
    );
    staging.autostart = true;
    store(config.path()).add_profile(staging).unwrap();
    store(config.path())
        .add_profile(Profile::new("other", [tunnel("svc/nope", ":1", "nope")]))
        .unwrap();

    let mut child = tokio::process::Command::new(ferry_bin())
        .args(["up", "staging"])
        .env("FERRY_CONFIG_DIR", config.path())
        .env("KUBECONFIG", cluster.kubeconfig())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start ferry up");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut listening = std::collections::BTreeMap::new();
    ferry_e2e::read_until(
        &mut lines,
        Duration::from_secs(60),
        "all three tunnels listening",
        |line| {
            if let Some((label, addr)) = forwarding_line(line) {
                listening.insert(label, addr);
            }
            listening.len() == 3
        },
    )
    .await
    .expect("ferry up prints a Forwarding line per tunnel");
    assert!(
        !listening.keys().any(|l| l.contains("nope")),
        "only the named profile starts"
    );

    let api = listening["[staging] api"];
    let reply = ferry_e2e::wait_for(
        "an HTTP answer through the api tunnel",
        Duration::from_secs(30),
        || async move {
            tokio::task::spawn_blocking(move || {
                roundtrip(
                    api,
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .ok()
            })
            .await
            .ok()
            .flatten()
            .filter(|r| r.starts_with("HTTP/1.1 200"))
        },
    )
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for name in ["redis", "postgres"] {
        let addr = listening[&format!("[staging] {name}")];
        let echoed = ferry_e2e::wait_for(
            &format!("an echo through the {name} tunnel"),
            Duration::from_secs(30),
            || async move {
                tokio::task::spawn_blocking(move || roundtrip(addr, b"ping ferry\n").ok())
                    .await
                    .ok()
                    .flatten()
                    .filter(|r| r.contains("ping ferry"))
            },
        )
        .await
        .unwrap();
        assert_eq!(echoed, "ping ferry\n");
    }

    // Ctrl-C ends it cleanly.
    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("ferry up exits after Ctrl-C")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn killing_ferry_in_the_middle_of_a_write_leaves_the_old_or_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = ferry_bin();
    let out = ferry(
        dir.path(),
        &[
            "profile",
            "add",
            "seed",
            "svc/api",
            "80",
            "--context",
            "c",
            "-n",
            "n",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for i in 0..40u64 {
        let mut child = Command::new(&bin)
            .args([
                "profile",
                "add",
                &format!("k{i}"),
                "svc/api",
                "80",
                "--context",
                "c",
                "-n",
                "n",
            ])
            .env("FERRY_CONFIG_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ferry");
        // Not a wait for a condition: this spreads the SIGKILL over the process's short life
        // (startup, lock, write, fsync, rename) so some kills land in the middle of a write.
        std::thread::sleep(Duration::from_micros(i * 300));
        let _ = child.kill();
        let _ = child.wait();
        let s = store(dir.path());
        assert!(
            s.problems().is_empty(),
            "after kill {i}: {:?}",
            s.problems()
        );
        assert!(
            s.profile("seed").is_some(),
            "after kill {i}: the old content is gone"
        );
    }
    // The next write clears temp files that killed writers left behind.
    let out = ferry(
        dir.path(),
        &[
            "profile",
            "add",
            "last",
            "svc/api",
            "80",
            "--context",
            "c",
            "-n",
            "n",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn ferry_up_says_which_profiles_exist_when_the_name_is_wrong_or_none_autostarts() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(
        dir.path(),
        &[
            "profile",
            "add",
            "staging",
            "svc/api",
            "80",
            "--context",
            "c",
            "-n",
            "n",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ferry(dir.path(), &["up", "nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no profile named \"nope\"; saved profiles: staging"),
        "{}",
        text(&out)
    );
    let out = ferry(dir.path(), &["up"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no profile is marked autostart"),
        "{}",
        text(&out)
    );
}
