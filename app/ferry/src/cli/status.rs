//! `ferry status [--json]`: what the running instance is doing — every tunnel with its origin,
//! target, local address, state, pod, connections, bytes and last error — and where its log is.
//! With no instance running it says so and exits 3.

use std::process::ExitCode;

use ferry_core::engine::TunnelSnapshot;
use ferry_core::instance::Flavor;
use ferry_core::instance::api::{Request, Response, Status};

use super::remote;

/// Show the running instance's tunnels.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON (the control socket's `status` answer).
    #[arg(long)]
    pub json: bool,

    /// Ask `ferry --demo`'s instance instead of the real one.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    remote::runtime()?.block_on(async {
        let flavor = if args.demo {
            Flavor::Demo
        } else {
            Flavor::Real
        };
        let Some(mut client) = remote::connect(flavor).await? else {
            return Ok(remote::no_instance());
        };
        let status = match remote::ask(&mut client, Request::Status).await? {
            Ok(Response::Status(status)) => status,
            Ok(other) => anyhow::bail!("unexpected answer to status: {other:?}"),
            Err(code) => return Ok(code),
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print_table(&status);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_table(status: &Status) {
    let i = &status.instance;
    let log = i
        .log_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "none".into());
    println!(
        "Ferry {} instance, pid {}{}{}; log: {log}",
        i.ferry_version,
        i.pid,
        if i.demo { ", demo cluster" } else { "" },
        if i.has_window {
            ", window"
        } else {
            ", headless"
        },
    );
    if status.tunnels.is_empty() {
        println!(
            "no tunnels: start some with `ferry up NAME` or `ferry forward TARGET PORT --detach`"
        );
        return;
    }
    let header = [
        "TUNNEL",
        "ORIGIN",
        "TARGET",
        "LOCAL",
        "STATE",
        "POD",
        "CONN",
        "VIA",
        "BYTES",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 10]> = status.tunnels.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 10]| {
        let mut out = String::new();
        for (n, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if n == 9 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for r in &rows {
        line([
            &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8], &r[9],
        ]);
    }
}

fn row(t: &TunnelSnapshot) -> [String; 10] {
    let local: Vec<String> = t
        .ports
        .iter()
        .flat_map(|p| p.local.iter().map(ToString::to_string))
        .collect();
    let name = t
        .spec
        .alias
        .as_ref()
        .map(|a| format!("{} {a}", t.id))
        .unwrap_or_else(|| t.id.to_string());
    [
        name,
        t.origin.to_string(),
        format!(
            "{}/{} {}",
            t.spec.context,
            t.spec.namespace,
            t.spec.target.to_kubectl()
        ),
        if local.is_empty() {
            "-".into()
        } else {
            local.join(",")
        },
        t.state.to_string(),
        t.pods.first().cloned().unwrap_or_else(|| "-".into()),
        format!("{}/{}", t.active_connections, t.total_connections),
        t.transport.map_or("-", |p| p.short()).to_string(),
        format!("{}↑ {}↓", bytes(t.bytes_sent), bytes(t.bytes_received)),
        t.last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
    ]
}

fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}
