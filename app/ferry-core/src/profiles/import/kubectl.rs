//! Importing pasted `kubectl port-forward …` command lines, one tunnel per line.
//!
//! Understands what kubectl does: `-n/--namespace`, `--context`, `--address` (before or after
//! `port-forward`, with `=` or a separate value), targets `pod/NAME`, `NAME`, `svc/NAME`,
//! `deploy/NAME`, and any number of `[LOCAL:]REMOTE` ports. Shell prompts (`$ `), line
//! continuations (`\`), `&` and redirections are tolerated.

use std::net::IpAddr;

use super::{ImportDefaults, ImportError, ImportReport, Skipped};
use crate::profiles::model::{Profile, SavedTunnel};
use crate::spec::{PortSpec, Spread, Target, TunnelSpec};

/// kubectl flags that take a value and that Ferry ignores (it has its own clusters and timeouts).
const IGNORED_WITH_VALUE: &[&str] = &[
    "--kubeconfig",
    "--cluster",
    "--user",
    "--pod-running-timeout",
    "--request-timeout",
    "-s",
    "--server",
    "--token",
    "--as",
    "--as-group",
    "--certificate-authority",
    "--client-certificate",
    "--client-key",
    "--tls-server-name",
    "-v",
    "--v",
    "--cache-dir",
];

/// Reads command lines into one profile named `profile_name`.
pub fn import_kubectl(
    text: &str,
    profile_name: &str,
    defaults: &ImportDefaults,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let mut tunnels = Vec::new();
    for (line_no, line) in logical_lines(text) {
        let entry = format!("line {line_no}");
        match parse_line(&line, defaults) {
            Ok((spec, ignored)) => {
                report
                    .skipped
                    .extend(ignored.into_iter().map(|(field, reason)| Skipped {
                        entry: entry.clone(),
                        field: Some(field),
                        reason,
                    }));
                tunnels.push(SavedTunnel::from(spec));
            }
            Err(reason) => report.skipped.push(Skipped {
                entry,
                field: None,
                reason,
            }),
        }
    }
    if tunnels.is_empty() {
        return Err(ImportError::Empty(match report.skipped.first() {
            Some(s) => format!("no usable `kubectl port-forward` line ({s})"),
            None => "no `kubectl port-forward` lines were given".into(),
        }));
    }
    let mut profile = Profile::new(profile_name, []);
    profile.tunnels = tunnels;
    report.profiles.push(profile);
    Ok(report)
}

/// Non-empty, non-comment lines with `\` continuations joined, numbered from their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        let trimmed = raw.trim_end();
        if let Some(body) = trimmed.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            current = Some((start, acc));
            continue;
        }
        acc.push_str(trimmed);
        let line = acc.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push((start, line.to_string()));
        }
    }
    if let Some((start, acc)) = current
        && !acc.trim().is_empty()
    {
        out.push((start, acc.trim().to_string()));
    }
    out
}

type Ignored = Vec<(String, String)>;

/// One command line as a tunnel spec plus the flags that were ignored.
fn parse_line(line: &str, defaults: &ImportDefaults) -> Result<(TunnelSpec, Ignored), String> {
    let line = line.trim_start_matches(['$', '>', ' ']);
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let words: Vec<String> = words
        .into_iter()
        .take_while(|w| {
            !matches!(w.as_str(), "&" | "&&" | "|" | "||" | ";")
                && !w.starts_with('>')
                && !w.starts_with("2>")
        })
        .collect();
    let pf = words
        .iter()
        .position(|w| w == "port-forward")
        .ok_or("not a `kubectl port-forward` command")?;
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    // Words before `port-forward` that are not flags (the command, `sudo`, `VAR=x`) are not
    // arguments; flags are read on both sides, as kubectl does.
    let mut rest = words
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pf)
        .map(|(i, w)| (i > pf, w.as_str()));
    while let Some((after, word)) = rest.next() {
        if word == "--" {
            positional.extend(rest.by_ref().map(|(_, w)| w.to_string()));
            break;
        }
        if word.starts_with('-') && word.len() > 1 {
            flags.take(word, &mut rest.by_ref().map(|(_, w)| w))?;
        } else if after {
            positional.push(word.to_string());
        }
    }
    let (target, ports) = positional
        .split_first()
        .ok_or("no target (pod/NAME, svc/NAME or deploy/NAME)")?;
    let target: Target = target.parse().map_err(|e| format!("{e}"))?;
    if ports.is_empty() {
        return Err("no ports given".into());
    }
    let ports = ports
        .iter()
        .map(|p| p.parse::<PortSpec>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let bind = flags.bind()?;
    let spec = TunnelSpec {
        context: flags.context.unwrap_or_else(|| defaults.context.clone()),
        namespace: flags
            .namespace
            .unwrap_or_else(|| defaults.namespace.clone()),
        target,
        ports,
        bind,
        spread: Spread::default(),
        alias: None,
        note: None,
    };
    Ok((spec, flags.ignored))
}

#[derive(Default)]
struct Flags {
    namespace: Option<String>,
    context: Option<String>,
    address: Option<String>,
    ignored: Ignored,
}

impl Flags {
    /// Consumes one flag (and its value, when separate).
    fn take<'a>(
        &mut self,
        word: &'a str,
        rest: &mut impl Iterator<Item = &'a str>,
    ) -> Result<(), String> {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None if word.starts_with("-n") && word.len() > 2 && !word.starts_with("--") => {
                ("-n", Some(word[2..].to_string()))
            }
            None => (word, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => rest
                    .next()
                    .map(str::to_string)
                    .ok_or(format!("{name} needs a value")),
            }
        };
        match name {
            "-n" | "--namespace" => self.namespace = Some(value(name)?),
            "--context" => self.context = Some(value(name)?),
            "--address" => self.address = Some(value(name)?),
            n if IGNORED_WITH_VALUE.contains(&n) => {
                let _ = value(n)?;
                self.ignored.push((
                    n.to_string(),
                    "Ferry uses its own cluster settings and timeouts".into(),
                ));
            }
            n => self
                .ignored
                .push((n.to_string(), "not a flag Ferry knows".into())),
        }
        Ok(())
    }

    /// `--address localhost` (kubectl's default) is Ferry's default too (loopback).
    fn bind(&self) -> Result<Vec<IpAddr>, String> {
        let Some(list) = &self.address else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if a == "localhost" {
                continue;
            }
            out.push(
                a.parse()
                    .map_err(|_| format!("--address {a} is not an IP address or localhost"))?,
            );
        }
        Ok(out)
    }
}
