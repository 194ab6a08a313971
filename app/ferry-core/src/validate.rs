//! Offline checks of what a person typed into a tunnel, so a typo is caught when a profile is
//! saved rather than when its tunnel fails to start: namespace and object names (the rules the
//! API server applies), label-selector syntax (the grammar the tunnel engine runs),
//! and two tunnels of one profile wanting the same local port.
//!
//! Whether a context, namespace or object exists needs the cluster, and is not checked here.

use std::net::IpAddr;

use crate::resolve::{ResolveError, parse_selector};
use crate::spec::{LocalPort, RemotePort, Target, TunnelSpec};

/// Why a tunnel spec would be refused by the API server, or could not run beside another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error(
        "namespace \"{0}\" is not a valid name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    Namespace(String),
    #[error("{kind} name \"{name}\" is not a valid name: {rule}")]
    Name {
        kind: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error(
        "label selector \"{selector}\" is not valid: {reason} (examples: app=web, tier!=cache, env in (prod,staging), !legacy)"
    )]
    Selector { selector: String, reason: String },
    #[error(
        "local port {port} is wanted twice in profile \"{profile}\": by {first} and by {second}; give one of them another local port (or :REMOTE for any free port)"
    )]
    PortClash {
        profile: String,
        port: u16,
        first: String,
        second: String,
    },
}

/// Checks the namespace, the target's name or selector. Does not contact the cluster.
pub fn tunnel(spec: &TunnelSpec) -> Result<(), InvalidSpec> {
    namespace(&spec.namespace)?;
    target(&spec.target)
}

/// A namespace name must be a DNS-1123 label, as the API server requires.
pub fn namespace(name: &str) -> Result<(), InvalidSpec> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(InvalidSpec::Namespace(name.to_string()))
    }
}

const SUBDOMAIN_RULE: &str = "use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";
const SERVICE_RULE: &str = "use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";

/// Pod and deployment names are DNS-1123 subdomains, service names DNS-1035 labels; a selector
/// must parse.
pub fn target(target: &Target) -> Result<(), InvalidSpec> {
    let bad = |kind, name: &str, rule| {
        Err(InvalidSpec::Name {
            kind,
            name: name.to_string(),
            rule,
        })
    };
    match target {
        Target::Pod(n) if !is_dns_subdomain(n) => bad("pod", n, SUBDOMAIN_RULE),
        Target::Deployment(n) if !is_dns_subdomain(n) => bad("deployment", n, SUBDOMAIN_RULE),
        Target::Service(n) if !is_dns1035_label(n) => bad("service", n, SERVICE_RULE),
        Target::Selector(s) => selector(s),
        _ => Ok(()),
    }
}

/// The first pair of tunnels (in order) that want the same local port number on overlapping
/// addresses. Ports chosen at bind time (`:REMOTE`) never clash; `REMOTE` alone means the same
/// local number.
pub fn port_clash<'a>(
    profile: &str,
    tunnels: impl IntoIterator<Item = &'a TunnelSpec>,
) -> Result<(), InvalidSpec> {
    let mut taken: Vec<(u16, Vec<IpAddr>, String)> = Vec::new();
    for spec in tunnels {
        let addresses = if spec.bind.is_empty() {
            crate::tunnel::listener::default_addresses()
        } else {
            spec.bind.clone()
        };
        for port in &spec.ports {
            let number = match (port.local, &port.remote) {
                (LocalPort::Fixed(n), _) => n,
                (LocalPort::SameAsRemote, RemotePort::Number(n)) => *n,
                _ => continue,
            };
            if let Some((_, _, first)) = taken
                .iter()
                .find(|(n, a, _)| *n == number && overlap(a, &addresses))
            {
                return Err(InvalidSpec::PortClash {
                    profile: profile.to_string(),
                    port: number,
                    first: first.clone(),
                    second: label(spec),
                });
            }
            taken.push((number, addresses.clone(), label(spec)));
        }
    }
    Ok(())
}

/// `api: svc/api 8080:80`, short enough for a sentence.
fn label(spec: &TunnelSpec) -> String {
    let ports: Vec<String> = spec.ports.iter().map(ToString::to_string).collect();
    let alias = spec
        .alias
        .as_deref()
        .map(|a| format!("{a}: "))
        .unwrap_or_default();
    format!("{alias}{} {}", spec.target, ports.join(" "))
}

