//! A tunnel's state, derived from facts rather than set by hand.
//!
//! Other tools keep showing "Active" for a forward whose pod is long gone because they store a
//! flag that nobody resets. Here the supervisor only records *facts* (is the listener bound? is
//! the target resolved? how many Ready pods? did the last attempt work?) and [`derive`] turns
//! them into the one state a person sees, so the state can never claim more than the facts allow.

use serde::{Deserialize, Serialize};

/// What a person sees for a tunnel. Plain data for the GUI, the CLI and the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelState {
    /// Just started: the listener is not bound yet or the target was not looked up yet.
    Starting,
    /// Serving: listening, a Ready pod is known and the last attempt worked.
    Active,
    /// Serving, but recent connection attempts failed (the detail says why).
    Degraded,
    /// Cannot serve right now and retries by itself: no Ready pod, or the API server is
    /// unreachable. Local connections wait up to a bound, then close.
    Waiting,
    /// Cannot serve and will not retry until a person acts: port in use, forbidden, bad spec.
    Failed,
    /// Stopped by a person (or never started).
    Stopped,
}

impl TunnelState {
    /// Whether a local connection made now has a chance of reaching a pod.
    pub fn can_serve(self) -> bool {
        matches!(self, TunnelState::Active | TunnelState::Degraded)
    }

    /// Lowercase word for the CLI and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelState::Starting => "starting",
            TunnelState::Active => "active",
            TunnelState::Degraded => "degraded",
            TunnelState::Waiting => "waiting",
            TunnelState::Failed => "failed",
            TunnelState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for TunnelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a tunnel is not serving, for programs: the foreground CLI exits on
/// [`Reason::NotFound`] (a typo), a running instance keeps waiting and shows it. The words are
/// in the snapshot's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The target, its namespace or a named port does not exist (now).
    NotFound,
    /// The pod exists but is not Ready (CrashLoopBackOff, still starting, failing probe).
    NotReady,
    /// No Ready pod matches a service, deployment or selector.
    NoReadyPod,
    /// The API server cannot be reached.
    Unreachable,
}

/// Why the target could not be resolved right now, in words and as a [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub reason: Reason,
    pub message: String,
}

impl Unresolved {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the supervisor knows about a tunnel at one moment. Every field is an observation; none
/// is a conclusion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A person stopped the tunnel (or it was never started).
    pub stopped: bool,
    /// An error that retrying cannot fix (port in use, forbidden, bad spec), in words.
    pub fatal: Option<String>,
    /// Every requested local port has a bound listener.
    pub listening: bool,
    /// The target was looked up at least once since the last (re)connect: the service or
    /// deployment exists and the pod list is complete.
    pub resolved: bool,
    /// Why the target could not be resolved right now (service missing, named port missing,
    /// pod not Ready…).
    pub unresolved: Option<Unresolved>,
    /// Ready pods that new connections can go to.
    pub ready_pods: usize,
    /// The API server answered the last request (watch or port-forward) we made.
    pub api_reachable: bool,
    /// The API server's URL, for the "unreachable" message.
    pub api_url: Option<String>,
    /// The most recent connection attempt failed, with the reason.
    pub last_attempt_error: Option<String>,
}

/// The state a person sees, derived from [`Facts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub state: TunnelState,
    /// A short human explanation ("waiting for a ready pod").
    pub detail: Option<String>,
    /// Why it does not serve, for programs; `None` while serving, starting or stopped.
    pub reason: Option<Reason>,
}

impl Derived {
    fn new(state: TunnelState, detail: Option<String>, reason: Option<Reason>) -> Self {
        Self {
            state,
            detail,
            reason,
        }
    }
}

