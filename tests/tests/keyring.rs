//! Cluster tokens against a REAL Secret Service (gnome-keyring in a private D-Bus session, as
//! `tests/run` starts it): the token is in the keyring, and in no file under the config
//! directory and no log line.
//!
//! Run alone with:
//! `dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; cargo test -p ferry-e2e --test keyring'`
//!
//! Without a reachable Secret Service these tests FAIL under `CI=true` (or when `tests/run` sets
//! `FERRY_TEST_SECRET_SERVICE`) and are skipped with a loud message otherwise.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ferry_core::profiles::{Cluster, ProfileStore, StoreError, TokenChange};
use ferry_core::secrets::{KEYRING_SERVICE, OsKeyring, SecretError, SecretStore};

/// Whether the Secret Service answers; panics under CI when it does not.
fn secret_service_or_skip(test: &str) -> bool {
    match OsKeyring.check() {
        Ok(()) => true,
        Err(e) if ferry_e2e::is_ci() || std::env::var_os("FERRY_TEST_SECRET_SERVICE").is_some() => {
            panic!(
                "{test}: CI=true (or FERRY_TEST_SECRET_SERVICE) but no Secret Service is reachable: {e}"
            )
        }
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED {test}: no Secret Service ({e}).\n*** Run inside dbus-run-session with gnome-keyring unlocked (see tests/tests/keyring.rs).\n"
            );
            false
        }
    }
}

/// A unique token per run so leftovers from other runs cannot make a test pass.
fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("ferry-e2e-token-{}-{nanos}", std::process::id())
}

/// `secret-tool lookup service dev.ferry.Ferry username KEY` — the keyring as another program
/// sees it. `None` when there is no such item.
fn secret_tool_lookup(key: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", KEYRING_SERVICE, "username", key])
        .output()
        .expect("secret-tool must be installed (apt-get install libsecret-tools)");
    let value = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    (out.status.success() && !value.is_empty()).then_some(value)
}

/// Every file under `dir`, recursively, that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read config dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && String::from_utf8_lossy(&bytes).contains(needle)
        {
            hits.push(path.display().to_string());
        }
    }
    hits
}

/// Captures every log line (all levels) of this test process.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[test]
fn cluster_token_is_kept_in_the_secret_service_and_nowhere_else() {
    if !secret_service_or_skip("cluster_token_is_kept_in_the_secret_service_and_nowhere_else") {
        return;
    }
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let config = tempfile::tempdir().unwrap();
    let mut store = ProfileStore::open(config.path(), Arc::new(OsKeyring)).unwrap();
    let token = unique_token();
    let mut cluster = Cluster::new("lab", "https://127.0.0.1:6443");
    cluster.ca_data = Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t".into());
    store
        .save_cluster(cluster.clone(), TokenChange::Set(token.clone()))
        .unwrap();

    let key = store.cluster("lab").unwrap().token.clone().unwrap().key;
    assert_eq!(secret_tool_lookup(&key).as_deref(), Some(token.as_str()));
    let reopened = ProfileStore::open(config.path(), Arc::new(OsKeyring)).unwrap();
    assert_eq!(
        reopened.cluster_token("lab").unwrap().as_deref(),
        Some(token.as_str())
    );
    let file = std::fs::read_to_string(store.path()).unwrap();
    assert!(file.contains(&format!("keyring:{key}")), "{file}");
    assert_eq!(
        files_containing(config.path(), &token),
        Vec::<String>::new()
    );

    // A new token replaces the old one, which leaves the keyring.
    let token2 = unique_token() + "-2";
    store
        .save_cluster(cluster, TokenChange::Set(token2.clone()))
        .unwrap();
    let key2 = store.cluster("lab").unwrap().token.clone().unwrap().key;
    assert_eq!(
        secret_tool_lookup(&key),
        None,
        "the replaced token must be deleted"
    );
    assert_eq!(secret_tool_lookup(&key2).as_deref(), Some(token2.as_str()));

    // Removing the cluster removes its secret.
    store.remove_cluster("lab").unwrap();
    assert_eq!(secret_tool_lookup(&key2), None);
    assert_eq!(
        files_containing(config.path(), &token2),
        Vec::<String>::new()
    );

    let log = logs.text();
    assert!(
        log.contains("stored a secret"),
        "logging was not captured:\n{log}"
    );
    assert!(
        !log.contains(&token) && !log.contains(&token2),
        "a token leaked into the log:\n{log}"
    );
}

