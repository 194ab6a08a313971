//! `ferry contexts`: the contexts Ferry sees, like `kubectl config get-contexts`, with the server
//! URL added so a person can tell clusters apart. Reads the same kubeconfig files as kubectl
//! (`KUBECONFIG`, else `~/.kube/config`). `--check` also signs in to each context and asks its
//! API server to answer, to find the broken ones before starting tunnels.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use ferry_core::{ClientPool, ContextInfo, KubeconfigNote};

/// Options of `ferry contexts`.
#[derive(Debug, Args)]
pub struct ContextsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Also check each context: sign in (running exec plugins) and ask its API server for its
    /// API versions. Adds a STATUS column, prints each failure's reason, and exits 1 if any
    /// context fails.
    #[arg(long)]
    pub check: bool,
}

/// How `ferry contexts` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, `*` marking the current context.
    Table,
    /// A JSON array of contexts, for scripts.
    Json,
    /// Context names only, one per line.
    Name,
}

/// How long one context may take to answer `--check`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of checking one context: `Err` holds the reason, in words.
type Check = Result<(), String>;

/// Prints the contexts; fails with the file name and reason when a kubeconfig is malformed,
/// and when there are no contexts at all (naming the missing or empty files). Other problems
/// (a missing file among several, a dangling current-context) are warnings.
pub fn run(args: ContextsArgs) -> anyhow::Result<ExitCode> {
    let pool = ClientPool::from_env().context("cannot list contexts")?;
    let contexts = pool.contexts();
    let notes = pool.kubeconfig_notes();
    if contexts.is_empty() {
        bail!("{}", no_contexts(&notes));
    }
    for note in &notes {
        eprintln!("warning: {note}");
    }
    let checks = if args.check {
        Some(check_all(&pool, &contexts)?)
    } else {
        None
    };
    let text = match args.output {
        Output::Table => table(&contexts, checks.as_deref()),
        Output::Json => serde_json::to_string_pretty(&contexts)? + "\n",
        Output::Name => contexts.iter().map(|c| format!("{}\n", c.name)).collect(),
    };
    print!("{text}");
    let failures: Vec<String> = checks
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .collect();
    for failure in &failures {
        eprintln!("{failure}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Why there are no contexts, naming the files, and what to do.
fn no_contexts(notes: &[KubeconfigNote]) -> String {
    let listed = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let hint = if listed {
        "the KUBECONFIG environment variable lists these files: fix it, or create the file (e.g. with your cloud's CLI)"
    } else {
        "create ~/.kube/config (e.g. with your cloud's CLI), or set KUBECONFIG to your kubeconfig files"
    };
    let files: Vec<String> = notes
        .iter()
        .filter(|n| !matches!(n, KubeconfigNote::UnknownCurrentContext { .. }))
        .map(ToString::to_string)
        .collect();
    if files.is_empty() {
        format!(
            "no contexts: the kubeconfig defines none; add one with `kubectl config set-context`, or {hint}"
        )
    } else {
        format!("no contexts: {}; {hint}", files.join("; "))
    }
}

/// Probes every context at once, in context order.
fn check_all(pool: &ClientPool, contexts: &[ContextInfo]) -> anyhow::Result<Vec<Check>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in contexts.iter().enumerate() {
            let (pool, name) = (pool.clone(), c.name.clone());
            tasks.spawn(async move {
                let result = pool.probe(&name, CHECK_TIMEOUT).await;
                (i, result.map_err(|e| e.to_string()))
            });
        }
        let mut results: Vec<Check> = vec![Ok(()); contexts.len()];
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.context("a context check crashed")?;
            results[i] = result;
        }
        Ok(results)
    })
}

/// The table, columns padded with three spaces as kubectl's tabwriter does. With `checks`, a
/// STATUS column (`ok` / `error`) comes last, so kubectl's columns keep their places.
pub fn table(contexts: &[ContextInfo], checks: Option<&[Check]>) -> String {
    let mut header: Vec<String> = ["CURRENT", "NAME", "CLUSTER", "SERVER", "USER", "NAMESPACE"]
        .map(String::from)
        .to_vec();
    if checks.is_some() {
        header.push("STATUS".into());
    }
    let mut rows: Vec<Vec<String>> = vec![header];
    for (i, c) in contexts.iter().enumerate() {
        let mut row = vec![
            if c.is_current {
                "*".into()
            } else {
                String::new()
            },
            c.name.clone(),
            c.cluster.clone(),
            c.server.clone().unwrap_or_default(),
            c.user.clone().unwrap_or_default(),
            c.namespace.clone().unwrap_or_default(),
        ];
        if let Some(checks) = checks {
            let ok = checks.get(i).is_some_and(Result::is_ok);
            row.push(if ok { "ok" } else { "error" }.into());
        }
        rows.push(row);
    }
    align(&rows)
}

fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths.iter().copied()).enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(w - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str, current: bool, ns: Option<&str>) -> ContextInfo {
        ContextInfo {
            name: name.into(),
            cluster: format!("{name}-cluster"),
            server: Some(format!("https://{name}.example:6443")),
            user: Some("admin".into()),
            namespace: ns.map(Into::into),
            is_current: current,
            uses_exec_plugin: false,
            source: None,
        }
    }

    #[test]
    fn contexts_table_marks_current_and_aligns_columns() {
        let text = table(
            &[ctx("demo", true, Some("shop")), ctx("prod-eu", false, None)],
            None,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("CURRENT   NAME"), "{text}");
        assert!(lines[1].starts_with("*         demo "), "{text}");
        assert!(lines[1].ends_with("shop"), "{text}");
        assert!(lines[2].starts_with("          prod-eu"), "{text}");
        let server_col = lines[0].find("SERVER").unwrap();
        assert_eq!(&lines[1][server_col..server_col + 8], "https://", "{text}");
        assert_eq!(&lines[2][server_col..server_col + 8], "https://", "{text}");
    }

    #[test]
    fn checked_table_adds_a_status_column() {
        let checks = [Ok(()), Err("cannot reach".to_string())];
        let text = table(
            &[ctx("a", true, None), ctx("b", false, None)],
            Some(&checks),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("STATUS"), "{text}");
        assert!(
            lines[1].ends_with("ok") && lines[2].ends_with("error"),
            "{text}"
        );
    }
}
