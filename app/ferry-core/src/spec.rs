//! What a tunnel is asked to do, as plain serde data: the profile file stores it, the CLI parses
//! it from kubectl-style arguments, the GUI builds it from a dialog, and the engine runs it.
//!
//! Targets and port specs serialise as the text a person would type (`svc/kubia`, `8080:http`),
//! so profile files stay readable and hand-editable.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a tunnel forwards to, inside one context and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// One named pod (`pod/NAME`, or a bare `NAME` as kubectl accepts).
    Pod(String),
    /// A service: pods chosen by its selector, ports translated through its `targetPort`s.
    Service(String),
    /// A deployment: pods chosen by its selector.
    Deployment(String),
    /// Any pods matching a label selector (`app=web,tier!=cache`).
    Selector(String),
}

/// Why a target or port spec could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty target: give pod/NAME, svc/NAME, deploy/NAME or a label selector like app=web")]
    EmptyTarget,
    #[error(
        "unknown resource type \"{0}\" in target: use pod/NAME, svc/NAME, deploy/NAME or a label selector like app=web"
    )]
    UnknownKind(String),
    #[error("target \"{0}\" has no name after the slash")]
    MissingName(String),
    #[error("invalid port spec \"{spec}\": {reason}")]
    BadPort { spec: String, reason: String },
}

impl Target {
    /// The kubectl-style short form, e.g. `svc/kubia`.
    pub fn to_kubectl(&self) -> String {
        match self {
            Target::Pod(n) => format!("pod/{n}"),
            Target::Service(n) => format!("svc/{n}"),
            Target::Deployment(n) => format!("deploy/{n}"),
            Target::Selector(s) => s.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_kubectl())
    }
}

impl FromStr for Target {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::EmptyTarget);
        }
        // Object names never contain these, label selectors often do (`app=web`, `!legacy`,
        // `env in (a,b)`, `tier!=cache,app`).
        if text.contains(['=', '!', '(', ',', ' ']) {
            return Ok(Target::Selector(text.to_string()));
        }
        let Some((kind, name)) = text.split_once('/') else {
            return Ok(Target::Pod(text.to_string()));
        };
        if name.is_empty() {
            return Err(SpecError::MissingName(text.to_string()));
        }
        let name = name.to_string();
        match kind.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => Ok(Target::Pod(name)),
            "svc" | "service" | "services" => Ok(Target::Service(name)),
            "deploy" | "deployment" | "deployments" | "deployment.apps" => {
                Ok(Target::Deployment(name))
            }
            _ => Err(SpecError::UnknownKind(kind.to_string())),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Target> for String {
    fn from(t: Target) -> Self {
        t.to_kubectl()
    }
}

/// The remote side of a port spec: a number, or a port name to be resolved against the
/// service or the pod's containers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemotePort {
    Number(u16),
    Name(String),
}

impl fmt::Display for RemotePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemotePort::Number(n) => write!(f, "{n}"),
            RemotePort::Name(s) => f.write_str(s),
        }
    }
}

/// The local side of a port spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalPort {
    /// `REMOTE` alone: the same number as the remote port (the remote must then be numeric, or
    /// resolve to a number, as kubectl does).
    SameAsRemote,
    /// `:REMOTE` or `0:REMOTE`: any free port, chosen when the listener binds.
    Any,
    /// `LOCAL:REMOTE`.
    Fixed(u16),
}

/// One `LOCAL:REMOTE` pair, as `kubectl port-forward` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortSpec {
    pub local: LocalPort,
    pub remote: RemotePort,
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.local {
            LocalPort::SameAsRemote => write!(f, "{}", self.remote),
            LocalPort::Any => write!(f, ":{}", self.remote),
            LocalPort::Fixed(p) => write!(f, "{p}:{}", self.remote),
        }
    }
}

impl FromStr for PortSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| SpecError::BadPort {
            spec: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        let (local, remote) = match trimmed.split_once(':') {
            None => (LocalPort::SameAsRemote, trimmed),
            Some((l, r)) => {
                let local = if l.is_empty() {
                    LocalPort::Any
                } else {
                    match l.parse::<u32>() {
                        Ok(0) => LocalPort::Any,
                        Ok(n) if n <= u16::MAX as u32 => LocalPort::Fixed(n as u16),
                        Ok(_) => return Err(bad("the local port must be between 0 and 65535")),
                        Err(_) => return Err(bad("the local port must be a number")),
                    }
                };
                (local, r)
            }
        };
        if remote.is_empty() {
            return Err(bad("the remote port is missing"));
        }
        if remote.contains(':') {
            return Err(bad("use LOCAL:REMOTE, :REMOTE or REMOTE"));
        }
        let remote = if remote.bytes().all(|b| b.is_ascii_digit()) {
            match remote.parse::<u32>() {
                Ok(n) if (1..=u16::MAX as u32).contains(&n) => RemotePort::Number(n as u16),
                _ => return Err(bad("the remote port must be between 1 and 65535")),
            }
        } else if is_port_name(remote) {
            RemotePort::Name(remote.to_string())
        } else {
            return Err(bad(
                "the remote port must be a number or a port name (lowercase letters, digits and '-', at most 15 characters)",
            ));
        };
        Ok(PortSpec { local, remote })
    }
}

/// An IANA_SVC_NAME as Kubernetes validates port names.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

impl TryFrom<String> for PortSpec {
    type Error = SpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PortSpec> for String {
    fn from(p: PortSpec) -> Self {
        p.to_string()
    }
}

/// How new connections are spread over the target's Ready pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// Every connection goes to the best pod (kubectl's choice), switching when it goes away.
    #[default]
    Single,
    /// Round-robin over all Ready pods.
    RoundRobin,
    /// Round-robin, but the same local client address keeps the same pod (like a service's
    /// `sessionAffinity: ClientIP`).
    ClientAffinity,
    /// Round-robin, with client affinity if and only if the service asks for it.
    FollowService,
}