/// Runs in a child process whose D-Bus address points nowhere (see the next test).
#[test]
#[ignore = "run by without_a_secret_service_the_token_is_refused_and_nothing_is_written"]
fn child_saves_a_token_with_no_secret_service() {
    let Ok(dir) = std::env::var("FERRY_E2E_CHILD_DIR") else {
        eprintln!("this is the child half of without_a_secret_service_…; run that test instead");
        return;
    };
    let mut store = ProfileStore::open(&dir, Arc::new(OsKeyring)).unwrap();
    let err = store
        .save_cluster(
            Cluster::new("lab", "https://127.0.0.1:6443"),
            TokenChange::Set("child-secret-token".into()),
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Secret(SecretError::Unavailable { .. })),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("no secret store is reachable"),
        "{message}"
    );
    assert!(!message.contains("child-secret-token"), "{message}");
    println!("REFUSED: {message}");
}

#[test]
fn without_a_secret_service_the_token_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_saves_a_token_with_no_secret_service",
            "--ignored",
            "--nocapture",
        ])
        .env("FERRY_E2E_CHILD_DIR", dir.path())
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/ferry-no-bus",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("REFUSED: no secret store is reachable"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(
        left.iter().all(|e| e.file_name() != "profiles.toml"),
        "a file was written"
    );
    assert_eq!(
        files_containing(dir.path(), "child-secret-token"),
        Vec::<String>::new()
    );
}

/// A cluster added in Ferry (URL + CA + token in the keyring, no kubeconfig entry) carries
/// tunnels for `ferry up` like any kubeconfig context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_up_reaches_a_cluster_added_in_ferry_with_its_token_from_the_keyring() {
    use base64::Engine as _;
    use ferry_core::profiles::Profile;
    use ferry_core::spec::TunnelSpec;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    if !secret_service_or_skip(
        "ferry_up_reaches_a_cluster_added_in_ferry_with_its_token_from_the_keyring",
    ) {
        return;
    }
    let cluster = ferry_e2e::start_demo().await.expect("kubesim");
    let sim = &cluster.sim;
    let config = tempfile::tempdir().unwrap();
    let mut store = ProfileStore::open(config.path(), Arc::new(OsKeyring)).unwrap();
    let mut lab = Cluster::new("lab", sim.server_url("staging").expect("staging url"));
    lab.ca_data = sim
        .ca_pem()
        .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem));
    let token = sim.token(ferry_e2e::kubesim::User::Admin);
    store
        .save_cluster(lab, TokenChange::Set(token.clone()))
        .unwrap();
    let spec = TunnelSpec {
        context: "lab".into(),
        namespace: "backend".into(),
        target: "svc/api".parse().unwrap(),
        ports: vec![":80".parse().unwrap()],
        bind: vec![],
        spread: Default::default(),
        alias: Some("api".into()),
        note: None,
    };
    store.add_profile(Profile::new("lab-set", [spec])).unwrap();
    assert_eq!(
        files_containing(config.path(), &token),
        Vec::<String>::new()
    );

    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ferry"))
        .unwrap();
    assert!(
        bin.is_file(),
        "build the ferry binary first: cargo build -p ferry"
    );
    let mut child = tokio::process::Command::new(bin)
        .args(["up", "lab-set"])
        .env("FERRY_CONFIG_DIR", config.path())
        .env("KUBECONFIG", config.path().join("no-kubeconfig"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = ferry_e2e::read_until(
        &mut lines,
        std::time::Duration::from_secs(60),
        "a Forwarding line",
        |l| l.contains("Forwarding from 127.0.0.1:"),
    )
    .await
    .unwrap();
    let addr: std::net::SocketAddr = seen
        .last()
        .and_then(|l| l.split("Forwarding from ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("listening address");
    let reply = ferry_e2e::wait_for(
        "HTTP 200 through the in-app cluster",
        std::time::Duration::from_secs(30),
        || async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut got = Vec::new();
            tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut got))
                .await
                .ok()?
                .ok()?;
            let text = String::from_utf8_lossy(&got).into_owned();
            text.starts_with("HTTP/1.1 200").then_some(text)
        },
    )
    .await
    .unwrap();
    assert!(reply.contains("You've hit"), "{reply}");

    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&token),
        "the token leaked into ferry's output"
    );
    store.remove_cluster("lab").unwrap();
}
