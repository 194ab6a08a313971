//! Finding exec credential plugins (`aws`, `gke-gcloud-auth-plugin`, `kubelogin`…) the way the
//! user's terminal would.
//!
//! kube-rs runs the plugin itself, by name, with the process's `PATH`. A desktop app started from
//! a menu or the Dock does not get the additions from the user's shell profile (Homebrew, krew,
//! `~/.local/bin`, the Google Cloud SDK), so plugins that work in a terminal are "not found".
//! Before a client is built, Ferry resolves the plugin to an absolute path: first in the process
//! `PATH` and the usual install places; if it is not there, also in the user's login-shell
//! `PATH` (asked once per process, with a timeout). It then gives the plugin the same search
//! path as its `PATH`, since plugins often call other tools (`gcloud`, `az`). When nothing is
//! found, the error names the binary and every directory searched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::config::ExecConfig;

use crate::errors::ClusterError;

/// How long the login shell may take to print its `PATH` (slow dotfiles exist).
const SHELL_TIMEOUT: Duration = Duration::from_secs(3);

/// The directories to search for plugins without asking the shell: the process `PATH`, then
/// the usual install places. Cheap; tried first.
pub fn quick_search_path() -> Vec<PathBuf> {
    combine(process_path(), Vec::new(), usual_places(home().as_deref()))
}

/// The full search path, without duplicates, in priority order: process `PATH`, the login
/// shell's `PATH`, the usual places. Computed once per process (asking the shell is slow and
/// runs the user's shell profile), and only when [`quick_search_path`] did not find a plugin.
pub fn search_path() -> &'static [PathBuf] {
    static PATH: OnceLock<Vec<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let shell = login_shell_path().unwrap_or_default();
        combine(process_path(), shell, usual_places(home().as_deref()))
    })
}

