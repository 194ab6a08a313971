//! Upgrades older profile files, as TOML tables, to the current shape before they are read.
//!
//! Version 0 (no `version` key; the prototype's format) looked like this:
//!
//! ```toml
//! [profiles.staging]
//! autostart = true
//! description = "morning set"      # became `note`
//!
//! [[profiles.staging.forwards]]     # became [[profile.tunnel]]
//! name = "api"                      # became `alias`
//! context = "kind-staging"
//! namespace = "backend"
//! resource = "svc/api"              # became `target`
//! local_port = 8080                 # local_port + remote_port became ports = ["8080:80"]
//! remote_port = 80
//! address = "127.0.0.1"             # became bind = ["127.0.0.1"]
//! ```
//!
//! Version 1 is the current format (see `model.rs`). Migrations move what they recognise and
//! keep everything else, so the typed reader can point at whatever is still wrong.

use toml::{Table, Value};

use super::model::CURRENT_VERSION;

/// Brings `table`, written in format `from`, up to [`CURRENT_VERSION`].
pub fn migrate(mut table: Table, from: u32) -> Table {
    let mut version = from;
    while version < CURRENT_VERSION {
        table = match version {
            0 => v0_to_v1(table),
            _ => table,
        };
        version += 1;
    }
    table.insert("version".into(), Value::Integer(i64::from(CURRENT_VERSION)));
    table
}

/// `[profiles.NAME]` tables become `[[profile]]` entries with a `name`.
fn v0_to_v1(mut table: Table) -> Table {
    let Some(Value::Table(old)) = table.remove("profiles") else {
        return table;
    };
    let profiles = old
        .into_iter()
        .map(|(name, body)| match body {
            Value::Table(body) => Value::Table(v0_profile(name, body)),
            // Not a table: keep it under its name so the reader reports it instead of losing it.
            other => Value::Table(Table::from_iter([
                ("name".to_string(), Value::String(name)),
                ("v0_value".to_string(), other),
            ])),
        })
        .collect();
    table.insert("profile".into(), Value::Array(profiles));
    table
}

fn v0_profile(name: String, mut body: Table) -> Table {
    let mut profile = Table::new();
    profile.insert("name".into(), Value::String(name));
    rename(&mut body, "description", "note");
    if let Some(Value::Array(forwards)) = body.remove("forwards") {
        let tunnels = forwards
            .into_iter()
            .map(|f| match f {
                Value::Table(f) => Value::Table(v0_forward(f)),
                other => other,
            })
            .collect();
        profile.insert("tunnel".into(), Value::Array(tunnels));
    }
    profile.extend(body);
    profile
}

fn v0_forward(mut f: Table) -> Table {
    rename(&mut f, "name", "alias");
    rename(&mut f, "resource", "target");
    if let Some(Value::String(address)) = f.remove("address") {
        f.insert("bind".into(), Value::Array(vec![Value::String(address)]));
    }
    let remote = f.get("remote_port").and_then(Value::as_integer);
    let local = f.get("local_port").and_then(Value::as_integer);
    if let Some(remote) = remote {
        let spec = match local {
            Some(local) => format!("{local}:{remote}"),
            None => remote.to_string(),
        };
        f.remove("remote_port");
        f.remove("local_port");
        f.insert("ports".into(), Value::Array(vec![Value::String(spec)]));
    }
    f
}

fn rename(t: &mut Table, from: &str, to: &str) {
    if let Some(v) = t.remove(from) {
        t.insert(to.into(), v);
    }
}
