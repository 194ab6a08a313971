//! Which container of a pod an exec session or a log view addresses, decided as kubectl decides
//! it (`k8s.io/kubectl/pkg/cmd/util/podcmd`): a name the user gave (containers, init containers
//! or ephemeral containers), else the `kubectl.kubernetes.io/default-container` annotation when
//! it names a container, else the first container.
//!
//! kubesim keeps its own copy of the annotation rule (`kubesim::containers::default_container`),
//! because kubesim plays the API server and must not depend on Ferry's engine; this module is
//! the one Ferry itself uses.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Annotation naming the container kubectl picks when none is given.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Where a container is declared in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContainerKind {
    /// `spec.containers`.
    App,
    /// `spec.initContainers` (sidecars declared there keep running).
    Init,
    /// `spec.ephemeralContainers` (added by `kubectl debug`).
    Ephemeral,
}

impl ContainerKind {
    /// The mark kubectl puts after such a container's name ("(init)", "(ephem)"), empty for
    /// ordinary containers.
    pub fn mark(self) -> &'static str {
        match self {
            ContainerKind::App => "",
            ContainerKind::Init => " (init)",
            ContainerKind::Ephemeral => " (ephem)",
        }
    }
}

/// One container of a pod, as a picker shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerEntry {
    pub name: String,
    pub kind: ContainerKind,
    /// What the container status says: `running`, `waiting: CrashLoopBackOff`,
    /// `terminated: Completed`, or `unknown` when the kubelet has not reported it yet.
    pub state: String,
    /// Whether the status says the container runs now (exec needs that).
    pub running: bool,
    /// The container kubectl would pick with no `-c`.
    pub default: bool,
}

impl ContainerEntry {
    /// `name`, `name (init)` or `name (ephem)`.
    pub fn label(&self) -> String {
        format!("{}{}", self.name, self.kind.mark())
    }
}

/// Every container of the pod in kubectl's order (containers, ephemeral, init), with state.
pub fn containers(pod: &Pod) -> Vec<ContainerEntry> {
    let default = default_container(pod);
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let mut out = Vec::new();
    let mut push = |name: &str, kind: ContainerKind, statuses: Option<&Vec<ContainerStatus>>| {
        let found = statuses.and_then(|s| s.iter().find(|c| c.name == name));
        let (state, running) = describe_state(found);
        out.push(ContainerEntry {
            name: name.to_string(),
            kind,
            state,
            running,
            default: kind == ContainerKind::App && default.as_deref() == Some(name),
        });
    };
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        push(
            &c.name,
            ContainerKind::App,
            status.and_then(|s| s.container_statuses.as_ref()),
        );
    }
    for c in spec
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
    {
        push(
            &c.name,
            ContainerKind::Ephemeral,
            status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
        );
    }
    for c in spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
    {
        push(
            &c.name,
            ContainerKind::Init,
            status.and_then(|s| s.init_container_statuses.as_ref()),
        );
    }
    out
}

/// The containers a picker offers for exec: the running ones (init and ephemeral included).
pub fn running_containers(pod: &Pod) -> Vec<ContainerEntry> {
    containers(pod).into_iter().filter(|c| c.running).collect()
}

fn describe_state(status: Option<&ContainerStatus>) -> (String, bool) {
    let Some(state) = status.and_then(|s| s.state.as_ref()) else {
        return ("unknown".to_string(), false);
    };
    if state.running.is_some() {
        return ("running".to_string(), true);
    }
    if let Some(w) = &state.waiting {
        return (
            format!(
                "waiting: {}",
                w.reason.as_deref().unwrap_or("unknown reason")
            ),
            false,
        );
    }
    if let Some(t) = &state.terminated {
        let reason = t
            .reason
            .clone()
            .unwrap_or_else(|| format!("exit code {}", t.exit_code));
        return (format!("terminated: {reason}"), false);
    }
    ("unknown".to_string(), false)
}

/// The container kubectl picks when the user names none: the annotation if it names one of
/// `spec.containers`, else the first of them. `None` for a pod without containers.
pub fn default_container(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        .filter(|name| spec.containers.iter().any(|c| &c.name == *name));
    annotated
        .cloned()
        .or_else(|| spec.containers.first().map(|c| c.name.clone()))
}

