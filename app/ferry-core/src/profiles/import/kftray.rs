//! Importing a kftray JSON export: a list of configs with `alias`, `context`, `namespace`,
//! `service`, `target`, `workload_type` (`service`, `pod`, `proxy`, `expose`), `local_port`,
//! `remote_port`, `local_address`, `remote_address`, `protocol` (`tcp`/`udp`), `kubeconfig`,
//! `domain_enabled` and a few HTTP-logging and exposure options.
//!
//! Service and pod forwards over TCP map onto Ferry tunnels; UDP, proxy and expose workloads
//! have no Ferry equivalent and are listed as skipped, as are options Ferry ignores.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{ImportDefaults, ImportError, ImportReport, Skipped};
use crate::profiles::model::{Profile, SavedTunnel};
use crate::spec::{LocalPort, PortSpec, RemotePort, Spread, Target, TunnelSpec};

/// kftray's placeholder values, which mean "not set".
const PLACEHOLDERS: &[&str] = &[
    "",
    "default-service",
    "default-namespace",
    "default-target",
    "default-remote-address",
    "default-alias",
    "default-workload",
    "current-context",
    "protocol",
];

/// Reads a kftray export into one profile named `profile_name`.
pub fn import_kftray(
    json: &str,
    profile_name: &str,
    defaults: &ImportDefaults,
) -> Result<ImportReport, ImportError> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| ImportError::KftrayJson(e.to_string()))?;
    let entries = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => {
            return Err(ImportError::KftrayJson(
                "expected a JSON list of configs".into(),
            ));
        }
    };
    let mut report = ImportReport::default();
    let mut tunnels = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            report.skipped.push(Skipped {
                entry: format!("entry {}", i + 1),
                field: None,
                reason: "not a JSON object".into(),
            });
            continue;
        };
        let label = match text(entry, "alias") {
            Some(alias) => format!("entry {} (\"{alias}\")", i + 1),
            None => format!("entry {}", i + 1),
        };
        match tunnel(entry, defaults, &label, &mut report.skipped) {
            Ok(spec) => tunnels.push(SavedTunnel::from(spec)),
            Err(reason) => report.skipped.push(Skipped {
                entry: label,
                field: None,
                reason,
            }),
        }
    }
    if tunnels.is_empty() {
        return Err(ImportError::Empty(format!(
            "none of the {} kftray configs can be used by Ferry{}",
            entries.len(),
            report
                .skipped
                .first()
                .map(|s| format!(" (e.g. {s})"))
                .unwrap_or_default()
        )));
    }
    let mut profile = Profile::new(profile_name, []);
    profile.tunnels = tunnels;
    profile.note = Some("Imported from kftray".into());
    report.profiles.push(profile);
    Ok(report)
}

/// One kftray config as a tunnel spec, noting ignored fields; `Err(reason)` skips the entry.
fn tunnel(
    entry: &Map<String, Value>,
    defaults: &ImportDefaults,
    label: &str,
    skipped: &mut Vec<Skipped>,
) -> Result<TunnelSpec, String> {
    let mut ignore = |field: &str, reason: &str| {
        skipped.push(Skipped {
            entry: label.to_string(),
            field: Some(field.to_string()),
            reason: reason.to_string(),
        })
    };
    let protocol = text(entry, "protocol").unwrap_or_else(|| "tcp".into());
    if !protocol.eq_ignore_ascii_case("tcp") {
        return Err(format!(
            "protocol {protocol} is not supported: Kubernetes port-forward carries TCP only"
        ));
    }
    let target = target(entry)?;
    let remote = port(entry, "remote_port")?.ok_or("it has no remote_port")?;
    // An absent local_port lets Ferry choose one; a value that is not a port is an error in the
    // file, not something to replace silently.
    let local = match port(entry, "local_port")? {
        None => LocalPort::Any,
        Some(p) => LocalPort::Fixed(p),
    };
    let bind = match text(entry, "local_address") {
        None => Vec::new(),
        Some(a) if a == "127.0.0.1" || a == "localhost" => Vec::new(),
        Some(a) => match a.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                ignore("local_address", "not an IP address; using loopback");
                Vec::new()
            }
        },
    };
    if flag(entry, "domain_enabled") {
        ignore("domain_enabled", "Ferry does not edit the hosts file");
    }
    if flag(entry, "auto_loopback_address") {
        ignore(
            "auto_loopback_address",
            "Ferry does not allocate loopback addresses",
        );
    }
    if text(entry, "kubeconfig").is_some_and(|k| k != "default") {
        ignore(
            "kubeconfig",
            "Ferry uses your kubeconfig and clusters added in Ferry",
        );
    }
    if flag(entry, "http_logs_enabled") {
        ignore("http_logs_enabled", "Ferry does not log HTTP traffic");
    }
    let spec = TunnelSpec {
        context: text(entry, "context").unwrap_or_else(|| defaults.context.clone()),
        namespace: text(entry, "namespace").unwrap_or_else(|| defaults.namespace.clone()),
        target,
        ports: vec![PortSpec {
            local,
            remote: RemotePort::Number(remote),
        }],
        bind,
        spread: Spread::default(),
        alias: text(entry, "alias"),
        note: None,
    };
    // A name the API server would refuse is refused here too; it would also not survive the
    // profile file (`svc/a!b` reads back as a label selector).
    crate::validate::tunnel(&spec).map_err(|e| e.to_string())?;
    Ok(spec)
}

fn target(entry: &Map<String, Value>) -> Result<Target, String> {
    let workload = text(entry, "workload_type").unwrap_or_else(|| "service".into());
    match workload.as_str() {
        "service" => text(entry, "service")
            .map(Target::Service)
            .ok_or_else(|| "a service config without a service name".into()),
        // kftray's pod target is a label selector; a bare name is taken as a pod.
        "pod" => text(entry, "target")
            .map(|t| {
                if t.contains('=') {
                    Target::Selector(t)
                } else {
                    Target::Pod(t)
                }
            })
            .ok_or_else(|| "a pod config without a target".into()),
        "proxy" => Err(
            "proxy workloads reach remote_address through a relay pod kftray deploys; Ferry does not deploy pods into clusters"
                .into(),
        ),
        "expose" => Err("expose workloads publish a local port into the cluster; Ferry only forwards out of it".into()),
        other => Err(format!("unknown workload_type \"{other}\"")),
    }
}

/// A string field, with kftray's placeholders treated as absent.
fn text(entry: &Map<String, Value>, key: &str) -> Option<String> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !PLACEHOLDERS.contains(s))
        .map(str::to_string)
}

/// A port field: `None` when absent (or null, or an empty string); an error naming the value
/// when it is not a whole number from 1 to 65535.
fn port(entry: &Map<String, Value>, key: &str) -> Result<Option<u16>, String> {
    let value = match entry.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(v) => v,
    };
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match number
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
    {
        Some(p) => Ok(Some(p)),
        None => Err(format!(
            "{key} {} is not a port number (1-65535)",
            shown(value)
        )),
    }
}

/// A JSON value as it appears in the file, cut short if long.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 24 {
        format!("{}…", text.chars().take(24).collect::<String>())
    } else {
        text
    }
}

/// kftray writes some booleans as strings ("true").
fn flag(entry: &Map<String, Value>, key: &str) -> bool {
    match entry.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}
