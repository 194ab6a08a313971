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
    /// Why the target could not be resolved right now (service missing, named port missing…).
    pub unresolved_reason: Option<String>,
    /// Ready pods that new connections can go to.
    pub ready_pods: usize,
    /// The API server answered the last request (watch or port-forward) we made.
    pub api_reachable: bool,
    /// The API server's URL, for the "unreachable" message.
    pub api_url: Option<String>,
    /// The most recent connection attempt failed, with the reason.
    pub last_attempt_error: Option<String>,
}

/// The state and a short human explanation ("waiting for a ready pod").
pub fn derive(facts: &Facts) -> (TunnelState, Option<String>) {
    if facts.stopped {
        return (TunnelState::Stopped, None);
    }
    if let Some(reason) = &facts.fatal {
        return (TunnelState::Failed, Some(reason.clone()));
    }
    if !facts.api_reachable && (facts.resolved || facts.listening) {
        let url = facts.api_url.as_deref().unwrap_or("the API server");
        return (
            TunnelState::Waiting,
            Some(format!("API server {url} is unreachable; retrying")),
        );
    }
    if !facts.listening || !facts.resolved {
        let detail = facts
            .unresolved_reason
            .clone()
            .or_else(|| (!facts.api_reachable).then(|| "connecting to the API server".to_string()));
        return match (&facts.unresolved_reason, facts.listening) {
            (Some(_), true) => (TunnelState::Waiting, detail),
            _ => (TunnelState::Starting, detail),
        };
    }
    if facts.ready_pods == 0 {
        let detail = facts
            .unresolved_reason
            .clone()
            .unwrap_or_else(|| "waiting for a ready pod".to_string());
        return (TunnelState::Waiting, Some(detail));
    }
    if let Some(err) = &facts.last_attempt_error {
        return (TunnelState::Degraded, Some(err.clone()));
    }
    (TunnelState::Active, None)
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
        assert_eq!(derive(&serving()).0, TunnelState::Active);
    }

    #[test]
    fn no_ready_pod_means_waiting_never_active() {
        let facts = Facts {
            ready_pods: 0,
            ..serving()
        };
        let (state, detail) = derive(&facts);
        assert_eq!(state, TunnelState::Waiting);
        assert_eq!(detail.as_deref(), Some("waiting for a ready pod"));
    }

    #[test]
    fn unreachable_api_server_means_waiting_with_its_url() {
        let facts = Facts {
            api_reachable: false,
            api_url: Some("https://127.0.0.1:6443".into()),
            ..serving()
        };
        let (state, detail) = derive(&facts);
        assert_eq!(state, TunnelState::Waiting);
        assert!(detail.unwrap().contains("https://127.0.0.1:6443"));
    }

    #[test]
    fn failed_attempts_with_ready_pods_mean_degraded() {
        let facts = Facts {
            last_attempt_error: Some("connection reset".into()),
            ..serving()
        };
        assert_eq!(derive(&facts).0, TunnelState::Degraded);
    }

    #[test]
    fn fatal_errors_win_over_everything_but_stop() {
        let facts = Facts {
            fatal: Some("port 8080 is in use".into()),
            ..serving()
        };
        assert_eq!(
            derive(&facts),
            (TunnelState::Failed, Some("port 8080 is in use".into()))
        );
        let stopped = Facts {
            stopped: true,
            ..facts
        };
        assert_eq!(derive(&stopped).0, TunnelState::Stopped);
    }

    #[test]
    fn before_the_listener_is_bound_the_tunnel_is_starting() {
        let facts = Facts {
            listening: false,
            ..serving()
        };
        assert_eq!(derive(&facts).0, TunnelState::Starting);
        let fresh = Facts {
            api_reachable: true,
            ..Facts::default()
        };
        assert_eq!(derive(&fresh).0, TunnelState::Starting);
    }

    #[test]
    fn a_missing_service_while_listening_is_waiting_with_the_reason() {
        let facts = Facts {
            resolved: false,
            unresolved_reason: Some("service \"kubia\" not found in namespace \"default\"".into()),
            ..serving()
        };
        let (state, detail) = derive(&facts);
        assert_eq!(state, TunnelState::Waiting);
        assert!(detail.unwrap().contains("kubia"));
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
            if derive(&facts).0 == TunnelState::Active {
                assert_eq!(bits, 4 | 8 | 16 | 32, "{facts:?}");
            }
        }
    }
}
