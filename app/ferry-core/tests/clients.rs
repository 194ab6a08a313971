//! The client pool: lazily created clients per context, exec credential plugins found outside
//! the desktop PATH, and errors that name the context, file, URL or plugin.

use std::path::{Path, PathBuf};

use ferry_core::ClientPool;
use ferry_core::errors::{Access, ClusterError};
use ferry_core::exec_auth;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[cfg(unix)]
fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = write(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn kubeconfig_with_user(server: &str, user_yaml: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: '{server}'}}\nusers:\n- name: u\n  user:\n{user_yaml}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u, namespace: shop}}\n- name: orphan\n  context: {{cluster: missing, user: u}}\n"
    )
}

const TOKEN_USER: &str = "    token: not-a-real-token\n";

#[tokio::test]
async fn unknown_context_lists_the_known_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://127.0.0.1:1", TOKEN_USER),
    );
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    let err = pool.client("prod").await.err().expect("unknown");
    assert_eq!(
        err.to_string(),
        "there is no context named \"prod\"; known contexts: c, orphan"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn context_with_a_missing_cluster_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://127.0.0.1:1", TOKEN_USER),
    );
    let pool = ClientPool::from_paths(std::slice::from_ref(&file)).expect("loads");
    let err = pool.client("orphan").await.err().expect("no cluster");
    let text = err.to_string();
    assert!(
        text.starts_with("context \"orphan\" cannot be used: "),
        "{text}"
    );
    assert!(text.contains(&file.display().to_string()), "{text}");
}

#[tokio::test]
async fn pool_reports_contexts_and_default_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://10.1.2.3:6443", TOKEN_USER),
    );
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    assert_eq!(pool.current_context().as_deref(), Some("c"));
    assert_eq!(pool.default_namespace("c"), "shop");
    assert_eq!(pool.default_namespace("orphan"), "default");
    assert_eq!(pool.server_url("c"), "https://10.1.2.3:6443");
    let c = pool.context("c").expect("c");
    assert!(c.is_current && !c.uses_exec_plugin);
}

#[tokio::test]
async fn unreachable_api_server_is_reported_with_its_url() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let url = "https://127.0.0.1:1";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "config", &kubeconfig_with_user(url, TOKEN_USER));
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    let Ok(client) = pool.client("c").await else {
        panic!("creating a client does not connect");
    };
    let err = client
        .apiserver_version()
        .await
        .expect_err("nothing listens on port 1");
    let err = ClusterError::from_kube(
        "c",
        &pool.server_url("c"),
        &Access::watch("pods", Some("shop")),
        &err,
    );
    assert!(matches!(err, ClusterError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot reach the API server of context \"c\" at https://127.0.0.1:1: "),
        "{text}"
    );
    assert!(err.is_transient());
}

#[cfg(unix)]
#[tokio::test]
async fn exec_plugin_runs_once_per_context_and_gets_a_useful_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = dir.path().join("calls");
    let seen_path = dir.path().join("path");
    let plugin = write_script(
        dir.path(),
        "my-login",
        &format!(
            "echo run >> '{}'\nprintf %s \"$PATH\" > '{}'\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"t0k3n\"}}}}'",
            calls.display(),
            seen_path.display()
        ),
    );
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        plugin.display()
    );
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://127.0.0.1:1", &user),
    );
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    assert!(pool.context("c").expect("c").uses_exec_plugin);
    let other = pool.clone();
    let (a, b) = tokio::join!(pool.client("c"), other.client("c"));
    assert!(a.is_ok() && b.is_ok(), "plugin gives a token");
    // kube-rs itself may run the plugin more than once while building one client (TLS identity
    // and auth layer); what matters is that later users of the context reuse that client.
    let runs_for_first_client = std::fs::read_to_string(&calls)
        .expect("plugin ran")
        .lines()
        .count();
    for _ in 0..3 {
        assert!(pool.client("c").await.is_ok(), "cached");
    }
    let runs = std::fs::read_to_string(&calls)
        .expect("plugin ran")
        .lines()
        .count();
    assert_eq!(
        runs, runs_for_first_client,
        "one sign-in shared by every user of the context"
    );
    let path = std::fs::read_to_string(&seen_path).expect("plugin saw a PATH");
    assert!(
        path.split(':').any(|d| d == "/usr/local/bin"),
        "usual places are on the plugin's PATH: {path}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn failing_exec_plugin_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = write_script(dir.path(), "bad-login", "echo 'token expired' >&2\nexit 3");
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        plugin.display()
    );
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://127.0.0.1:1", &user),
    );
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    let err = pool.client("c").await.err().expect("plugin fails");
    assert!(
        matches!(&err, ClusterError::ExecPluginFailed { command, .. } if command.ends_with("bad-login")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn missing_exec_plugin_says_what_was_searched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ferry-test-no-such-plugin\n      installHint: brew install no-such-plugin\n";
    let file = write(
        dir.path(),
        "config",
        &kubeconfig_with_user("https://127.0.0.1:1", user),
    );
    let pool = ClientPool::from_paths(&[file]).expect("loads");
    let err = pool.client("c").await.err().expect("not installed");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "context \"c\" signs in with the credential plugin \"ferry-test-no-such-plugin\", but it was not found; looked in: "
        ),
        "{text}"
    );
    assert!(text.contains("/usr/local/bin"), "{text}");
    assert!(
        text.ends_with("Install hint from the kubeconfig: brew install no-such-plugin"),
        "{text}"
    );
}

#[test]
fn plugin_search_covers_the_usual_install_places() {
    let home = Path::new("/home/ann");
    let dirs = exec_auth::usual_places(Some(home));
    for expected in [
        "/home/ann/.local/bin",
        "/home/ann/go/bin",
        "/home/ann/.krew/bin",
        "/home/ann/google-cloud-sdk/bin",
        "/usr/local/bin",
        "/opt/homebrew/bin",
    ] {
        assert!(
            dirs.contains(&PathBuf::from(expected)),
            "{expected} missing from {dirs:?}"
        );
    }
}

#[test]
fn search_path_keeps_order_and_drops_repeats() {
    let p = |s: &str| PathBuf::from(s);
    let combined = exec_auth::combine(
        vec![p("/usr/bin"), p("")],
        vec![p("/home/ann/.krew/bin"), p("/usr/bin")],
        vec![p("/usr/local/bin"), p("/home/ann/.krew/bin")],
    );
    assert_eq!(
        combined,
        [p("/usr/bin"), p("/home/ann/.krew/bin"), p("/usr/local/bin")]
    );
}

#[test]
fn login_shell_output_is_read_between_markers() {
    let noisy =
        "Welcome to zsh!\nlast login: today\n__FERRY_PATH__/opt/x/bin:/usr/bin__FERRY_END__\n";
    assert_eq!(
        exec_auth::parse_marked_path(noisy),
        Some("/opt/x/bin:/usr/bin")
    );
    assert_eq!(exec_auth::parse_marked_path("no markers"), None);
}

#[cfg(unix)]
#[test]
fn plugins_are_found_by_name_in_the_given_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let found = write_script(dir.path(), "kubelogin", "exit 0");
    write(dir.path(), "not-executable", "data");
    let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
    assert_eq!(
        exec_auth::find_executable("kubelogin", &dirs),
        Some(found.clone())
    );
    assert_eq!(exec_auth::find_executable("not-executable", &dirs), None);
    assert_eq!(
        exec_auth::find_executable(&found.display().to_string(), &[]),
        Some(found)
    );
}
