//! The kubesim-specific annotations a world uses to say how a simulated pod behaves, since there
//! is no real container behind it. Both are ordinary annotations, so the same manifests also
//! apply to a real cluster (which ignores them).
//!
//! - `kubesim.ferry.dev/behaviour` on a pod (or a pod template): `stuck-pending`, `crashloop`,
//!   `never-ready`; absent means a healthy pod.
//! - `kubesim.ferry.dev/port.<name-or-number>` on a pod (or a pod template): how the container
//!   port with that name or number answers connections: `http-hello`, `echo`, `discard`,
//!   `source`, `closed`.

use serde_json::Value;

use super::objects::{array_at, str_at};

/// The annotation that makes a pod stay Pending, crash-loop or never become Ready.
pub const BEHAVIOUR_ANNOTATION: &str = "kubesim.ferry.dev/behaviour";

/// Prefix of the per-port annotations: `kubesim.ferry.dev/port.http: echo` or
/// `kubesim.ferry.dev/port.5432: echo`.
pub const PORT_ANNOTATION_PREFIX: &str = "kubesim.ferry.dev/port.";

/// How a simulated pod as a whole behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodBehaviour {
    /// Scheduled, started, Ready after the cluster's timing.
    #[default]
    Healthy,
    /// Never scheduled: `PodScheduled=False`, reason `Unschedulable`.
    StuckPending,
    /// Containers start and crash again and again (`CrashLoopBackOff`, restarts counting up).
    CrashLoop,
    /// Containers run but the readiness probe never passes.
    NeverReady,
}

/// How a simulated container answers on one port (the port-forward and exec listeners read
/// this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortBehaviour {
    /// A tiny HTTP server answering every request with a greeting that names the pod (the
    /// default for declared container ports).
    HttpHello,
    /// Sends back every byte it receives.
    Echo,
    /// Reads and drops everything, never answers.
    Discard,
    /// Writes an endless stream of bytes and ignores input.
    Source,
    /// Nothing listens: connections are refused (the default for undeclared ports).
    Closed,
}

impl PortBehaviour {
    /// Parses the annotation value; `None` for an unknown word.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "http-hello" => Some(Self::HttpHello),
            "echo" => Some(Self::Echo),
            "discard" => Some(Self::Discard),
            "source" => Some(Self::Source),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }

    /// The annotation value for this behaviour.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpHello => "http-hello",
            Self::Echo => "echo",
            Self::Discard => "discard",
            Self::Source => "source",
            Self::Closed => "closed",
        }
    }
}

/// The pod's behaviour from [`BEHAVIOUR_ANNOTATION`]; unknown values count as healthy (and are
/// logged), since a real cluster would ignore the annotation too.
pub fn pod_behaviour(pod: &Value) -> PodBehaviour {
    let Some(value) = annotation(pod, BEHAVIOUR_ANNOTATION) else {
        return PodBehaviour::Healthy;
    };
    match value.trim() {
        "stuck-pending" => PodBehaviour::StuckPending,
        "crashloop" => PodBehaviour::CrashLoop,
        "never-ready" => PodBehaviour::NeverReady,
        "" | "healthy" => PodBehaviour::Healthy,
        other => {
            tracing::warn!(pod = %super::objects::name(pod), value = other,
                "unknown {BEHAVIOUR_ANNOTATION} value; expected stuck-pending, crashloop or never-ready");
            PodBehaviour::Healthy
        }
    }
}

/// How the pod answers on `container_port`: the `kubesim.ferry.dev/port.<name>` annotation for
/// the port's name in any container, else `kubesim.ferry.dev/port.<number>`, else
/// [`PortBehaviour::HttpHello`] when some container declares the port and
/// [`PortBehaviour::Closed`] when none does.
pub fn port_behaviour(pod: &Value, container_port: u16) -> PortBehaviour {
    let declared: Vec<&Value> = ["/spec/containers", "/spec/initContainers"]
        .iter()
        .flat_map(|p| array_at(pod, p))
        .flat_map(|c| array_at(c, "/ports"))
        .filter(|p| {
            p.get("containerPort").and_then(Value::as_i64) == Some(i64::from(container_port))
        })
        .collect();
    let names = declared.iter().filter_map(|p| str_at(p, "/name"));
    let keys = names
        .map(str::to_string)
        .chain(std::iter::once(container_port.to_string()));
    for key in keys {
        let annotation_key = format!("{PORT_ANNOTATION_PREFIX}{key}");
        if let Some(value) = annotation(pod, &annotation_key) {
            match PortBehaviour::parse(value) {
                Some(b) => return b,
                None => {
                    tracing::warn!(pod = %super::objects::name(pod), key = %annotation_key, value,
                    "unknown port behaviour; expected http-hello, echo, discard, source or closed")
                }
            }
        }
    }
    if declared.is_empty() {
        PortBehaviour::Closed
    } else {
        PortBehaviour::HttpHello
    }
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "db", "annotations": annotations},
               "spec": {"containers": [{"name": "c", "ports": [
                   {"name": "pg", "containerPort": 5432}, {"containerPort": 9000}]}]}})
    }

    #[test]
    fn port_behaviour_by_name_then_number_then_default() {
        let p = pod(
            json!({"kubesim.ferry.dev/port.pg": "echo", "kubesim.ferry.dev/port.9000": "source"}),
        );
        assert_eq!(port_behaviour(&p, 5432), PortBehaviour::Echo);
        assert_eq!(port_behaviour(&p, 9000), PortBehaviour::Source);
        assert_eq!(
            port_behaviour(&pod(json!({})), 9000),
            PortBehaviour::HttpHello
        );
        assert_eq!(port_behaviour(&pod(json!({})), 1234), PortBehaviour::Closed);
        let p = pod(json!({"kubesim.ferry.dev/port.1234": "discard"}));
        assert_eq!(port_behaviour(&p, 1234), PortBehaviour::Discard);
    }

    #[test]
    fn pod_behaviour_reads_the_annotation() {
        assert_eq!(
            pod_behaviour(&pod(json!({BEHAVIOUR_ANNOTATION: "crashloop"}))),
            PodBehaviour::CrashLoop
        );
        assert_eq!(pod_behaviour(&pod(json!({}))), PodBehaviour::Healthy);
        assert_eq!(
            pod_behaviour(&pod(json!({BEHAVIOUR_ANNOTATION: "bogus"}))),
            PodBehaviour::Healthy
        );
    }
}