/// The state, a short human explanation and the machine-readable reason.
pub fn derive(facts: &Facts) -> Derived {
    if facts.stopped {
        return Derived::new(TunnelState::Stopped, None, None);
    }
    if let Some(reason) = &facts.fatal {
        return Derived::new(TunnelState::Failed, Some(reason.clone()), None);
    }
    if !facts.api_reachable && (facts.resolved || facts.listening) {
        let url = facts.api_url.as_deref().unwrap_or("the API server");
        return Derived::new(
            TunnelState::Waiting,
            Some(format!("API server {url} is unreachable; retrying")),
            Some(Reason::Unreachable),
        );
    }
    let unresolved = facts.unresolved.as_ref();
    let detail = unresolved.map(|u| u.message.clone());
    let reason = unresolved.map(|u| u.reason);
    if !facts.listening || !facts.resolved {
        return match (unresolved, facts.listening) {
            (Some(_), true) => Derived::new(TunnelState::Waiting, detail, reason),
            _ => Derived::new(
                TunnelState::Starting,
                detail.or_else(|| {
                    (!facts.api_reachable).then(|| "connecting to the API server".to_string())
                }),
                None,
            ),
        };
    }
    if facts.ready_pods == 0 {
        return Derived::new(
            TunnelState::Waiting,
            detail.or_else(|| Some("waiting for a ready pod".to_string())),
            reason.or(Some(Reason::NoReadyPod)),
        );
    }
    if let Some(err) = &facts.last_attempt_error {
        return Derived::new(TunnelState::Degraded, Some(err.clone()), None);
    }
    Derived::new(TunnelState::Active, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving() -> Facts {
        Facts {
            listening: true,
            resolved: true,
            ready_pods: 2,
            api_reachable: true,
            ..Facts::default()
        }
    }

    #[test]
    fn a_tunnel_with_a_ready_pod_and_no_errors_is_active() {
        assert_eq!(derive(&serving()).state, TunnelState::Active);
    }

    #[test]
    fn no_ready_pod_means_waiting_never_active() {
        let facts = Facts {
            ready_pods: 0,
            ..serving()
        };
        let derived = derive(&facts);
        assert_eq!(derived.state, TunnelState::Waiting);
        assert_eq!(derived.detail.as_deref(), Some("waiting for a ready pod"));
        assert_eq!(derived.reason, Some(Reason::NoReadyPod));
    }

    #[test]
    fn unreachable_api_server_means_waiting_with_its_url() {
        let facts = Facts {
            api_reachable: false,
            api_url: Some("https://127.0.0.1:6443".into()),
            ..serving()
        };
        let derived = derive(&facts);
        assert_eq!(derived.state, TunnelState::Waiting);
        assert_eq!(derived.reason, Some(Reason::Unreachable));
        assert!(derived.detail.unwrap().contains("https://127.0.0.1:6443"));
    }

    #[test]
    fn failed_attempts_with_ready_pods_mean_degraded() {
        let facts = Facts {
            last_attempt_error: Some("connection reset".into()),
            ..serving()
        };
        assert_eq!(derive(&facts).state, TunnelState::Degraded);
    }

    #[test]
    fn fatal_errors_win_over_everything_but_stop() {
        let facts = Facts {
            fatal: Some("port 8080 is in use".into()),
            ..serving()
        };
        let derived = derive(&facts);
        assert_eq!(derived.state, TunnelState::Failed);
        assert_eq!(derived.detail.as_deref(), Some("port 8080 is in use"));
        let stopped = Facts {
            stopped: true,
            ..facts
        };
        assert_eq!(derive(&stopped).state, TunnelState::Stopped);
    }

    #[test]
    fn before_the_listener_is_bound_the_tunnel_is_starting() {
        let facts = Facts {
            listening: false,
            ..serving()
        };
        assert_eq!(derive(&facts).state, TunnelState::Starting);
        let fresh = Facts {
            api_reachable: true,
            ..Facts::default()
        };
        assert_eq!(derive(&fresh).state, TunnelState::Starting);
    }

    #[test]
    fn a_missing_service_while_listening_is_waiting_with_the_reason() {
        let facts = Facts {
            resolved: false,
            unresolved: Some(Unresolved::new(
                Reason::NotFound,
                "not found: service \"kubia\" in namespace default",
            )),
            ..serving()
        };
        let derived = derive(&facts);
        assert_eq!(derived.state, TunnelState::Waiting);
        assert_eq!(derived.reason, Some(Reason::NotFound));
        assert!(derived.detail.unwrap().contains("kubia"));
    }

    #[test]
    fn derived_state_is_never_active_unless_it_can_serve() {
        // Exhaustive over the boolean facts: Active only with listener, resolution, a Ready pod,
        // a reachable server, no fatal error and no stop.
        for bits in 0u32..64 {
            let facts = Facts {
                stopped: bits & 1 != 0,
                fatal: (bits & 2 != 0).then(|| "x".into()),
                listening: bits & 4 != 0,
                resolved: bits & 8 != 0,
                ready_pods: usize::from(bits & 16 != 0),
                api_reachable: bits & 32 != 0,
                ..Facts::default()
            };
            if derive(&facts).state == TunnelState::Active {
                assert_eq!(bits, 4 | 8 | 16 | 32, "{facts:?}");
            }
        }
    }
}
