//! Which pod is best, in kubectl's `ActivePods` order (`k8s.io/kubectl/pkg/util/podutils`), which
//! `kubectl port-forward svc/…` uses to pick its pod: assigned to a node; Running, then Unknown,
//! then Pending; Ready; not being deleted (Ferry's addition); Ready for longer; fewer container
//! restarts; older. Ties are broken by name so the choice is stable across watch events.

use std::borrow::Borrow;
use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::ResolveError;

/// True when the pod's `Ready` condition is `True` (kubectl's `IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// True when the pod has a deletion timestamp: it is shutting down and should get no new
/// connections (a Service drops it from its ready endpoints too).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The pods a tunnel may send new connections to, best first: Ready, not terminating, not
/// finished. Works on `&[Pod]` and on `&[Arc<Pod>]` (catalog and reflector snapshots).
pub fn rank_ready_pods<P: Borrow<Pod>>(pods: &[P]) -> Vec<&Pod> {
    let mut ready: Vec<&Pod> = pods
        .iter()
        .map(Borrow::borrow)
        .filter(|p| is_pod_ready(p) && !is_terminating(p) && phase_ordinal(p) == 2)
        .collect();
    ready.sort_by(|a, b| compare_pods(a, b));
    ready
}

/// All pods, best first, as kubectl would consider them (including ones not Ready): used to
/// explain why no pod can serve ("pod X is Pending").
pub fn rank_pods<P: Borrow<Pod>>(pods: &[P]) -> Vec<&Pod> {
    let mut all: Vec<&Pod> = pods.iter().map(Borrow::borrow).collect();
    all.sort_by(|a, b| compare_pods(a, b));
    all
}

/// Orders two pods so that the better one comes first (`Ordering::Less` means `a` is better).
pub fn compare_pods(a: &Pod, b: &Pod) -> Ordering {
    if less_active(a, b) {
        Ordering::Greater
    } else if less_active(b, a) {
        Ordering::Less
    } else {
        name(a).cmp(name(b))
    }
}

/// kubectl refuses to forward to a pod that is not Running; so does Ferry.
pub fn require_running(pod: &Pod) -> Result<(), ResolveError> {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown");
    if phase == "Running" {
        Ok(())
    } else {
        Err(ResolveError::PodNotRunning {
            pod: name(pod).to_string(),
            phase: phase.to_string(),
        })
    }
}

/// `ActivePods.Less`: true when `a` is less active (worse) than `b`.
fn less_active(a: &Pod, b: &Pod) -> bool {
    let (node_a, node_b) = (node(a), node(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return node_a.is_empty();
    }
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    let (ready_a, ready_b) = (ready_since(a), ready_since(b));
    if ready_a.is_some() != ready_b.is_some() {
        return ready_a.is_none();
    }
    if is_terminating(a) != is_terminating(b) {
        return is_terminating(a);
    }
    if let (Some(ta), Some(tb)) = (ready_a, ready_b)
        && ta != tb
    {
        return after_or_zero(ta, tb);
    }
    let (restarts_a, restarts_b) = (max_restarts(a), max_restarts(b));
    if restarts_a != restarts_b {
        return restarts_a > restarts_b;
    }
    let (created_a, created_b) = (created(a), created(b));
    if created_a != created_b {
        return after_or_zero(created_a, created_b);
    }
    false
}

/// kubectl's `afterOrZero`: a missing (zero) time counts as later than any real time.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// Pending < Unknown < Running; anything else (Succeeded, Failed, missing) counts as Pending,
/// as in kubectl's map lookup.
fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 2,
        Some("Unknown") => 1,
        _ => 0,
    }
}

/// `None` when the pod is not Ready; otherwise when it became Ready (`Some(None)` if the
/// condition carries no time, which ranks as most recently Ready, like kubectl's zero time).
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}