fn process_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn home() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// Concatenates directory lists, dropping empty entries and repeats (first occurrence wins).
pub fn combine(process: Vec<PathBuf>, shell: Vec<PathBuf>, usual: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in process.into_iter().chain(shell).chain(usual) {
        if !dir.as_os_str().is_empty() && !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

/// Where plugin binaries usually live when the shell profile would add them to `PATH`.
pub fn usual_places(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = home {
        for rel in [
            ".local/bin",
            "bin",
            "go/bin",
            ".krew/bin",
            ".cargo/bin",
            "google-cloud-sdk/bin",
            ".azure-kubelogin",
            ".rd/bin",
            ".nix-profile/bin",
            ".asdf/shims",
            ".local/share/mise/shims",
        ] {
            dirs.push(home.join(rel));
        }
    }
    for abs in [
        "/usr/local/bin",
        "/opt/homebrew/bin",
        "/home/linuxbrew/.linuxbrew/bin",
        "/usr/local/google-cloud-sdk/bin",
        "/opt/google-cloud-sdk/bin",
        "/usr/lib/google-cloud-sdk/bin",
        "/snap/bin",
        "/usr/bin",
        "/bin",
        "/usr/sbin",
        "/sbin",
    ] {
        dirs.push(PathBuf::from(abs));
    }
    dirs
}

/// Asks `$SHELL -lic` for its `PATH`, with a timeout. `None` if there is no `$SHELL`, it fails,
/// or it takes too long. Markers around the value skip whatever the profile prints.
pub fn login_shell_path() -> Option<Vec<PathBuf>> {
    let shell = std::env::var_os("SHELL")?;
    let mut child = Command::new(&shell)
        .args([
            "-lic",
            "printf '\\n__FERRY_PATH__%s__FERRY_END__\\n' \"$PATH\"",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + SHELL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                tracing::warn!(shell = ?shell, "login shell did not print its PATH in time; using the usual places");
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value = parse_marked_path(&text)?;
    Some(std::env::split_paths(value).collect())
}

/// Extracts the value printed between Ferry's markers.
pub fn parse_marked_path(text: &str) -> Option<&str> {
    let start = text.rfind("__FERRY_PATH__")? + "__FERRY_PATH__".len();
    let len = text[start..].find("__FERRY_END__")?;
    Some(&text[start..start + len])
}

/// Finds an executable named `command` in `dirs`. A command containing a path separator is
/// checked as is (kube-rs has already made it absolute relative to its kubeconfig file).
pub fn find_executable(command: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let as_path = Path::new(command);
    if as_path.components().count() > 1 || as_path.is_absolute() {
        return is_executable(as_path).then(|| as_path.to_path_buf());
    }
    dirs.iter()
        .map(|d| d.join(command))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Rewrites an exec config so kube-rs finds the plugin: absolute command, and a `PATH` for the
/// plugin (unless the kubeconfig sets one). Errors name the plugin and where Ferry looked.
pub fn prepare(context: &str, exec: &mut ExecConfig, dirs: &[PathBuf]) -> Result<(), ClusterError> {
    let Some(command) = exec.command.clone() else {
        return Err(ClusterError::BadContext {
            context: context.to_string(),
            reason: "its user has an exec section without a command".to_string(),
        });
    };
    let Some(found) = find_executable(&command, dirs) else {
        let searched = if Path::new(&command).components().count() > 1 {
            vec![PathBuf::from(&command)]
        } else {
            dirs.to_vec()
        };
        return Err(ClusterError::ExecPluginNotFound {
            context: context.to_string(),
            command,
            searched,
            hint: exec.install_hint.clone(),
        });
    };
    tracing::debug!(context, plugin = %found.display(), "exec credential plugin resolved");
    exec.command = Some(found.to_string_lossy().into_owned());
    let env = exec.env.get_or_insert_with(Vec::new);
    let sets_path = env
        .iter()
        .any(|e| e.get("name").map(String::as_str) == Some("PATH"));
    if !sets_path && let Ok(joined) = std::env::join_paths(dirs) {
        env.push(HashMap::from([
            ("name".to_string(), "PATH".to_string()),
            ("value".to_string(), joined.to_string_lossy().into_owned()),
        ]));
    }
    Ok(())
}

/// How many of a failing plugin's last stderr lines a message may quote.
const STDERR_LINES: usize = 3;
/// How long one quoted stderr line may be.
const STDERR_LINE_CHARS: usize = 160;

/// A sentence saying what went wrong with a credential plugin, for error messages and logs.
///
/// kube-rs's own texts for these errors quote the plugin's whole standard output (which holds
/// the token, or a half-printed one) and dump the command with its environment
/// (`KUBERNETES_EXEC_INFO`, `PATH`). This says only what was wrong: it could not start, it
/// exited with a code, its answer was not an ExecCredential, had no `status`, or could not be
/// refreshed. Standard output is never quoted. The last lines of standard error (captured
/// only for plugins with `interactiveMode: Never`; others write to Ferry's terminal, as with
/// kubectl) are quoted after [`redact`] hides anything that looks like a token, because
/// plugins print their "run `az login`" advice there, and sometimes debug output as well.
pub fn describe_failure(err: &kube::client::AuthError) -> String {
    use kube::client::AuthError as E;
    match err {
        E::AuthExecStart(io) => format!("it could not be started ({io})"),
        E::AuthExecRun { out, .. } => {
            let how = match out.status.code() {
                Some(code) => format!("it exited with code {code}"),
                None => exit_signal(&out.status)
                    .map(|s| format!("it was stopped by signal {s}"))
                    .unwrap_or_else(|| "it failed".to_string()),
            };
            match stderr_tail(&out.stderr) {
                Some(tail) => format!("{how}; its last error output: {tail}"),
                None => how,
            }
        }
        E::AuthExecParse(_) => "its output is not an ExecCredential (JSON with a `status` \
             holding a `token` or a client certificate); the output is not shown because it may \
             contain a secret"
            .to_string(),
        E::ExecPluginFailed => "its ExecCredential has no `status` (it must hold a `token` or a \
             client certificate)"
            .to_string(),
        E::MalformedTokenExpirationDate(_) => {
            "its `status.expirationTimestamp` is not an RFC 3339 time".to_string()
        }
        E::UnrefreshableTokenResponse => "its token expired and the plugin's new answer had no \
             token with an expiry time; log in again"
            .to_string(),
        E::AuthExecSerialize(e) => format!("Ferry could not prepare its input ({e})"),
        E::MissingCommand => "the exec section has no `command`".to_string(),
        E::ExecMissingClusterInfo => "`provideClusterInfo` is set but the context's cluster \
             entry is missing"
            .to_string(),
        E::ReadTokenFile(io, path) => {
            format!("the token file {} cannot be read ({io})", path.display())
        }
        E::InvalidBasicAuth(_) | E::InvalidBearerToken(_) => {
            "the credentials contain characters that cannot be sent in an HTTP header".to_string()
        }
        E::NoValidNativeRootCA(io) => {
            format!("no valid root certificate found in the system store ({io})")
        }
        // AuthExec texts and auth-provider errors can quote a command's output: say only
        // what kind of step failed.
        E::AuthExec(_) | E::ParseTokenKey(_) => "its answer could not be used".to_string(),
    }
}

#[cfg(unix)]
fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(status)
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The last few non-empty lines of a plugin's stderr, shortened and redacted; `None` if empty.
fn stderr_tail(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(STDERR_LINES);
    let tail: Vec<String> = lines[start..]
        .iter()
        .map(|line| {
            let line = redact(line);
            match line.char_indices().nth(STDERR_LINE_CHARS) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line,
            }
        })
        .collect();
    (!tail.is_empty()).then(|| format!("\"{}\"", tail.join(" / ")))
}

/// Replaces every word that could be a secret with `[hidden]`: runs of 20 or more token
/// characters (letters, digits, `-._~+/=`) that mix letters and digits, which covers JWTs,
/// base64 blobs, hex keys and cloud tokens, but keeps ordinary words, URLs' host names and
/// commands like `az login` readable. Conservative by design: a long path may be hidden too.
pub fn redact(line: &str) -> String {
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let secret = word.len() >= 20
            && word.chars().any(|c| c.is_ascii_digit())
            && word.chars().any(|c| c.is_ascii_alphabetic());
        out.push_str(if secret { "[hidden]" } else { word });
        word.clear();
    };
    for c in line.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The first credential-plugin error in an error's chain of causes, if any.
pub fn auth_error_in<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a kube::client::AuthError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(auth) = e.downcast_ref::<kube::client::AuthError>() {
            return Some(auth);
        }
        if let Some(kube::Error::Auth(auth)) = e.downcast_ref::<kube::Error>() {
            return Some(auth);
        }
        current = e.source();
    }
    None
}