/// kubectl's list of every container name: `a, b, eph (ephem), setup (init)`.
pub fn all_container_names(pod: &Pod) -> String {
    containers(pod)
        .iter()
        .map(ContainerEntry::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of choosing a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub container: ContainerEntry,
    /// kubectl's note when it picked the first of several containers on its own:
    /// `Defaulted container "a" out of: a, b, setup (init)`. `None` when the user named the
    /// container, the annotation chose it, or the pod has just one.
    pub defaulted_note: Option<String>,
}

/// Why no container could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("pod {pod} has no container named {container}; its containers are: {all}")]
    Unknown {
        pod: String,
        container: String,
        all: String,
    },
    #[error("pod {pod} has no containers")]
    NoContainers { pod: String },
}

/// Chooses the container as kubectl does. With `requested`, any container of the pod by that
/// name (app, ephemeral or init); without, the annotation or the first app container.
pub fn choose(pod: &Pod, requested: Option<&str>) -> Result<Choice, ChoiceError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let all = containers(pod);
    if let Some(name) = requested.filter(|n| !n.is_empty()) {
        return match all.iter().find(|c| c.name == name) {
            Some(c) => Ok(Choice {
                container: c.clone(),
                defaulted_note: None,
            }),
            None => Err(ChoiceError::Unknown {
                pod: pod_name,
                container: name.to_string(),
                all: all_container_names(pod),
            }),
        };
    }
    let Some(chosen) = all.iter().find(|c| c.default) else {
        return Err(ChoiceError::NoContainers { pod: pod_name });
    };
    let by_annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
        == Some(&chosen.name);
    let defaulted_note = (!by_annotation && all.len() > 1).then(|| {
        format!(
            "Defaulted container \"{}\" out of: {}",
            chosen.name,
            all_container_names(pod)
        )
    });
    Ok(Choice {
        container: chosen.clone(),
        defaulted_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: Option<&str>) -> Pod {
        let mut v = serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {
                "containers": [{"name": "main"}, {"name": "side"}],
                "initContainers": [{"name": "setup"}, {"name": "proxy"}],
                "ephemeralContainers": [{"name": "debugger"}]
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "main", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                     "state": {"running": {}}},
                    {"name": "side", "image": "", "imageID": "", "ready": false, "restartCount": 4,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ],
                "initContainerStatuses": [
                    {"name": "setup", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "proxy", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                     "state": {"running": {}}}
                ],
                "ephemeralContainerStatuses": [
                    {"name": "debugger", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"running": {}}}
                ]
            }
        });
        if let Some(a) = annotation {
            v["metadata"]["annotations"] = serde_json::json!({DEFAULT_CONTAINER_ANNOTATION: a});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn first_container_by_default_with_kubectls_note() {
        let c = choose(&pod(None), None).unwrap();
        assert_eq!(c.container.name, "main");
        assert_eq!(
            c.defaulted_note.as_deref(),
            Some(
                "Defaulted container \"main\" out of: main, side, debugger (ephem), setup (init), proxy (init)"
            )
        );
    }

    #[test]
    fn annotation_wins_when_it_names_a_container() {
        let c = choose(&pod(Some("side")), None).unwrap();
        assert_eq!(c.container.name, "side");
        assert_eq!(c.defaulted_note, None);
        // An annotation naming nothing falls back to the first container.
        assert_eq!(
            choose(&pod(Some("gone")), None).unwrap().container.name,
            "main"
        );
    }

    #[test]
    fn named_containers_include_init_and_ephemeral() {
        let p = pod(None);
        assert_eq!(
            choose(&p, Some("proxy")).unwrap().container.kind,
            ContainerKind::Init
        );
        assert_eq!(
            choose(&p, Some("debugger")).unwrap().container.kind,
            ContainerKind::Ephemeral
        );
        assert_eq!(
            choose(&p, Some("nope")).unwrap_err().to_string(),
            "pod web-1 has no container named nope; its containers are: main, side, debugger (ephem), setup (init), proxy (init)"
        );
    }

    #[test]
    fn picker_lists_running_containers_marked() {
        let labels: Vec<String> = running_containers(&pod(None))
            .iter()
            .map(ContainerEntry::label)
            .collect();
        assert_eq!(labels, ["main", "debugger (ephem)", "proxy (init)"]);
        let side = containers(&pod(None))
            .into_iter()
            .find(|c| c.name == "side")
            .unwrap();
        assert_eq!(side.state, "waiting: CrashLoopBackOff");
        assert!(!side.running);
    }
}