fn overlap(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            x == y || (x.is_ipv4() == y.is_ipv4() && (x.is_unspecified() || y.is_unspecified()))
        })
    })
}

/// RFC 1123 label: what namespaces (and most names) must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1035 label: an RFC 1123 label that starts with a letter (service names).
fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters (pod, deployment names).
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label selector must parse as the tunnel engine parses it ([`parse_selector`]: kubectl's
/// equality and set-based requirements, keys and values checked as Kubernetes checks them), so
/// a selector saved in a profile is one its tunnel can run.
pub fn selector(text: &str) -> Result<(), InvalidSpec> {
    match parse_selector(text) {
        Ok(_) => Ok(()),
        Err(ResolveError::BadSelector { reason, .. }) => Err(InvalidSpec::Selector {
            selector: text.to_string(),
            reason,
        }),
        Err(other) => Err(InvalidSpec::Selector {
            selector: text.to_string(),
            reason: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_kubectl_accepts_are_accepted() {
        for good in [
            "app=web",
            "app==web",
            "app!=web",
            "app=",
            "app!=,tier=x",
            "app",
            "!app",
            "app,!legacy",
            "env in (prod,staging)",
            "env in ( prod , staging )",
            "env notin (prod)",
            "app.kubernetes.io/name=web",
            "  app = web , tier != cache ",
        ] {
            assert_eq!(selector(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn broken_selectors_are_refused_with_a_reason() {
        for bad in [
            "",
            "=web",
            "app=web,",
            ",app",
            "app in (web",
            "app in web",
            "app in (a b)",
            "tier notin ()x",
            "app=we b",
            "-app=web",
            "app=-web",
            "bad_prefix!/x=y",
            "/x=y",
            "replicas>one",
            "replicas>1",
            "env in ()",
            "!app=web",
            "app=(web)",
            "in=x",
            &format!("app={}", "v".repeat(64)),
        ] {
            let err = selector(bad).expect_err(bad);
            assert!(err.to_string().contains("is not valid"), "{bad}: {err}");
        }
    }

    #[test]
    fn namespaces_must_be_dns_labels() {
        for good in ["default", "kube-system", "a", "0abc", &"n".repeat(63)] {
            assert_eq!(namespace(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Backend",
            "back_end",
            "-x",
            "x-",
            "a.b",
            &"n".repeat(64),
        ] {
            assert!(namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_names_follow_their_kind() {
        assert!(target(&Target::Pod("web-1.a".into())).is_ok());
        assert!(target(&Target::Pod("Web".into())).is_err());
        assert!(target(&Target::Service("1api".into())).is_err());
        assert!(target(&Target::Service("api".into())).is_ok());
        assert!(target(&Target::Deployment("web.v2".into())).is_ok());
    }

    fn spec(target: &str, ports: &[&str], bind: &[&str]) -> TunnelSpec {
        TunnelSpec {
            context: "c".into(),
            namespace: "n".into(),
            target: target.parse().unwrap(),
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            bind: bind.iter().map(|b| b.parse().unwrap()).collect(),
            spread: Default::default(),
            alias: None,
            note: None,
        }
    }

    #[test]
    fn two_tunnels_wanting_one_local_port_are_named() {
        let a = spec("svc/api", &["8080:80"], &[]);
        let b = spec("svc/web", &["8080"], &[]);
        let err = port_clash("p", [&a, &b]).unwrap_err().to_string();
        assert!(
            err.contains("8080") && err.contains("svc/api 8080:80") && err.contains("svc/web 8080"),
            "{err}"
        );
        // Any-port specs, different addresses and different numbers do not clash.
        let any = spec("svc/x", &[":8080", "0:8080"], &[]);
        let other_ip = spec("svc/y", &["8080:80"], &["10.0.0.1"]);
        let other_port = spec("svc/z", &["8081:80"], &[]);
        assert_eq!(port_clash("p", [&a, &any, &other_ip, &other_port]), Ok(()));
        // 0.0.0.0 overlaps every IPv4 address.
        let all = spec("svc/w", &["8080:80"], &["0.0.0.0"]);
        assert!(port_clash("p", [&a, &all]).is_err());
        // Within one tunnel too.
        let twice = spec("svc/db", &["5432", "5432:5433"], &[]);
        assert!(port_clash("p", [&twice]).is_err());
    }
}