/// Everything needed to run one tunnel. Plain data: saved in profiles, sent over the control
/// socket, shown in the UI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelSpec {
    /// The kubeconfig context (or in-app cluster) name.
    pub context: String,
    pub namespace: String,
    pub target: Target,
    pub ports: Vec<PortSpec>,
    /// Local addresses to listen on. Empty means loopback (127.0.0.1, and ::1 when available).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub spread: Spread,
    /// A short name a person gave this tunnel ("api", "postgres").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A local address as a person types it after `--address`: an IP address, or `localhost`
/// for both loopbacks (127.0.0.1 and ::1), as kubectl accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    Localhost,
    Ip(IpAddr),
}

/// An `--address` value that is neither an IP address nor `localhost`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a local address: give an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost"
)]
pub struct BadAddress(pub String);

impl FromStr for ListenAddress {
    type Err = BadAddress;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("localhost") {
            return Ok(ListenAddress::Localhost);
        }
        // `[::1]` as URLs write it.
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse()
            .map(ListenAddress::Ip)
            .map_err(|_| BadAddress(text.to_string()))
    }
}

impl ListenAddress {
    /// The addresses for [`TunnelSpec::bind`]: only `localhost` (or nothing) is the default
    /// loopback pair, stored as an empty list; with other addresses, `localhost` adds both
    /// loopbacks, each of which must then be free.
    pub fn to_bind(list: &[ListenAddress]) -> Vec<IpAddr> {
        if list.iter().all(|a| *a == ListenAddress::Localhost) {
            return Vec::new();
        }
        let mut out: Vec<IpAddr> = Vec::new();
        for a in list {
            let ips = match a {
                ListenAddress::Localhost => vec![
                    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                ],
                ListenAddress::Ip(ip) => vec![*ip],
            };
            for ip in ips {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
        out
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_kubectl() {
        assert_eq!("svc/kubia".parse(), Ok(Target::Service("kubia".into())));
        assert_eq!("service/kubia".parse(), Ok(Target::Service("kubia".into())));
        assert_eq!(
            "deploy/kubia".parse(),
            Ok(Target::Deployment("kubia".into()))
        );
        assert_eq!("pod/kubia-x".parse(), Ok(Target::Pod("kubia-x".into())));
        assert_eq!("kubia-x".parse(), Ok(Target::Pod("kubia-x".into())));
        assert_eq!(
            "app=kubia".parse(),
            Ok(Target::Selector("app=kubia".into()))
        );
        assert_eq!(
            "env in (a,b)".parse(),
            Ok(Target::Selector("env in (a,b)".into()))
        );
        assert_eq!("!legacy".parse(), Ok(Target::Selector("!legacy".into())));
        assert_eq!(
            "rs/x".parse::<Target>(),
            Err(SpecError::UnknownKind("rs".into()))
        );
        assert_eq!(
            "svc/".parse::<Target>(),
            Err(SpecError::MissingName("svc/".into()))
        );
        assert_eq!("".parse::<Target>(), Err(SpecError::EmptyTarget));
    }

    #[test]
    fn port_specs_parse_like_kubectl() {
        let p: PortSpec = "8888:8080".parse().unwrap();
        assert_eq!(p.local, LocalPort::Fixed(8888));
        assert_eq!(p.remote, RemotePort::Number(8080));
        let p: PortSpec = ":http".parse().unwrap();
        assert_eq!(p.local, LocalPort::Any);
        assert_eq!(p.remote, RemotePort::Name("http".into()));
        let p: PortSpec = "0:80".parse().unwrap();
        assert_eq!(p.local, LocalPort::Any);
        let p: PortSpec = "5432".parse().unwrap();
        assert_eq!(p.local, LocalPort::SameAsRemote);
        for bad in [
            "", ":", "70000:80", "80:0", "80:70000", "a:80", "1:2:3", "80:Http", "80:-x",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn localhost_means_both_loopbacks() {
        let parse = |t: &str| t.parse::<ListenAddress>();
        assert_eq!(parse("localhost"), Ok(ListenAddress::Localhost));
        assert_eq!(parse("LocalHost"), Ok(ListenAddress::Localhost));
        assert_eq!(
            parse("[::1]"),
            Ok(ListenAddress::Ip("::1".parse().unwrap()))
        );
        assert!(
            parse("local")
                .unwrap_err()
                .to_string()
                .contains("or localhost")
        );
        assert_eq!(
            ListenAddress::to_bind(&[ListenAddress::Localhost]),
            Vec::<IpAddr>::new()
        );
        let both = ListenAddress::to_bind(&[
            ListenAddress::Localhost,
            ListenAddress::Ip("127.0.0.1".parse().unwrap()),
            ListenAddress::Ip("192.168.1.5".parse().unwrap()),
        ]);
        let want: Vec<IpAddr> = ["127.0.0.1", "::1", "192.168.1.5"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(both, want);
    }

    #[test]
    fn specs_round_trip_as_text() {
        for text in ["8888:8080", ":http", "5432", "1:https"] {
            let p: PortSpec = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        let spec = TunnelSpec {
            context: "demo".into(),
            namespace: "default".into(),
            target: Target::Service("kubia".into()),
            ports: vec!["8080:80".parse().unwrap()],
            bind: vec![],
            spread: Spread::FollowService,
            alias: Some("web".into()),
            note: None,
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains("\"svc/kubia\"") && json.contains("\"8080:80\""),
            "{json}"
        );
        let back: TunnelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }
}
