//! `ferry contexts`: the contexts Ferry sees, like `kubectl config get-contexts`, with the server
//! URL added so a person can tell clusters apart. Reads the same kubeconfig files as kubectl
//! (`KUBECONFIG`, else `~/.kube/config`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ferry_core::{ClientPool, ContextInfo};

/// Options of `ferry contexts`.
#[derive(Debug, Args)]
pub struct ContextsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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

/// Prints the contexts; fails with the file name and reason when a kubeconfig is malformed.
pub fn run(args: ContextsArgs) -> anyhow::Result<ExitCode> {
    let pool = ClientPool::from_env().context("cannot list contexts")?;
    let contexts = pool.contexts();
    let text = match args.output {
        Output::Table => table(&contexts),
        Output::Json => serde_json::to_string_pretty(&contexts)? + "\n",
        Output::Name => contexts.iter().map(|c| format!("{}\n", c.name)).collect(),
    };
    print!("{text}");
    if contexts.is_empty() && args.output == Output::Table {
        eprintln!(
            "no contexts: set KUBECONFIG or create ~/.kube/config (e.g. with your cloud's CLI)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The table, columns padded with three spaces as kubectl's tabwriter does.
pub fn table(contexts: &[ContextInfo]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "CURRENT".into(),
        "NAME".into(),
        "CLUSTER".into(),
        "SERVER".into(),
        "USER".into(),
        "NAMESPACE".into(),
    ]];
    for c in contexts {
        rows.push([
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
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
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
        let text = table(&[ctx("demo", true, Some("shop")), ctx("prod-eu", false, None)]);
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
}
